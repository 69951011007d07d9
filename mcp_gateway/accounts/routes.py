"""Seed 002's `projects` and `account` routes, and the admin's `/v1/accounts`.

    GET    /projects              the account's projects (the admin token: every project)
    POST   /projects              create one: {"name", "allowed_origins"?} -> 201 with `project_token` (shown once),
                                  200 `existing: true` for a retry, 409 naming a conflicting name, 403 at the limit
    GET    /projects/{id}         one project
    PATCH  /projects/{id}         {"name"?, "allowed_origins"?}; 409 naming the name another project holds
    DELETE /projects/{id}         202: the project is gone at once (keys revoked, out of every list, ingest refused)
                                  and its data purged in the background (`deletion`), the answer counting it
    GET    /account               tier, projects_count, projects_limit, tier_limits
    POST   /account/revoke-key    a new account key (shown once); the old one stops working
    GET    /v1/accounts           (admin) every account
    POST   /v1/accounts           (admin) {"id", "name"} -> 201 with its first `api_key`
    POST   /v1/accounts/{account_id}/key   (admin) a new key for the account (shown once)

An account key manages its account's projects, the admin token every project (read keys: 401, they read
analytics only; a project of another account: 404, as one that does not exist). With the admin token,
`/account`, `/account/revoke-key` and `POST /projects` act for the account named by `?account=` (default:
`default`). Every answer carries the per-key limit's headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from typing_extensions import TypedDict

from ..admin import AdminAuth
from ..config import Settings
from ..gateways import GatewayDirectory, Origin
from ..keys import KeyService
from ..openapi import Operation, Param, Reply
from ..ratelimit import RateLimiter
from ..store import Store
from ..web import ApiError, counted, read_model
from .access import ADMIN_LIMIT_KEY, Access, Caller
from .deletion import ProjectPurger, order_purge
from .limits import PROJECTS_LIMIT_CODE, retention_days
from .projects import AtLimit, Conflict, Created, Existing, ProjectRow, Projects
from .service import ACCOUNT_ID_PATTERN, DEFAULT_ACCOUNT_ID, Account

_ModelT = TypeVar("_ModelT", bound=BaseModel)
ACCOUNT_PARAMETER: Final = "account"
"""With the admin token: the account `/account`, `/account/revoke-key` and `POST /projects` act for."""


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be blank")
    return value


class ProjectCreate(BaseModel):
    """Body of `POST /projects`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique within the account (case aside)")
    allowed_origins: list[Origin] | None = Field(
        default=None,
        max_length=100,
        description="Browser origins the project token is accepted from (default: localhost on any port)",
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _name(value)


class ProjectUpdate(BaseModel):
    """Body of `PATCH /projects/{id}`: the fields to change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_origins: list[Origin] | None = Field(default=None, max_length=100)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)


class AccountCreate(BaseModel):
    """Body of `POST /v1/accounts`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ACCOUNT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)


class ProjectView(TypedDict):
    id: str
    name: str
    account_id: str
    allowed_origins: list[str]
    project_token_prefix: str | None
    """The first characters of the live project token (the gateway's pk_ key); the token itself is shown once."""
    has_api_key: bool
    """Whether the project has a live secret key (sk_ for server tracking, rk_ for analytics)."""
    usage_today: int
    """Events of the project whose time is today (UTC)."""
    events_total: int
    """Events the project ever stored (what `max_events_lifetime` counts)."""
    snippet: str
    """The tracker.js tag for the project's pages."""
    created_at_ms: int
    updated_at_ms: int


class ProjectCreated(ProjectView):
    project_token: str | None
    """The project token (pk_…), shown this once; null when the project existed already."""
    existing: bool


class ProjectList(TypedDict):
    projects: list[ProjectView]


class ProjectDeleted(TypedDict):
    id: str
    deleted: bool
    status: str
    """`purging`: the project is gone for every reader; its rows are being deleted in the background."""
    removing: dict[str, int]
    """The rows that will be deleted, by table, counted when the deletion was ordered (more may come in flight)."""


class TierLimits(TypedDict):
    max_events_lifetime: int | None
    retention_days: int | None
    rate_limit_rpm: int


