"""Who is calling, which gateway (project) they may touch, and whether they may change it: the one place that
decides, for every keyed REST route that is about a project (the analytics, `/projects`, `/account`, experiments).

    caller          may read                      may write (manage)        `project` absent
    admin token     every project                 every project             400 `project` is required
    account key     its account's projects        its account's projects    its only project, else 400
    read key        its own gateway               nothing (403)             its own gateway

A project the caller may not see is 404 for an account key or the admin token ("no project ...", the same answer
whether it exists elsewhere or not, so nothing leaks) and 403 for a read key, which reads one gateway only and is
told so. The key is found as `analytics.api.presented_key` finds it (Bearer, X-API-Key, `?api_key=`, `?token=`,
the dashboard's cookie); the admin token counts only as `Authorization: Bearer`.

`gateway_for(request, project, write=...)` is the function routes call; it finds the app's `Access` in
`request.app.state.access` (`app.create_app` puts it there).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from starlette.requests import Request

from ..keys import KeyService
from ..store import KeyKind
from ..web import ApiError
from .service import AccountService, is_account_key

CallerKind = Literal["admin", "account", "read"]
READ_KINDS: Final[tuple[KeyKind, ...]] = ("read",)
PROJECT_PARAMETER: Final = "project"
QUERY_KEY_PARAMETERS: Final = ("api_key", "token")
READ_KEY_COOKIE: Final = "mcpg_read_key"
ADMIN_LIMIT_KEY: Final = "admin"
_WWW: Final = {"WWW-Authenticate": "Bearer"}


class AdminCheck(Protocol):
    """Whether a token is the admin token (`admin.AdminAuth` is one)."""

    def matches(self, token: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from."""

    kind: CallerKind
    account_id: str | None
    """The account of an account key; None for the admin token and read keys."""
    gateway_id: str | None
    """The gateway of a read key; None otherwise."""
    limit_key: str
    """What the per-key rate limit counts this caller's requests under."""


def presented_key(request: Request) -> str:
    """The key a request carries, in order: Authorization Bearer, X-API-Key, ?api_key=, ?token=, cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    queried = (request.query_params.get(name, "").strip() for name in QUERY_KEY_PARAMETERS)
    return (
        request.headers.get("x-api-key", "").strip()
        or next((value for value in queried if value), "")
        or request.cookies.get(READ_KEY_COOKIE, "").strip()
    )


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Access:
    """Resolves callers and the projects they may touch."""

    def __init__(self, keys: KeyService, accounts: AccountService, admin: AdminCheck | None) -> None:
        self.keys = keys
        self.accounts = accounts
        self._admin = admin

    async def caller(self, request: Request, *, kinds: Collection[CallerKind] = ("admin", "account", "read")) -> Caller:
        """Who the request is from, among `kinds`; 401 + WWW-Authenticate saying what is wrong otherwise."""
        presented = presented_key(request)
        if not presented:
            raise ApiError(
                401,
                "A key is required: Authorization: Bearer <key>, X-API-Key or ?token= (an account key ak_…"
                + (" or a read key rk_…" if "read" in kinds else "")
                + ")",
                headers=_WWW,
            )
        bearer = _bearer(request)
        if "admin" in kinds and bearer and self._admin is not None and self._admin.matches(bearer):
            return Caller("admin", None, None, ADMIN_LIMIT_KEY)
        if is_account_key(presented):
            account = await self.accounts.resolve(presented)
            if account is None:
                raise ApiError(401, "Unknown or revoked key", headers=_WWW)
            if "account" not in kinds:
                raise ApiError(401, "Not a key for this route: an account key may not do this", headers=_WWW)
            return Caller("account", account.id, None, "account:" + account.id)
        record = await self.keys.find(presented)
        if record is None or record.revoked_at_ms is not None:
            raise ApiError(401, "Unknown or revoked key", headers=_WWW)
        if record.kind not in READ_KINDS or "read" not in kinds:
            if "read" in kinds:
                message = f"Not a read key: this is a {record.kind} key; this needs a read key or an account key"
            else:
                message = f"Not an account key: this is a {record.kind} key; this needs an account key"
            raise ApiError(401, message, headers=_WWW)
        return Caller("read", None, record.gateway_id, record.id)

    async def project_of(self, caller: Caller, project: object, *, write: bool) -> str:
        """The gateway `caller` means by `project` (None or "": the obvious one, if there is one)."""
        name = "" if project is None else str(project).strip()
        if caller.kind == "read":
            assert caller.gateway_id is not None
            if write:
                raise ApiError(403, "A read key may only read: changing a project needs an account key")
            if name and name != caller.gateway_id:
                raise ApiError(
                    403,
                    f"This key may not read project {name:.200}: it reads {caller.gateway_id} only",
                    field=PROJECT_PARAMETER,
                )
            return caller.gateway_id
        if caller.kind == "account":
            assert caller.account_id is not None
            if not name:
                owned = await self.accounts.project_ids(caller.account_id)
                if len(owned) == 1:
                    return owned[0]
                raise ApiError(
                    400,
                    f"`project` is required: this account has {len(owned)} projects",
                    field=PROJECT_PARAMETER,
                )
            if await self.accounts.owner(name) != caller.account_id:
                raise ApiError(404, f"No project {name:.200} in this account", field=PROJECT_PARAMETER)
            return name
        if not name:
            raise ApiError(400, "`project` is required with the admin token", field=PROJECT_PARAMETER)
        if await self.accounts.owner(name) is None:
            raise ApiError(404, f"No project {name:.200}", field=PROJECT_PARAMETER)
        return name

    async def gateway_for(self, request: Request, project: object, *, write: bool) -> str:
        """The gateway the request's caller means by `project` and may read (or, with `write`, change)."""
        return await self.project_of(await self.caller(request), project, write=write)


def access_of(request: Request) -> Access:
    """The app's `Access` (`request.app.state.access`)."""
    access = getattr(request.app.state, "access", None)
    if not isinstance(access, Access):
        raise RuntimeError("the app has no Access in app.state.access")
    return access


async def gateway_for(request: Request, project: object, *, write: bool) -> str:
    """The gateway (project id) the request's caller means by `project` and may read, or with `write` change:
    the admin token any, an account key its account's, a read key its own gateway and read only. 401 without a
    usable key, 400 without `project` where it is ambiguous, 403 for a read key out of its gateway or writing,
    404 for a project the caller may not see (whether or not it exists)."""
    return await access_of(request).gateway_for(request, project, write=write)
