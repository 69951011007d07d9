"""The tenant: a gateway has an id, a name, the browser origins it accepts and an agent manifest.

`GatewayDirectory` is the one way the rest of the code reads and changes gateways. It caches each
gateway for `Settings.gateway_cache_seconds`, so MCP requests don't hit the database, while a
manifest changed by any process (CLI, admin API, another worker) shows up within that time; a
change made through this process's directory shows up at once.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator
from starlette.requests import Request

from .errors import ConflictError, InvalidInputError, NotFoundError
from .store import GatewayRecord, Store
from .web import ApiError

GATEWAY_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DEMO_GATEWAY_ID: Final = "demo"
BUILTIN_TOOLS: Final = ("book_demo", "track_event")
"""Tools every gateway can offer; the manifest's `enabled_tools` picks among them."""

GATEWAY_HEADER: Final = "x-gateway-id"
GATEWAY_QUERY: Final = "gid"
_GATEWAY_ID: Final = re.compile(GATEWAY_ID_PATTERN)

DEFAULT_ALLOWED_ORIGINS: Final = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")

_ORIGIN = re.compile(r"^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}|\*))?$")


def _check_origin(origin: str) -> str:
    if not _ORIGIN.match(origin):
        raise ValueError(f"{origin!r} is not an origin like https://example.com or http://localhost:*")
    return origin


Origin = Annotated[str, AfterValidator(_check_origin)]


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request's `Origin` header is acceptable: absent (not a browser), listed, or port-wildcarded."""
    if not origin:
        return True
    for pattern in allowed:
        if origin == pattern or (pattern.endswith(":*") and origin.startswith(pattern[:-1])):
            return True
    return False


class PricingTier(BaseModel):
    """One plan as agents should quote it. Extra keys are kept and shown to agents as they are."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=80)
    price: int | float | None = Field(default=None, ge=0, description="Price per interval; null means 'contact us'.")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    interval: Literal["month", "year", "one-time"] | None = "month"
    description: str = Field(default="", max_length=2000)
    features: list[str] = Field(default_factory=list, max_length=100)


class AgentManifest(BaseModel):
    """What a gateway tells agents: prices, docs, the system hint, and which tools it offers."""

    model_config = ConfigDict(extra="forbid")

    pricing: list[PricingTier] = Field(max_length=50)
    docs_url: HttpUrl
    docs_summary: str = Field(default="", max_length=4000)
    system_hint: str = Field(min_length=1, max_length=20_000)
    enabled_tools: list[str] = Field(default_factory=lambda: list(BUILTIN_TOOLS))
    mcp_enabled: bool = Field(default=True, strict=True)
    """Serve MCP for this gateway (403 otherwise). Booleans are strict: JSON `true`/`false`, never `0`/`1`/"true"."""
    tracking_enabled: bool = Field(default=True, strict=True)
    """Record this gateway's MCP sessions and events in its own store."""

    @field_validator("enabled_tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = sorted(set(tools) - set(BUILTIN_TOOLS))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; available: {list(BUILTIN_TOOLS)}")
        return list(dict.fromkeys(tools))


def default_manifest() -> AgentManifest:
    """The bundled content a fresh install serves, so everything works with zero set-up."""
    text = resources.files(__package__).joinpath("default_manifest.json").read_text(encoding="utf-8")
    return AgentManifest.model_validate_json(text)


class GatewayCreate(BaseModel):
    """Body of `POST /v1/gateways` and arguments of `mcp-gateway gateways create`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=GATEWAY_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    allowed_origins: list[Origin] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS), max_length=100)
    manifest: AgentManifest | None = None


class Gateway(BaseModel):
    """A gateway as the API shows it."""

    id: str
    name: str
    allowed_origins: tuple[str, ...]
    manifest: AgentManifest
    created_at_ms: int
    updated_at_ms: int

    @classmethod
    def from_record(cls, record: GatewayRecord) -> Gateway:
        return cls(
            id=record.id,
            name=record.name,
            allowed_origins=record.allowed_origins,
            manifest=AgentManifest.model_validate(record.manifest),
            created_at_ms=record.created_at_ms,
            updated_at_ms=record.updated_at_ms,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _manifest_json(manifest: AgentManifest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manifest.model_dump_json())
    return data


class GatewayDirectory:
    """Reads and changes gateways, with a short per-process cache in front of the store."""

    def __init__(self, store: Store, *, cache_seconds: float) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Gateway | None]] = {}

    async def get(self, gateway_id: str) -> Gateway | None:
        now = time.monotonic()
        hit = self._cache.get(gateway_id)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        record = await self._store.get_gateway(gateway_id)
        gateway = None if record is None else Gateway.from_record(record)
        self._cache[gateway_id] = (now, gateway)
        return gateway

    async def require(self, gateway_id: str) -> Gateway:
        gateway = await self.get(gateway_id)
        if gateway is None:
            raise NotFoundError(f"gateway {gateway_id!r} does not exist")
        return gateway

    async def all(self) -> list[Gateway]:
        return [Gateway.from_record(record) for record in await self._store.list_gateways()]

    async def create(self, spec: GatewayCreate) -> Gateway:
        now = _now_ms()
        record = GatewayRecord(
            id=spec.id,
            name=spec.name,
            allowed_origins=tuple(spec.allowed_origins),
            manifest=_manifest_json(spec.manifest or default_manifest()),
            created_at_ms=now,
            updated_at_ms=now,
        )
        await self._store.create_gateway(record)
        return self._remember(Gateway.from_record(record))

    async def set_manifest(self, gateway_id: str, manifest: AgentManifest) -> Gateway:
        record = await self._store.update_gateway(gateway_id, manifest=_manifest_json(manifest), now_ms=_now_ms())
        return self._remember(Gateway.from_record(record))

    async def set_allowed_origins(self, gateway_id: str, origins: list[str]) -> Gateway:
        try:
            checked = tuple(_check_origin(origin) for origin in origins)
        except ValueError as exc:
            raise InvalidInputError(str(exc), field="allowed_origins") from None
        record = await self._store.update_gateway(gateway_id, allowed_origins=checked, now_ms=_now_ms())
        return self._remember(Gateway.from_record(record))

    async def ensure_demo(self) -> bool:
        """Create the `demo` gateway from the bundled content unless it exists; True if created."""
        if await self._store.get_gateway(DEMO_GATEWAY_ID) is not None:
            return False
        try:
            await self.create(GatewayCreate(id=DEMO_GATEWAY_ID, name="Demo gateway"))
        except ConflictError:  # another process created it first
            return False
        return True

    def forget(self, gateway_id: str) -> None:
        """Read `gateway_id` from the store next time (it was changed or deleted elsewhere than here)."""
        self._cache.pop(gateway_id, None)

    def _remember(self, gateway: Gateway) -> Gateway:
        self._cache[gateway.id] = (time.monotonic(), gateway)
        return gateway


async def request_gateway(request: Request, directory: GatewayDirectory, gateway_id: str | None = None) -> Gateway:
    """The gateway a request names (`gateway_id`, else `?gid=`, else `X-Gateway-ID`): 400 if none, 404 if unknown."""
    gateway_id = (
        gateway_id or request.query_params.get(GATEWAY_QUERY) or request.headers.get(GATEWAY_HEADER) or ""
    ).strip()
    if not gateway_id:
        raise ApiError(400, "Missing gateway id: pass ?gid= or the X-Gateway-ID header", field="X-Gateway-ID")
    gateway = await directory.get(gateway_id) if _GATEWAY_ID.match(gateway_id) else None
    if gateway is None:
        raise ApiError(404, "Gateway Not Configured")
    return gateway