class AccountView(TypedDict):
    id: str
    name: str
    tier: str
    projects_count: int
    projects_limit: int | None
    events_total: int
    tier_limits: TierLimits
    api_key_prefix: str | None
    api_key_created_at_ms: int | None
    created_at_ms: int


class AccountList(TypedDict):
    accounts: list[AccountView]


class KeyIssued(TypedDict):
    account_id: str
    api_key: str
    """The new account key, shown this once."""
    api_key_prefix: str
    api_key_created_at_ms: int


class AccountCreated(AccountView):
    api_key: str


class ProjectsApi:
    def __init__(
        self,
        access: Access,
        auth: AdminAuth,
        store: Store,
        directory: GatewayDirectory,
        keys: KeyService,
        settings: Settings,
        purger: ProjectPurger,
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._purger = purger
        self._access = access
        self._auth = auth
        self._store = store
        self._directory = directory
        self._keys = keys
        self._settings = settings
        self._limiter = limiter
        self._projects = Projects(store)

    def routes(self) -> list[BaseRoute]:
        handlers: list[tuple[str, str, Callable[[Request, Caller], Awaitable[Response]]]] = [
            ("/projects", "GET", self.list_projects),
            ("/projects", "POST", self.create_project),
            ("/projects/{id}", "GET", self.show_project),
            ("/projects/{id}", "PATCH", self.update_project),
            ("/projects/{id}", "DELETE", self.delete_project),
            ("/account", "GET", self.show_account),
            ("/account/revoke-key", "POST", self.revoke_key),
        ]
        admin: list[tuple[str, str, Callable[[Request, Caller], Awaitable[Response]]]] = [
            ("/v1/accounts", "GET", self.list_accounts),
            ("/v1/accounts", "POST", self.create_account),
            ("/v1/accounts/{account_id}/key", "POST", self.issue_key),
        ]
        return [
            *(Route(path, self._guarded(handler, admin=False), methods=[method]) for path, method, handler in handlers),
            *(Route(path, self._guarded(handler, admin=True), methods=[method]) for path, method, handler in admin),
        ]

    def _guarded(
        self, handler: Callable[[Request, Caller], Awaitable[Response]], *, admin: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for the caller `access` finds (the admin only, with `admin`), behind the per-key limit."""

        async def guarded(request: Request) -> Response:
            if admin:
                self._auth.check(request)
                caller = Caller("admin", None, None, ADMIN_LIMIT_KEY)
            else:
                caller = await self._access.caller(request, kinds=("admin", "account"))
            return await counted(self._limiter, caller.limit_key, lambda: handler(request, caller))

        return guarded

    def operations(self) -> list[Operation]:
        project = (Param("id", "path", "The project's id"),)
        account = (Param(ACCOUNT_PARAMETER, "query", "With the admin token: the account (default `default`)"),)
        account_id = (Param("account_id", "path", "The account's id"),)

        def op(method: Any, path: str, summary: str, **described: Any) -> Operation:
            return Operation(method, path, summary, "projects", security="account", **described)

        def admin(method: Any, path: str, summary: str, **described: Any) -> Operation:
            return Operation(method, path, summary, "admin", security="admin", **described)

        return [
            op("GET", "/projects", "List the account's projects", response=ProjectList, errors=(429,)),
            op(
                "POST",
                "/projects",
                "Create a project; the answer shows its project token this once",
                body=ProjectCreate,
                response=ProjectCreated,
                status=201,
                params=account,
                replies=(Reply(200, "The project existed (`existing: true`, `project_token: null`)", ProjectCreated),),
                errors=(400, 403, 404, 409, 413, 415, 429),
                description="201 for a new project; 200 with `existing: true` when the account has a project of "
                "that name and the same (or no) `allowed_origins`; 409 naming it when the origins differ; 403 "
                "`projects_limit_reached` when the account holds `projects_limit` projects.",
            ),
            op("GET", "/projects/{id}", "One project", response=ProjectView, params=project, errors=(404, 429)),
            op(
                "PATCH",
                "/projects/{id}",
                "Rename a project or change its allowed origins",
                body=ProjectUpdate,
                response=ProjectView,
                params=project,
                errors=(400, 404, 409, 413, 415, 429),
            ),
            op(
                "DELETE",
                "/projects/{id}",
                "Delete a project and everything stored about it",
                response=ProjectDeleted,
                status=202,
                params=project,
                errors=(404, 429),
                description="202 at once: from the answer on the project is gone (its keys revoked, out of every "
                "list, its ingest refused, 404 to every key) and its rows are deleted in the background, a task "
                "that resumes after a restart. `removing` counts them by table.",
            ),
            op(
                "GET",
                "/account",
                "The account: tier, projects and limits",
                response=AccountView,
                params=account,
                errors=(404, 429),
            ),
            op(
                "POST",
                "/account/revoke-key",
                "Revoke the account key and issue a new one, shown this once",
                response=KeyIssued,
                params=account,
                errors=(404, 429),
            ),
            admin("GET", "/v1/accounts", "List accounts", response=AccountList, errors=(403, 429)),
            admin(
                "POST",
                "/v1/accounts",
                "Create an account; the answer shows its account key this once",
                body=AccountCreate,
                response=AccountCreated,
                status=201,
                errors=(403, 409, 413, 422, 429),
            ),
            admin(
                "POST",
                "/v1/accounts/{account_id}/key",
                "Issue a new account key (the old one stops working), shown this once",
                response=KeyIssued,
                params=account_id,
                errors=(403, 404, 429),
            ),
        ]

    # -- helpers -----------------------------------------------------------------------------------------

    async def _body(self, request: Request, model: type[_ModelT]) -> _ModelT:
        return await read_model(request, model, limit=self._settings.max_body_bytes)

    async def _account_of(self, request: Request, caller: Caller) -> Account:
        """The account the caller acts for: its own, or with the admin token `?account=` (default `default`)."""
        if caller.kind == "account":
            assert caller.account_id is not None
            return await self._access.accounts.require(caller.account_id)
        account_id = request.query_params.get(ACCOUNT_PARAMETER, "").strip() or DEFAULT_ACCOUNT_ID
        account = await self._access.accounts.get(account_id)
        if account is None:
            raise ApiError(404, f"No account {account_id:.200}", field=ACCOUNT_PARAMETER)
        return account

    def _view(self, request: Request, project: ProjectRow) -> ProjectView:
        base = str(request.base_url).rstrip("/")
        return ProjectView(
            id=project.id,
            name=project.name,
            account_id=project.account_id,
            allowed_origins=list(project.allowed_origins),
            project_token_prefix=project.project_token_prefix,
            has_api_key=project.has_api_key,
            usage_today=project.usage_today,
            events_total=project.events_total,
            snippet=f'<script src="{base}/tracker.js" data-gateway="{project.id}"></script>',
            created_at_ms=project.created_at_ms,
            updated_at_ms=project.updated_at_ms,
        )

    async def _account_view(self, account: Account) -> AccountView:
        return AccountView(
            id=account.id,
            name=account.name,
            tier=self._settings.account_tier,
            projects_count=await self._projects.count(account.id),
            projects_limit=self._settings.max_projects,
            events_total=await self._projects.events_total(account.id),
            tier_limits=TierLimits(
                max_events_lifetime=self._settings.max_events_lifetime,
                retention_days=retention_days(self._settings),
                rate_limit_rpm=self._settings.api_rate_limit,
            ),
            api_key_prefix=account.key_prefix,
            api_key_created_at_ms=account.key_created_at_ms,
            created_at_ms=account.created_at_ms,
        )

    @staticmethod
    def _conflict(conflict: Conflict) -> ApiError:
        return ApiError(
            409,
            f"A project named {conflict.name!r} already exists in this account ({conflict.project_id})",
            field="name",
            conflict={"id": conflict.project_id, "name": conflict.name},
        )

    # -- projects ----------------------------------------------------------------------------------------

    async def list_projects(self, request: Request, caller: Caller) -> Response:
        if caller.kind == "account":
            assert caller.account_id is not None
            rows = await self._projects.of_account(caller.account_id)
        else:
            rows = await self._projects.every()
        return JSONResponse({"projects": [self._view(request, row) for row in rows]})

    async def create_project(self, request: Request, caller: Caller) -> Response:
        account = await self._account_of(request, caller)
        spec = await self._body(request, ProjectCreate)
        origins = None if spec.allowed_origins is None else tuple(spec.allowed_origins)
        result = await self._projects.create(account.id, spec.name, origins, limit=self._settings.max_projects)
        match result:
            case Conflict():
                raise self._conflict(result)
            case AtLimit(count=count, limit=limit):
                raise ApiError(
                    403,
                    f"This account holds {count} projects, its limit (projects_limit): delete one or ask the operator",
                    code=PROJECTS_LIMIT_CODE,
                    limit="projects_limit",
                    limit_value=limit,
                )
            case Existing(project_id=project_id):
                token, status = None, 200
            case Created(project_id=project_id, token=token):
                status = 201
        project = await self._projects.require(project_id)
        body = ProjectCreated(**self._view(request, project), project_token=token, existing=status == 200)
        return JSONResponse(body, status_code=status)

    async def show_project(self, request: Request, caller: Caller) -> Response:
        project_id = await self._access.project_of(caller, request.path_params["id"], write=False)
        return JSONResponse(self._view(request, await self._projects.require(project_id)))

    async def update_project(self, request: Request, caller: Caller) -> Response:
        project_id = await self._access.project_of(caller, request.path_params["id"], write=True)
        spec = await self._body(request, ProjectUpdate)
        origins = None if spec.allowed_origins is None else tuple(spec.allowed_origins)
        result = await self._projects.update(project_id, name=spec.name, allowed_origins=origins)
        if isinstance(result, Conflict):
            raise self._conflict(result)
        self._directory.forget(project_id)
        return JSONResponse(self._view(request, await self._projects.require(project_id)))

    async def delete_project(self, request: Request, caller: Caller) -> Response:
        project_id = await self._access.project_of(caller, request.path_params["id"], write=True)
        for key in await self._keys.list(project_id):  # no new data from here on, at once on this process
            if key.revoked_at_ms is None:
                await self._keys.revoke(project_id, key.id)
        gateway = await self._directory.require(project_id)
        off = gateway.manifest.model_copy(update={"mcp_enabled": False, "tracking_enabled": False})
        await self._directory.set_manifest(project_id, off)
        removing = await order_purge(self._store, project_id, now_ms=int(time.time() * 1000))
        if removing is None:  # another request deleted it meanwhile
            raise ApiError(404, f"No project {project_id:.200}", field="id")
        self._directory.forget(project_id)
        self._purger.wake()
        body = ProjectDeleted(id=project_id, deleted=True, status="purging", removing=removing)
        return JSONResponse(body, status_code=202)

    # -- account -----------------------------------------------------------------------------------------

    async def show_account(self, request: Request, caller: Caller) -> Response:
        return JSONResponse(await self._account_view(await self._account_of(request, caller)))

    async def revoke_key(self, request: Request, caller: Caller) -> Response:
        account = await self._account_of(request, caller)
        return JSONResponse(await self._issued(account.id))

    async def _issued(self, account_id: str) -> KeyIssued:
        account, plaintext = await self._access.accounts.issue_key(account_id)
        assert account.key_prefix is not None and account.key_created_at_ms is not None
        return KeyIssued(
            account_id=account.id,
            api_key=plaintext,
            api_key_prefix=account.key_prefix,
            api_key_created_at_ms=account.key_created_at_ms,
        )

    # -- admin ---------------------------------------------------------------------------------------

    async def list_accounts(self, request: Request, caller: Caller) -> Response:
        accounts = [await self._account_view(account) for account in await self._access.accounts.all()]
        return JSONResponse({"accounts": accounts})

    async def create_account(self, request: Request, caller: Caller) -> Response:
        spec = await read_model(
            request, AccountCreate, limit=self._settings.max_body_bytes, status=422, strict_content_type=False
        )
        account, plaintext = await self._access.accounts.create(spec.id, spec.name)
        return JSONResponse(AccountCreated(**await self._account_view(account), api_key=plaintext), status_code=201)

    async def issue_key(self, request: Request, caller: Caller) -> Response:
        return JSONResponse(await self._issued(request.path_params["account_id"]))
