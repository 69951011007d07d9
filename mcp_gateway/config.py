"""Settings for one gateway process: read once at the entry point, passed down as one object."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_PREFIX: Final = "MCP_GATEWAY_"
OTEL_ENDPOINT_VARIABLE: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""OpenTelemetry's standard variable for an OTLP collector, honoured when `MCP_GATEWAY_OTLP_ENDPOINT` is unset."""

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DB_FILE_NAME: Final = "mcp-gateway.db"
LEGACY_DB_PATH: Final = Path(DB_FILE_NAME)
"""Where version 0.1 kept the database by default: the working directory, whichever it was."""

DEFAULT_ALLOWED_HOSTS: Final = ("127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*")
"""Host headers accepted by default: loopback only, which is DNS-rebinding protection for a local server."""

DEFAULT_MAX_SSE_CONNECTIONS_PER_IP: Final = 10
"""Concurrent `GET /v1/mcp/sse` streams one client IP may hold (the seed's rate-limit table)."""

DEFAULT_MCP_SESSION_IDLE_SECONDS: Final = 900.0
"""An MCP session (Streamable HTTP) with no request in flight for this long is closed (the SDK's 30 min, halved)."""

DEFAULT_MAX_MCP_SESSIONS: Final = 10_000
"""Open MCP sessions (Streamable HTTP and SSE) one process holds; past it the least recently active idle one goes."""

DEFAULT_MAX_MCP_SESSIONS_PER_IP: Final = 100
"""Open MCP sessions one client IP (an IPv6 /64) may hold in one process before 429."""

DEFAULT_NEW_MCP_SESSIONS_PER_IP_PER_MINUTE: Final = 120
"""New MCP sessions (`initialize` without a session, SSE streams) one client IP may open per minute before 429."""

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest request body any route reads; bigger bodies get 413."""

DEFAULT_GATEWAY_CACHE_SECONDS: Final = 1.0
"""How long a process serves a gateway's manifest from memory before re-reading it from the store."""


DEFAULT_TRACK_RATE_LIMIT: Final = 100
"""`POST /track` requests per gateway and client IP per minute (seed 000's number, counted per IP as seed 001's)."""

DEFAULT_V1_TRACK_RATE_LIMIT: Final = 200
"""`POST /v1/track` requests per minute before 429 `rate_limited` (seed 004's burst): per `sk_` key, per `pk_` key
and client IP."""

DEFAULT_API_RATE_LIMIT: Final = 1000
"""Requests per key per minute on the analytics and admin APIs (seed 000's dashboard API limit)."""

# -- retention (mcp_gateway/store/retention.py): seed 000's table; 0 keeps forever
DEFAULT_EVENT_RETENTION_DAYS: Final = 30
"""Raw events and MCP sessions (the seed's event logs; kept as long as the analytics that read them)."""

DEFAULT_ANALYTICS_RETENTION_DAYS: Final = 30
"""Traffic rollups, sketches, web sessions and session counts (the seed's aggregated analytics: 30 days)."""

DEFAULT_HEALTH_RETENTION_DAYS: Final = 60
"""MCP call counts, errors and latency per tool, resource and prompt (the seed's health stats: 60 days)."""

# -- account limits (seed 002's tier_limits; mcp_gateway/accounts/): None is unlimited
DEFAULT_ACCOUNT_TIER: Final = "self-hosted"
"""What `GET /account` names the tier: a label; the limits are `max_projects` and `max_events_lifetime`."""

_NUMBER_VARIABLES: Final = (
    "MAX_PROJECTS",
    "MAX_EVENTS_LIFETIME",
    "TRACK_RATE_LIMIT",
    "V1_TRACK_RATE_LIMIT",
    "API_RATE_LIMIT",
    "RETENTION_DAYS",
    "EVENT_RETENTION_DAYS",
    "ANALYTICS_RETENTION_DAYS",
    "HEALTH_RETENTION_DAYS",
    "MCP_SESSION_IDLE_SECONDS",
    "MAX_MCP_SESSIONS",
    "MAX_MCP_SESSIONS_PER_IP",
    "NEW_MCP_SESSIONS_PER_IP_PER_MINUTE",
    "HEADER_TIMEOUT_SECONDS",
    "BODY_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_CONNECTIONS",
)
"""Limits read from `MCP_GATEWAY_<name>` into the setting of the same name in lower case (validated there)."""

# -- connections (mcp_gateway/connections.py) and whose forwarded headers count
DEFAULT_HEADER_TIMEOUT_SECONDS: Final = 10.0
"""Longest a request's headers may take to arrive, from the connection (or the request's first byte) on; then 408."""

DEFAULT_BODY_TIMEOUT_SECONDS: Final = 20.0
"""Longest a request body may go without a byte arriving; then 408."""

