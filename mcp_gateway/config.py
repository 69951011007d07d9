"""Settings for one gateway process: read once at the entry point, passed down as one object.

`Settings(...)` holds what its caller gives and the defaults, nothing else: a component or a test never reads the
environment behind its caller's back. The entry point (the CLI) builds them with `config_sources.load_settings`
from its flags, `MCP_GATEWAY_*` variables and one TOML file, through pydantic-settings' sources.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX: Final = "MCP_GATEWAY_"
"""Every setting's variable is `MCP_GATEWAY_<NAME>` (`config_sources.env_variable`), `db_path`'s `MCP_GATEWAY_DB`."""
OTEL_ENDPOINT_VARIABLE: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""OpenTelemetry's standard variable for an OTLP collector, honoured when `MCP_GATEWAY_OTLP_ENDPOINT` is unset."""

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DEFAULT_WORKERS: Final = 1
"""Gateway processes `serve` runs on one port; more than one needs PostgreSQL."""

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
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


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """The SQLite file when neither `--db` nor `MCP_GATEWAY_DB` names one: in the user's data directory,
    `$XDG_DATA_HOME/mcp-gateway/`, else `~/.local/share/mcp-gateway/`, whatever the working directory."""
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "mcp-gateway" / DB_FILE_NAME


_RETENTION_PERIODS: Final = ("event_retention_days", "analytics_retention_days", "health_retention_days")


