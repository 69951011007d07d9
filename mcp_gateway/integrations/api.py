"""The integrations' admin routes, behind the admin token like the rest of the admin API (`admin.py`).

    GET    /v1/gateways/{gid}/integrations               the gateway's integrations, each with its delivery status
    POST   /v1/gateways/{gid}/integrations               create one (IntegrationCreate) -> 201
    GET    /v1/gateways/{gid}/integrations/{iid}         one, with its delivery status
    PATCH  /v1/gateways/{gid}/integrations/{iid}         change it (IntegrationUpdate; config merged)
    DELETE /v1/gateways/{gid}/integrations/{iid}         delete it and its deliveries
    POST   /v1/gateways/{gid}/integrations/{iid}/test    send one test event now; the platform's verdict
    POST   /v1/gateways/{gid}/integrations/{iid}/replay  send again the deliveries of events in a time window

Secrets are never answered: a view says `has_<field>: true`. A bad body is 422 naming the field
(`config.pixel_id`, `kind`, ...), an unknown gateway or integration 404.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from typing_extensions import TypedDict

from ..admin import AdminAuth, admin_only
from ..errors import InvalidInputError
from ..gateways import GatewayDirectory
from ..openapi import GatewayId, Method, Operation, Param
from ..ratelimit import RateLimiter
from ..store import Store
from ..store.outbox import replay
from ..web import ApiError, read_model
from .dispatch import Dispatcher
from .platforms import ForwardedEvent, ForwardedUser, Outcome
from .registry import Integration, IntegrationCreate, IntegrationService, IntegrationUpdate
from .status import DeliveryStatusView, delivery_status

TEST_EVENT_NAME: Final = "Test"
TEST_EXTERNAL_ID: Final = hashlib.sha256(b"mcp-gateway-test").hexdigest()
"""The test event's user: platforms refuse an event without any identifier (Meta: user_data needs one)."""
TEST_USER_AGENT: Final = "mcp-gateway integration test"


class IntegrationView(TypedDict):
    id: str
    gateway_id: str
    kind: str
    name: str
    enabled: bool
    sync: bool
    config: dict[str, Any]
    """The config without its secrets: `has_<secret field>: true|false` in their place."""
    created_at_ms: int
    updated_at_ms: int


class IntegrationWithStatus(IntegrationView):
    status: DeliveryStatusView


class IntegrationList(TypedDict):
    integrations: list[IntegrationWithStatus]


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_name: str = Field(default=TEST_EVENT_NAME, min_length=1, max_length=128, description="Our event name")


class TestResult(TypedDict):
    ok: bool
    outcome: str
    """delivered, retry (5xx, 429, timeout) or failed (refused), or skipped (the integration's filter drops it)."""
    error: str | None
    event_id: str


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since_ms: int = Field(ge=0, description="Events from this time (ms since the epoch) on")
    until_ms: int | None = Field(default=None, ge=0, description="Until before this time; default now")


class ReplayResult(TypedDict):
    replayed: int


class Deleted(TypedDict):
    id: str
    deleted: bool


def _now_ms() -> int:
    return int(time.time() * 1000)