DEFAULT_MAX_CONNECTIONS_PER_IP: Final = 100
"""Open connections one client address (IPv6: one /64) may hold per process; more are answered 429 and closed."""


# -- integrations: forwarding events to ad and analytics platforms (mcp_gateway/integrations/)
DEFAULT_FORWARD_MAX_ATTEMPTS: Final = 8
"""Tries of one delivery before it is dead-lettered (`dead`; a replay sends it again)."""

DEFAULT_FORWARD_RETRY_BASE_SECONDS: Final = 2.0
"""The first retry's delay; each further one doubles it (with jitter), up to `DEFAULT_FORWARD_RETRY_MAX_SECONDS`."""

DEFAULT_FORWARD_RETRY_MAX_SECONDS: Final = 3600.0

DEFAULT_FORWARD_TIMEOUT_SECONDS: Final = 10.0
"""Longest one request to a platform may take; a timeout is retried."""

DEFAULT_FORWARD_POLL_SECONDS: Final = 1.0
"""How often the delivery worker looks for due deliveries when it has nothing to do."""

DEFAULT_FORWARD_LEASE_SECONDS: Final = 300.0
"""How long a claimed delivery is its worker's; a process that died holding it leaves it due again after this."""

_FORWARD_VARIABLES: Final = (
    "FORWARD_MAX_ATTEMPTS",
    "FORWARD_RETRY_BASE_SECONDS",
    "FORWARD_RETRY_MAX_SECONDS",
    "FORWARD_TIMEOUT_SECONDS",
    "FORWARD_POLL_SECONDS",
    "FORWARD_LEASE_SECONDS",
)


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """The SQLite file when neither `--db` nor `MCP_GATEWAY_DB` names one: in the user's data directory,
    `$XDG_DATA_HOME/mcp-gateway/`, else `~/.local/share/mcp-gateway/`, whatever the working directory."""
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "mcp-gateway" / DB_FILE_NAME


_RETENTION_PERIODS: Final = ("event_retention_days", "analytics_retention_days", "health_retention_days")


