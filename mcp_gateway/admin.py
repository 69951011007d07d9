"""The admin REST API: manage gateways and read leads, behind the admin token.

    GET  /v1/gateways                     list gateways
    POST /v1/gateways                     create one (body: GatewayCreate)
    GET  /v1/gateways/{id}                one gateway
    PUT  /v1/gateways/{id}/origins        replace its allowed origins (body: {"allowed_origins": [...]})
    GET  /v1/gateways/{id}/manifest       its agent manifest
    PUT  /v1/gateways/{id}/manifest       replace it (body: AgentManifest)
    GET  /v1/gateways/{id}/leads          the leads `book_demo` captured, newest first
    GET  /v1/gateways/{id}/keys           its API keys (never the key itself)
    POST /v1/gateways/{id}/keys           create one: {"kind": "org", "name": ""} -> 201 with "key", shown once
    DELETE /v1/gateways/{id}/keys/{key}   revoke one
    GET  /v1/gateways/{id}/receipt-secret   the secret `/track` receipts are signed with (`ingest.track.verify_receipt`)

`Authorization: Bearer <admin token>`: none -> 401 (with `WWW-Authenticate`), wrong -> 403; past
`Settings.api_rate_limit` requests a minute (seed 000's dashboard API limit, per key: the admin token is one)
-> 429 with the limits' body and `Retry-After`/`X-RateLimit-*` headers, which every answer carries.
The token is `MCP_GATEWAY_ADMIN_TOKEN` when set; otherwise one is generated at first start,
printed once, and only its SHA-256 is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from typing_extensions import TypedDict

from .accounts.access import ADMIN_LIMIT_KEY
from .gateways import AgentManifest, Gateway, GatewayCreate, GatewayDirectory, Origin
from .ingest.track import RECEIPT_ALGORITHM, receipt_secret
from .keys import KeyService
from .openapi import GatewayId, Method, Operation, Param
from .ratelimit import RateLimiter
from .store import KeyKind, KeyRecord, LeadRecord, Store
from .web import ApiError, counted, read_model, validated

ADMIN_TOKEN_SETTING: Final = "admin_token_sha256"
_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def admin_only(
    auth: AdminAuth, limiter: RateLimiter | None, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """`handler` behind the admin token and the admin's per-key limit, its answer with the limit's headers: every
    admin route (this module's, the integrations')."""

    async def guarded(request: Request) -> Response:
        auth.check(request)
        return await counted(limiter, ADMIN_LIMIT_KEY, lambda: handler(request))

    return guarded


class AdminAuth:
    """Checks `Authorization: Bearer` against the configured token or the stored hash."""

    def __init__(self, store: Store, configured_token: str | None) -> None:
        self._store = store
        self._configured = configured_token
        self._stored_hash: str | None = None

    async def ensure_token(self) -> str | None:
        """Make sure a token exists; return it if it was just generated (to be shown once)."""
        if self._configured is not None:
            return None
        fresh = secrets.token_urlsafe(32)
        self._stored_hash = await self._store.put_setting_if_absent(ADMIN_TOKEN_SETTING, _sha256(fresh))
        return fresh if self._stored_hash == _sha256(fresh) else None

    def check(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "Missing admin token: send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        if not self.matches(token.strip()):
            raise ApiError(403, "Invalid admin token")

    def matches(self, token: str) -> bool:
        """Whether `token` is the admin token (compared in constant time)."""
        if self._configured is not None:
            return hmac.compare_digest(token.encode(), self._configured.encode())
        return self._stored_hash is not None and hmac.compare_digest(_sha256(token), self._stored_hash)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: KeyKind
    name: str = Field(default="", max_length=200)


class KeyView(TypedDict):
    """A key as the API shows it: never the key itself, nor its hash."""

    id: str
    gateway_id: str
    kind: KeyKind
    name: str
    prefix: str
    created_at_ms: int
    revoked_at_ms: int | None


class KeyCreated(KeyView):
    key: str
    """The key itself, shown this once."""


def key_json(record: KeyRecord) -> KeyView:
    return KeyView(
        id=record.id,
        gateway_id=record.gateway_id,
        kind=record.kind,
        name=record.name,
        prefix=record.prefix,
        created_at_ms=record.created_at_ms,
        revoked_at_ms=record.revoked_at_ms,
    )


class OriginsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[Origin] = Field(max_length=100)


class LeadsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=100, ge=1, le=1000, description="How many leads, newest first")


class GatewayList(TypedDict):
    gateways: list[Gateway]


class LeadList(TypedDict):
    leads: list[LeadRecord]


class KeyList(TypedDict):
    keys: list[KeyView]


class ReceiptSecret(TypedDict):
    gateway_id: str
    secret: str
    algorithm: str


class AdminApi:
    def __init__(
        self,
        auth: AdminAuth,
        directory: GatewayDirectory,
        store: Store,
        keys: KeyService,
        *,
        max_body_bytes: int,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._auth = auth
        self._limiter = limiter
        self._directory = directory
        self._store = store
        self._keys = keys
        self._max_body_bytes = max_body_bytes

    async def _body(self, request: Request, model: type[_ModelT]) -> _ModelT:
        return await read_model(request, model, limit=self._max_body_bytes, status=422, strict_content_type=False)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/gateways", self._guarded(self.list_gateways), methods=["GET"]),
            Route("/v1/gateways", self._guarded(self.create_gateway), methods=["POST"]),
            Route("/v1/gateways/{gid}", self._guarded(self.show_gateway), methods=["GET"]),
            Route("/v1/gateways/{gid}/origins", self._guarded(self.put_origins), methods=["PUT"]),
            Route("/v1/gateways/{gid}/manifest", self._guarded(self.get_manifest), methods=["GET"]),
            Route("/v1/gateways/{gid}/manifest", self._guarded(self.put_manifest), methods=["PUT"]),
            Route("/v1/gateways/{gid}/leads", self._guarded(self.list_leads), methods=["GET"]),
            Route("/v1/gateways/{gid}/keys", self._guarded(self.list_keys), methods=["GET"]),
            Route("/v1/gateways/{gid}/keys", self._guarded(self.create_key), methods=["POST"]),
            Route("/v1/gateways/{gid}/keys/{key_id}", self._guarded(self.revoke_key), methods=["DELETE"]),
            Route("/v1/gateways/{gid}/receipt-secret", self._guarded(self.get_receipt_secret), methods=["GET"]),
        ]

    def _guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return admin_only(self._auth, self._limiter, handler)

    def operations(self) -> list[Operation]:
        gid = (Param("gid", "path", "The gateway's id", GatewayId),)
        read = (403, 404, 429)
        write = (403, 404, 413, 422, 429)

        def admin(method: Method, path: str, summary: str, **described: Any) -> Operation:
            defaults: dict[str, Any] = {"params": gid if "{gid}" in path else (), "errors": read}
            return Operation(method, path, summary, "admin", security="admin", **{**defaults, **described})

        return [
            admin("GET", "/v1/gateways", "List gateways", response=GatewayList, errors=(403, 429)),
            admin(
                "POST",
                "/v1/gateways",
                "Create a gateway",
                body=GatewayCreate,
                response=Gateway,
                status=201,
                errors=(403, 409, 413, 422, 429),
            ),
            admin("GET", "/v1/gateways/{gid}", "One gateway", response=Gateway),
            admin(
                "PUT",
                "/v1/gateways/{gid}/origins",
                "Replace the browser origins a gateway accepts",
                body=OriginsUpdate,
                response=Gateway,
                errors=(400, *write),
            ),
            admin("GET", "/v1/gateways/{gid}/manifest", "A gateway's agent manifest", response=AgentManifest),
            admin(
                "PUT",
                "/v1/gateways/{gid}/manifest",
                "Replace a gateway's agent manifest",
                body=AgentManifest,
                response=AgentManifest,
                errors=write,
            ),
            admin(
                "GET",
                "/v1/gateways/{gid}/leads",
                "The leads a gateway captured, newest first",
                query=LeadsQuery,
                response=LeadList,
                errors=(400, *read),
            ),
            admin(
                "GET", "/v1/gateways/{gid}/keys", "A gateway's API keys (never the keys themselves)", response=KeyList
            ),
            admin(
                "POST",
                "/v1/gateways/{gid}/keys",
                "Create an API key; the answer shows it this once",
                body=KeyCreate,
                response=KeyCreated,
                status=201,
                errors=write,
            ),
            admin(
                "DELETE",
                "/v1/gateways/{gid}/keys/{key_id}",
                "Revoke an API key",
                response=KeyView,
                params=(*gid, Param("key_id", "path", "The key's id")),
            ),
            admin(
                "GET",
                "/v1/gateways/{gid}/receipt-secret",
                "The secret `/track` receipts are signed with",
                response=ReceiptSecret,
            ),
        ]

    async def list_gateways(self, request: Request) -> JSONResponse:
        gateways = await self._directory.all()
        return JSONResponse({"gateways": [g.model_dump(mode="json") for g in gateways]})

    async def create_gateway(self, request: Request) -> JSONResponse:
        spec = await self._body(request, GatewayCreate)
        gateway = await self._directory.create(spec)
        return JSONResponse(gateway.model_dump(mode="json"), status_code=201)

    async def show_gateway(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        return JSONResponse(gateway.model_dump(mode="json"))

    async def put_origins(self, request: Request) -> JSONResponse:
        await self._directory.require(request.path_params["gid"])
        update = await self._body(request, OriginsUpdate)
        gateway = await self._directory.set_allowed_origins(request.path_params["gid"], update.allowed_origins)
        return JSONResponse(gateway.model_dump(mode="json"))

    async def get_manifest(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        return JSONResponse(gateway.manifest.model_dump(mode="json"))

    async def put_manifest(self, request: Request) -> JSONResponse:
        await self._directory.require(request.path_params["gid"])
        manifest = await self._body(request, AgentManifest)
        gateway = await self._directory.set_manifest(request.path_params["gid"], manifest)
        return JSONResponse(gateway.manifest.model_dump(mode="json"))

    async def list_leads(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        query = validated(LeadsQuery, dict(request.query_params))
        leads = await self._store.list_leads(gateway.id, limit=query.limit)
        return JSONResponse({"leads": [dataclasses.asdict(lead) for lead in leads]})

    async def list_keys(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        return JSONResponse({"keys": [key_json(key) for key in await self._keys.list(gateway.id)]})

    async def create_key(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        spec = await self._body(request, KeyCreate)
        record, plaintext = await self._keys.create(gateway.id, spec.kind, spec.name)
        return JSONResponse(KeyCreated(key=plaintext, **key_json(record)), status_code=201)

    async def revoke_key(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        record = await self._keys.revoke(gateway.id, request.path_params["key_id"])
        return JSONResponse(key_json(record))

    async def get_receipt_secret(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        secret = await receipt_secret(self._store, gateway.id)
        return JSONResponse(ReceiptSecret(gateway_id=gateway.id, secret=secret, algorithm=RECEIPT_ALGORITHM))