class Settings(BaseSettings):
    """Everything a gateway process needs to know, validated once. Each field's docstring is its documentation
    (README "Configuration" is generated from them: `config_flags.settings_table`)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        env_prefix=ENV_PREFIX,
        case_sensitive=True,
        env_ignore_empty=True,  # an empty variable is unset, as it always was
    )

    host: str = DEFAULT_HOST
    """Interface `serve` binds; loopback by default."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """Port `serve` binds."""
    workers: int = Field(default=DEFAULT_WORKERS, ge=1, le=1024)
    """Gateway processes sharing the port; more than 1 needs PostgreSQL (`database_url`)."""
    log_level: LogLevel = "info"
    """`debug`, `info`, `warning` or `error`."""
    log_format: LogFormat = "text"
    """`text`, or `json`: one object per line (`ts`, `level`, `logger`, `message`, `exception`), uvicorn's too."""
    db_path: Path = Field(default_factory=default_db_path)
    """The SQLite file, whatever the working directory."""
    database_url: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    """A PostgreSQL server (`postgresql://user:password@host:port/dbname`); when set, `db_path` is not used."""
    admin_token: str | None = Field(default=None, min_length=16)
    """The admin API's token; unset, one is generated at first start, printed once and stored hashed."""
    metrics_token: str | None = Field(default=None, min_length=16)
    """When set, `GET /metrics` wants it as `Authorization: Bearer`; unset, /metrics is open like /health."""
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_HOSTS
    """Host headers accepted (a comma-separated list in a variable); add your public host name beyond localhost."""
    max_sse_connections_per_ip: int = Field(default=DEFAULT_MAX_SSE_CONNECTIONS_PER_IP, ge=1)
    """Concurrent `GET /v1/mcp/sse` streams one client IP may hold."""
    mcp_session_idle_seconds: float = Field(default=DEFAULT_MCP_SESSION_IDLE_SECONDS, gt=0, allow_inf_nan=False)
    """A Streamable HTTP session with no request in flight (an open GET stream counts) for this long is closed."""
    max_mcp_sessions: int = Field(default=DEFAULT_MAX_MCP_SESSIONS, ge=1)
    """Open MCP sessions per process; at the maximum the least recently active idle one is closed for a new one."""
    max_mcp_sessions_per_ip: int = Field(default=DEFAULT_MAX_MCP_SESSIONS_PER_IP, ge=1)
    """Open MCP sessions per client IP (an IPv6 /64), per process; then 429."""
    new_mcp_sessions_per_ip_per_minute: int = Field(default=DEFAULT_NEW_MCP_SESSIONS_PER_IP_PER_MINUTE, ge=1)
    """New MCP sessions (Streamable HTTP `initialize`, SSE streams) per client IP per minute, per process."""
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    """Largest request body any route reads; bigger bodies get 413."""
    gateway_cache_seconds: float = Field(default=DEFAULT_GATEWAY_CACHE_SECONDS, ge=0, allow_inf_nan=False)
    """How long a process serves a gateway's manifest (and keys) from memory before re-reading the store."""
    retention_days: int | None = Field(default=None, ge=0)
    """The old single period: when set, the default of the three below (a period set on its own still wins)."""
    event_retention_days: int = Field(default=DEFAULT_EVENT_RETENTION_DAYS, ge=0)
    """Days raw events and MCP sessions are kept; 0 keeps them."""
    analytics_retention_days: int = Field(default=DEFAULT_ANALYTICS_RETENTION_DAYS, ge=0)
    """Days traffic rollups, sketches and web sessions are kept; 0 keeps them."""
    health_retention_days: int = Field(default=DEFAULT_HEALTH_RETENTION_DAYS, ge=0)
    """Days MCP calls, errors and latency per tool, resource and prompt are kept; 0 keeps them."""
    track_rate_limit: int = Field(default=DEFAULT_TRACK_RATE_LIMIT, ge=1)
    """`POST /track` requests per gateway and client IP per minute, then 429."""
    v1_track_rate_limit: int = Field(default=DEFAULT_V1_TRACK_RATE_LIMIT, ge=1)
    """`POST /v1/track` requests per minute per `sk_` key, and per `pk_` key and client IP, then 429."""
    api_rate_limit: int = Field(default=DEFAULT_API_RATE_LIMIT, ge=1)
    """Requests per key per minute on the analytics and admin APIs, then 429."""
    header_timeout_seconds: float = Field(default=DEFAULT_HEADER_TIMEOUT_SECONDS, gt=0, le=3600)
    """Seconds a request's headers may take to arrive (then 408 and closed)."""
    body_timeout_seconds: float = Field(default=DEFAULT_BODY_TIMEOUT_SECONDS, gt=0, le=3600)
    """Seconds a request body may go without a byte (then 408 and closed)."""
    max_connections_per_ip: int = Field(default=DEFAULT_MAX_CONNECTIONS_PER_IP, ge=1)
    """Open connections per client address (IPv6: per /64) per process; more get 429."""
    max_connections: int | None = Field(default=None, ge=1)
    """Open connections one process holds in all (more are answered 503 and closed); None: 90% of its file limit."""
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    """Addresses or networks (CIDR) of reverse proxies whose `X-Forwarded-For`/`-Proto` count; none by default."""
    account_tier: str = Field(default=DEFAULT_ACCOUNT_TIER, min_length=1, max_length=40)
    """The `tier` `GET /account` names: a label."""
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
    """Tries of one integration delivery before it is dead-lettered."""
    forward_retry_base_seconds: float = Field(default=DEFAULT_FORWARD_RETRY_BASE_SECONDS, gt=0, le=3600)
    """The first retry's delay; each further one doubles it (with jitter)."""
    forward_retry_max_seconds: float = Field(default=DEFAULT_FORWARD_RETRY_MAX_SECONDS, gt=0, le=86400)
    """The longest delay between two tries of a delivery."""
    forward_timeout_seconds: float = Field(default=DEFAULT_FORWARD_TIMEOUT_SECONDS, gt=0, le=300)
    """Longest one request to a platform may take; a timeout is retried."""
    forward_poll_seconds: float = Field(default=DEFAULT_FORWARD_POLL_SECONDS, gt=0, le=60)
    """How often the delivery worker looks for due deliveries when it has nothing to do."""
    forward_lease_seconds: float = Field(default=DEFAULT_FORWARD_LEASE_SECONDS, ge=1, le=86400)
    """How long a claimed delivery is its worker's; after that it is due again."""
    mcp_json_response: bool = False
    """Answer Streamable HTTP requests as `application/json` (the SDK's `json_response`), never as an SSE stream:
    faster, but nothing a handler sends during a call (progress, log messages, sampling, elicitation) reaches the
    client, and a call is not cancelled when its client disconnects."""
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)
    """An OTLP/HTTP collector's base URL (`http://localhost:4318`): the gateway then exports its own spans (MCP
    requests, HTTP requests) to `{base}/v1/traces` and its MCP metrics to `{base}/v1/metrics`
    (`MCP_GATEWAY_OTLP_ENDPOINT`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT`). Unset: nothing is exported
    and nothing of OpenTelemetry's SDK is loaded. Needs the `otel` extra."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """What the caller gives, nothing read behind its back: `config_sources.load_settings` reads the flags,
        the environment and the config file, once, at the entry point."""
        return (init_settings,)

    @field_validator("allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """A variable (or a config file's string) holds a list as `a,b,c`."""
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

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