class Settings(BaseModel):
    """Everything a gateway process needs to know, validated once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    db_path: Path = Field(default_factory=default_db_path)
    database_url: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    """A PostgreSQL server (`postgresql://user:password@host:port/dbname`); when set, `db_path` is not used."""
    admin_token: str | None = Field(default=None, min_length=16)
    metrics_token: str | None = Field(default=None, min_length=16)
    """When set, `GET /metrics` wants it as `Authorization: Bearer`; unset, /metrics is open like /health."""
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    max_sse_connections_per_ip: int = Field(default=DEFAULT_MAX_SSE_CONNECTIONS_PER_IP, ge=1)
    mcp_session_idle_seconds: float = Field(default=DEFAULT_MCP_SESSION_IDLE_SECONDS, gt=0, allow_inf_nan=False)
    max_mcp_sessions: int = Field(default=DEFAULT_MAX_MCP_SESSIONS, ge=1)
    max_mcp_sessions_per_ip: int = Field(default=DEFAULT_MAX_MCP_SESSIONS_PER_IP, ge=1)
    new_mcp_sessions_per_ip_per_minute: int = Field(default=DEFAULT_NEW_MCP_SESSIONS_PER_IP_PER_MINUTE, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    gateway_cache_seconds: float = Field(default=DEFAULT_GATEWAY_CACHE_SECONDS, ge=0)
    retention_days: int | None = Field(default=None, ge=0)
    """The old single period (`MCP_GATEWAY_RETENTION_DAYS`): when set, the default of the three below."""
    event_retention_days: int = Field(default=DEFAULT_EVENT_RETENTION_DAYS, ge=0)
    analytics_retention_days: int = Field(default=DEFAULT_ANALYTICS_RETENTION_DAYS, ge=0)
    health_retention_days: int = Field(default=DEFAULT_HEALTH_RETENTION_DAYS, ge=0)
    track_rate_limit: int = Field(default=DEFAULT_TRACK_RATE_LIMIT, ge=1)
    v1_track_rate_limit: int = Field(default=DEFAULT_V1_TRACK_RATE_LIMIT, ge=1)
    api_rate_limit: int = Field(default=DEFAULT_API_RATE_LIMIT, ge=1)
    header_timeout_seconds: float = Field(default=DEFAULT_HEADER_TIMEOUT_SECONDS, gt=0, le=3600)
    body_timeout_seconds: float = Field(default=DEFAULT_BODY_TIMEOUT_SECONDS, gt=0, le=3600)
    max_connections_per_ip: int = Field(default=DEFAULT_MAX_CONNECTIONS_PER_IP, ge=1)
    max_connections: int | None = Field(default=None, ge=1)
    """Open connections one process holds in all (more are answered 503 and closed); None: 90% of its file limit."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of reverse proxies whose `X-Forwarded-For`/`-Proto` count; none by default."""
    account_tier: str = Field(default=DEFAULT_ACCOUNT_TIER, min_length=1, max_length=40)
    max_projects: int | None = Field(default=None, ge=1)
    """Projects one account may hold: `POST /projects` past it is 403 (seed 002's `projects_limit`); None: any."""
    max_events_lifetime: int | None = Field(default=None, ge=1)
    """Events one account's projects may store in all, ever (retention does not give them back): past it ingest
    refuses events with 403 `events_limit_reached`; None: any."""
    integrations_key: str | None = Field(default=None, min_length=44)
    """Fernet key(s) (`MCP_GATEWAY_INTEGRATIONS_KEY`, comma-separated, newest first) that encrypt integrations'
    secrets at rest; unset, a key file `integrations.key` (mode 0600) next to the SQLite file is created and used.
    Processes sharing one PostgreSQL database need the same key."""
    forward_max_attempts: int = Field(default=DEFAULT_FORWARD_MAX_ATTEMPTS, ge=1, le=100)
    forward_retry_base_seconds: float = Field(default=DEFAULT_FORWARD_RETRY_BASE_SECONDS, gt=0, le=3600)
    forward_retry_max_seconds: float = Field(default=DEFAULT_FORWARD_RETRY_MAX_SECONDS, gt=0, le=86400)
    forward_timeout_seconds: float = Field(default=DEFAULT_FORWARD_TIMEOUT_SECONDS, gt=0, le=300)
    forward_poll_seconds: float = Field(default=DEFAULT_FORWARD_POLL_SECONDS, gt=0, le=60)
    forward_lease_seconds: float = Field(default=DEFAULT_FORWARD_LEASE_SECONDS, ge=1, le=86400)
    mcp_json_response: bool = False
    """Answer Streamable HTTP requests as `application/json` (the SDK's `json_response`), never as an SSE stream:
    faster, but nothing a handler sends during a call (progress, log messages, sampling, elicitation) reaches the
    client, and a call is not cancelled when its client disconnects."""
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)
    """An OTLP/HTTP collector's base URL (`http://localhost:4318`): the gateway then exports its own spans (MCP
    requests, HTTP requests) to `{base}/v1/traces` and its MCP metrics to `{base}/v1/metrics`
    (`MCP_GATEWAY_OTLP_ENDPOINT`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT`). Unset: nothing is exported
    and nothing of OpenTelemetry's SDK is loaded. Needs the `otel` extra."""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(str(ipaddress.ip_network(proxy.strip(), strict=False)) for proxy in proxies)
        except ValueError:
            raise ValueError("each trusted proxy must be an IP address or network, e.g. 10.0.0.0/8") from None

    @model_validator(mode="before")
    @classmethod
    def _one_period_for_all(cls, data: object) -> object:
        """`retention_days` (the old single period) stands for each period not given on its own."""
        if isinstance(data, dict) and data.get("retention_days") is not None:
            return {**{name: data["retention_days"] for name in _RETENTION_PERIODS}, **data}
        return data

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `MCP_GATEWAY_*` variables; explicit overrides (CLI flags) win when not None."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        values["db_path"] = Path(db) if (db := env.get(ENV_PREFIX + "DB")) else default_db_path(env)
        if url := env.get(ENV_PREFIX + "DATABASE_URL"):
            values["database_url"] = url
        if token := env.get(ENV_PREFIX + "ADMIN_TOKEN"):
            values["admin_token"] = token
        if token := env.get(ENV_PREFIX + "METRICS_TOKEN"):
            values["metrics_token"] = token
        for name in _NUMBER_VARIABLES:
            if limit := env.get(ENV_PREFIX + name):
                values[name.lower()] = limit
        if tier := env.get(ENV_PREFIX + "ACCOUNT_TIER"):
            values["account_tier"] = tier
        for name in _FORWARD_VARIABLES:
            if number := env.get(ENV_PREFIX + name):
                values[name.lower()] = number
        if key := env.get(ENV_PREFIX + "INTEGRATIONS_KEY"):
            values["integrations_key"] = key
        if json_response := env.get(ENV_PREFIX + "MCP_JSON_RESPONSE"):
            values["mcp_json_response"] = json_response
        if endpoint := env.get(ENV_PREFIX + "OTLP_ENDPOINT") or env.get(OTEL_ENDPOINT_VARIABLE):
            values["otlp_endpoint"] = endpoint
        if hosts := env.get(ENV_PREFIX + "ALLOWED_HOSTS"):
            values["allowed_hosts"] = tuple(h.strip() for h in hosts.split(",") if h.strip())
        if proxies := env.get(ENV_PREFIX + "TRUSTED_PROXIES"):
            values["trusted_proxies"] = tuple(p.strip() for p in proxies.split(",") if p.strip())
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.model_validate(values)