class IntegrationsApi:
    def __init__(
        self,
        auth: AdminAuth,
        directory: GatewayDirectory,
        store: Store,
        integrations: IntegrationService,
        dispatcher: Dispatcher,
        *,
        max_body_bytes: int,
        limiter: RateLimiter | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._auth = auth
        self._directory = directory
        self._store = store
        self._integrations = integrations
        self._dispatcher = dispatcher
        self._max_body_bytes = max_body_bytes
        self._limiter = limiter
        self._wake = wake

    def routes(self) -> list[BaseRoute]:
        base = "/v1/gateways/{gid}/integrations"
        one = base + "/{iid}"
        return [
            Route(base, self._guarded(self.list), methods=["GET"]),
            Route(base, self._guarded(self.create), methods=["POST"]),
            Route(one, self._guarded(self.show), methods=["GET"]),
            Route(one, self._guarded(self.update), methods=["PATCH"]),
            Route(one, self._guarded(self.delete), methods=["DELETE"]),
            Route(one + "/test", self._guarded(self.test), methods=["POST"]),
            Route(one + "/replay", self._guarded(self.replay), methods=["POST"]),
        ]

    def _guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return admin_only(self._auth, self._limiter, handler)

    def operations(self) -> list[Operation]:
        gid = Param("gid", "path", "The gateway's id", GatewayId)
        iid = Param("iid", "path", "The integration's id")
        base = "/v1/gateways/{gid}/integrations"

        def admin(method: Method, path: str, summary: str, **described: Any) -> Operation:
            params = (gid, iid) if "{iid}" in path else (gid,)
            defaults: dict[str, Any] = {"params": params, "errors": (403, 404, 429)}
            return Operation(method, path, summary, "integrations", security="admin", **{**defaults, **described})

        write = (403, 404, 413, 422, 429)
        return [
            admin("GET", base, "A gateway's integrations and their delivery status", response=IntegrationList),
            admin(
                "POST",
                base,
                "Forward a gateway's events to a platform (Meta CAPI, GA4, TikTok, webhook)",
                body=IntegrationCreate,
                response=IntegrationView,
                status=201,
                errors=write,
                description="Secret fields are stored encrypted and never answered (`has_<field>: true`).",
            ),
            admin("GET", base + "/{iid}", "One integration and its delivery status", response=IntegrationWithStatus),
            admin(
                "PATCH",
                base + "/{iid}",
                "Change an integration; `config` is merged into the stored one",
                body=IntegrationUpdate,
                response=IntegrationView,
                errors=write,
            ),
            admin("DELETE", base + "/{iid}", "Delete an integration and its deliveries", response=Deleted),
            admin(
                "POST",
                base + "/{iid}/test",
                "Send one test event to the platform now and answer its verdict",
                body=TestRequest,
                body_required=False,
                response=TestResult,
                errors=write,
            ),
            admin(
                "POST",
                base + "/{iid}/replay",
                "Send again every delivery of events in a time window, whatever became of it",
                body=ReplayRequest,
                response=ReplayResult,
                errors=write,
            ),
        ]

    async def _body(self, request: Request, model: type[Any]) -> Any:
        return await read_model(request, model, limit=self._max_body_bytes, status=422, strict_content_type=False)

    async def _with_status(self, integration: Integration) -> dict[str, Any]:
        return {**self._integrations.view(integration), "status": await delivery_status(self._store, integration)}

    async def list(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        integrations = await self._integrations.list(gateway.id)
        views = [await self._with_status(integration) for integration in integrations]
        return JSONResponse({"integrations": views})

    async def create(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        spec: IntegrationCreate = await self._body(request, IntegrationCreate)
        try:
            integration = await self._integrations.create(gateway.id, spec)
        except InvalidInputError as exc:
            raise ApiError(422, str(exc), field=exc.field) from None
        return JSONResponse(self._integrations.view(integration), status_code=201)

    async def show(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        integration = await self._integrations.get(gateway.id, request.path_params["iid"])
        return JSONResponse(await self._with_status(integration))

    async def update(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        await self._integrations.get(gateway.id, request.path_params["iid"])
        patch: IntegrationUpdate = await self._body(request, IntegrationUpdate)
        try:
            integration = await self._integrations.update(gateway.id, request.path_params["iid"], patch)
        except InvalidInputError as exc:
            raise ApiError(422, str(exc), field=exc.field) from None
        return JSONResponse(self._integrations.view(integration))

    async def delete(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        await self._integrations.delete(gateway.id, request.path_params["iid"])
        return JSONResponse(Deleted(id=request.path_params["iid"], deleted=True))

    async def test(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        integration = await self._integrations.get(gateway.id, request.path_params["iid"])
        has_body = request.headers.get("content-length", "0") not in ("", "0")
        spec: TestRequest = await self._body(request, TestRequest) if has_body else TestRequest()
        platform = self._integrations.platform(integration.kind)
        event = ForwardedEvent(
            event_id="test_" + uuid.uuid4().hex,
            event_name=spec.event_name,
            event_time_ms=_now_ms(),
            action_source="website",
            event_source_url=None,
            user=ForwardedUser(external_id=TEST_EXTERNAL_ID, client_user_agent=TEST_USER_AGENT),
            custom_data={},
            gateway_id=gateway.id,
        )
        requests = platform.build_requests(integration.config, [event], now_ms=_now_ms())
        if not requests:
            result = TestResult(
                ok=False, outcome="skipped", error="the integration's events filter drops it", event_id=event.event_id
            )
            return JSONResponse(result)
        verdict = await self._dispatcher.send(platform, requests[0])
        ok = verdict.outcome is Outcome.DELIVERED
        return JSONResponse(
            TestResult(ok=ok, outcome=verdict.outcome.value, error=verdict.error, event_id=event.event_id)
        )

    async def replay(self, request: Request) -> JSONResponse:
        gateway = await self._directory.require(request.path_params["gid"])
        integration = await self._integrations.get(gateway.id, request.path_params["iid"])
        spec: ReplayRequest = await self._body(request, ReplayRequest)
        now = _now_ms()
        until = now if spec.until_ms is None else spec.until_ms
        if until < spec.since_ms:
            raise ApiError(422, "until_ms is before since_ms", field="until_ms")
        count = await self._store.write(
            lambda conn: replay(conn, integration.id, since_ms=spec.since_ms, until_ms=until, now_ms=now)
        )
        self._wake()
        return JSONResponse(ReplayResult(replayed=count))
