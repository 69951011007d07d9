"""`track_mcp(server, org_id, ...)`: wrap a server built on the official SDK, get a `Tracker` handle.

The server is changed in one way only: a `TrackingMiddleware` joins its public `middleware` list
(the same list on `MCPServer` and the low-level `Server`), right after the SDK's own built-ins
(OpenTelemetry, the request-state boundary) and before any middleware of the application, so it
sees requests in plaintext and observes what the application's middleware answers too. Tools,
their signatures and schemas are left alone.

The seed's option names (the Agnost TypeScript SDK's `trackMCP(server, orgId, {...})`) are accepted as keyword
arguments beside the Python spelling, which stays primary (`SEED_OPTION_NAMES` holds the mapping):
`disableInput`, `disableOutput`, `identify`, `enableRequestQueuing`, `batchSize`, `maxRetries` and `retryDelay`
(in milliseconds, as the seed gives it; `retry_delay` is in seconds). Giving one option in both spellings with
different values is a `ValueError`. `enable_request_queuing=False` (`enableRequestQueuing: false`) turns
batching off: each captured item is sent on its own as soon as it is captured (a batch size of one), still by
the sink's background worker, so the server never waits for the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack

from mcp.server import MCPServer, Server
from mcp.server.context import ServerMiddleware
from pydantic import BaseModel, ConfigDict, Field

from .http_sink import DEFAULT_ENDPOINT, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DELAY, DEFAULT_TIMEOUT, HttpSink
from .middleware import DEFAULT_TOOLS_TTL, EnabledFn, IdentifyFn, ToolLister, TrackingMiddleware
from .privacy import DEFAULT_SENSITIVE_KEYS, Redactor
from .sessions import DEFAULT_MAX_SESSIONS, ConnectionFacts, SessionTable
from .sinks import DEFAULT_BATCH_SIZE, DEFAULT_CLOSE_TIMEOUT, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_QUEUE, CaptureSink
from .spool import DEFAULT_MAX_SPOOL_BYTES

if TYPE_CHECKING:  # only imported (lazily, in `track_mcp`) when OpenTelemetry is asked for
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .otel import OtelSwap

_SDK_MODULE_PREFIX: Final = "mcp."


class SeedOptions(TypedDict, total=False):
    """`track_mcp`'s options under the seed's camelCase names (see the module docstring)."""

    disableInput: bool
    disableOutput: bool
    enableRequestQueuing: bool
    batchSize: int
    maxRetries: int
    retryDelay: float
    """Milliseconds."""


SEED_OPTION_NAMES: Final = {
    "disableInput": "disable_input",
    "disableOutput": "disable_output",
    "enableRequestQueuing": "enable_request_queuing",
    "batchSize": "batch_size",
    "maxRetries": "max_retries",
    "retryDelay": "retry_delay",
    "identify": "identify",
}
"""The seed's option names and the Python names they stand for (`identify` is spelled alike)."""

_MILLISECONDS_OPTIONS: Final = frozenset({"retryDelay"})


def _python_options(given: dict[str, Any], seed: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The Python options `given`, overridden by the seed-named ones in `seed`, converted to our units."""
    unknown = sorted(set(seed) - SEED_OPTION_NAMES.keys())
    if unknown:
        raise TypeError(f"track_mcp() got unexpected keyword argument(s): {', '.join(unknown)}")
    options = dict(given)
    for seed_name, value in seed.items():
        name = SEED_OPTION_NAMES[seed_name]
        if seed_name in _MILLISECONDS_OPTIONS and isinstance(value, int | float) and not isinstance(value, bool):
            value = value / 1000
        if given[name] != defaults[name] and given[name] != value:
            raise ValueError(f"track_mcp() got {name} and {seed_name} with different values: give one of them")
        options[name] = value
    return options


class TrackingSettings(BaseModel):
    """`track_mcp`'s own options, validated (the HTTP sink validates its own)."""

    model_config = ConfigDict(frozen=True)

    org_id: str = Field(min_length=1, max_length=256)
    disable_input: bool = False
    disable_output: bool = False
    enable_request_queuing: bool = True
    sensitive_keys: frozenset[str] = DEFAULT_SENSITIVE_KEYS
    max_sessions: int = Field(default=DEFAULT_MAX_SESSIONS, ge=1)
    tools_ttl: float = Field(default=DEFAULT_TOOLS_TTL, ge=0)


class Tracker:
    """The handle `track_mcp` returns: the installed middleware, its sink and their counters."""

    def __init__(
        self,
        server: MCPServer[Any] | Server[Any],
        middleware: TrackingMiddleware,
        *,
        owns_sink: bool,
        otel: OtelSwap | None = None,
    ) -> None:
        self._server = server
        self.middleware = middleware
        self._owns_sink = owns_sink
        self._otel = otel

    @property
    def otel_middleware(self) -> ServerMiddleware[Any] | None:
        """The OpenTelemetry middleware `otel=True` installed, if any."""
        return self._otel.installed if self._otel is not None else None

    @property
    def sink(self) -> CaptureSink:
        return self.middleware.sink

    @property
    def org_id(self) -> str:
        return self.middleware.org_id

    @property
    def sent(self) -> int:
        """Items the sink delivered."""
        return self.sink.stats.sent

    @property
    def retried(self) -> int:
        """Requests to the backend that were retried."""
        return self.sink.stats.retried

    @property
    def dropped(self) -> dict[str, int]:
        """Items lost, by reason: `queue_full`, `closed`, `http_<status>`, `spool_full`, `capture_error`, ..."""
        return self.sink.stats.dropped

    @property
    def sessions(self) -> int:
        """Session keys currently remembered."""
        return len(self.middleware.sessions)

    def start(self) -> None:
        """Start delivery on the running loop now instead of at the first event."""
        self.sink.start()

    async def flush(self, timeout: float | None = None) -> bool:
        """Deliver (or spool) everything captured so far; False if `timeout` ran out first."""
        return await self.sink.flush(timeout)

    def detach(self) -> None:
        """Take the middleware off the server (and put the SDK's OpenTelemetry one back); nothing more is captured."""
        chain: list[Any] = self._server.middleware
        if self.middleware in chain:
            chain.remove(self.middleware)
        if self._otel is not None:
            self._otel.undo(chain)
            self._otel = None

    async def aclose(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Detach, then close the sink if `track_mcp` made it (or only flush one it was given)."""
        self.detach()
        if self._owns_sink:
            await self.sink.aclose(timeout)
        else:
            await self.sink.flush(timeout)


def _otel_middleware(
    middleware: TrackingMiddleware,
    redactor: Redactor,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
) -> ServerMiddleware[Any]:
    from .otel import OtelMiddleware  # here: with OpenTelemetry off, nothing of it is imported (nor in OtelSwap)

    sessions = middleware.sessions

    def session_id_of(facts: ConnectionFacts) -> str | None:
        return sessions.get(sessions.key(facts))

    return OtelMiddleware(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        session_id_of=session_id_of,
        redact=redactor.redact_string,
    )


def _install(server: MCPServer[Any] | Server[Any], middleware: ServerMiddleware[Any]) -> None:
    chain: list[Any] = server.middleware
    if any(isinstance(m, TrackingMiddleware) for m in chain):
        raise ValueError("this server is already tracked; aclose() its Tracker before tracking it again")
    index = 0
    while index < len(chain) and type(chain[index]).__module__.startswith(_SDK_MODULE_PREFIX):
        index += 1
    chain.insert(index, middleware)


def track_mcp(
    server: MCPServer[Any] | Server[Any],
    org_id: str,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    identify: IdentifyFn | None = None,
    disable_input: bool = False,
    disable_output: bool = False,
    enable_request_queuing: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    sink: CaptureSink | None = None,
    sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    max_queue: int = DEFAULT_MAX_QUEUE,
    timeout: float = DEFAULT_TIMEOUT,
    spool_dir: str | PathLike[str] | None = None,
    max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    list_tools: ToolLister | None = None,
    tools_ttl: float = DEFAULT_TOOLS_TTL,
    enabled: EnabledFn | None = None,
    private_arguments: Mapping[str, Iterable[str]] | None = None,
    sink_redacts: bool = False,
    otel: bool = False,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    **seed_options: Unpack[SeedOptions],
) -> Tracker:
    """Track `server` (an `MCPServer` or a low-level `Server`) for `org_id`.

    Without `sink`, an `HttpSink` to `endpoint` is made from `batch_size` (1 when `enable_request_queuing` is
    False: every item leaves at once), `flush_interval`,
    `max_queue`, `max_retries`, `retry_delay`, `timeout`, `spool_dir` and `max_spool_bytes`;
    with one, those are unused and the sink stays the caller's to close. `identify(request, env)`
    (sync or async) gives a session's `user_data`; `list_tools` replaces asking the server for
    its tool names; `enabled()`, when given, is asked before each request and False skips recording
    it; `private_arguments` maps a tool name to arguments whose values are hashed in its args and
    result wherever they appear (`{"book_demo": ["name", "company", "message"]}`); `sink_redacts=True` says the
    given `sink` redacts what it keeps (a `LocalSink` into the gateway's store), so events are not redacted twice:
    only text that must be cut to fit is redacted here, before the cut. Call
    `await tracker.aclose()` on shutdown. The seed's camelCase names work too (`disableInput=True`, ...).

    `otel=True` (or a `tracer_provider` or `meter_provider`) also emits an OpenTelemetry server span and a
    duration measurement per MCP request, after the semantic conventions for MCP (`otel.py`), through the given
    providers or the global ones; it takes the place of the SDK's own OpenTelemetry middleware.
    """
    if not isinstance(server, MCPServer | Server):
        raise TypeError(f"track_mcp wraps an MCPServer or a low-level Server, not {type(server).__name__}")
    if seed_options:
        options = _python_options(
            {
                "disable_input": disable_input,
                "disable_output": disable_output,
                "enable_request_queuing": enable_request_queuing,
                "batch_size": batch_size,
                "max_retries": max_retries,
                "retry_delay": retry_delay,
                "identify": identify,
            },
            dict(seed_options),
            _SEED_DEFAULTS,
        )
        disable_input, disable_output = options["disable_input"], options["disable_output"]
        enable_request_queuing, batch_size = options["enable_request_queuing"], options["batch_size"]
        max_retries, retry_delay, identify = options["max_retries"], options["retry_delay"], options["identify"]
    settings = TrackingSettings(
        org_id=org_id,
        disable_input=disable_input,
        disable_output=disable_output,
        enable_request_queuing=enable_request_queuing,
        sensitive_keys=frozenset(sensitive_keys),
        max_sessions=max_sessions,
        tools_ttl=tools_ttl,
    )
    owns_sink = sink is None
    if sink is None:
        sink = HttpSink(
            endpoint,
            settings.org_id,
            batch_size=batch_size if settings.enable_request_queuing else 1,
            flush_interval=flush_interval,
            max_queue=max_queue,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            spool_dir=spool_dir,
            max_spool_bytes=max_spool_bytes,
        )
    redactor = Redactor(settings.sensitive_keys)
    middleware = TrackingMiddleware(
        server,
        sink=sink,
        org_id=settings.org_id,
        identify=identify,
        disable_input=settings.disable_input,
        disable_output=settings.disable_output,
        redactor=redactor,
        sessions=SessionTable(settings.max_sessions),
        list_tools=list_tools,
        tools_ttl=settings.tools_ttl,
        enabled=enabled,
        private_arguments=private_arguments,
        sink_redacts=sink_redacts,
    )
    _install(server, middleware)
    swap = None
    if otel or tracer_provider is not None or meter_provider is not None:
        installed = _otel_middleware(middleware, redactor, tracer_provider, meter_provider)
        from .otel import OtelSwap

        swap = OtelSwap(server.middleware, installed)
    return Tracker(server, middleware, owns_sink=owns_sink, otel=swap)


_SEED_DEFAULTS: Final[dict[str, Any]] = {
    "disable_input": False,
    "disable_output": False,
    "enable_request_queuing": True,
    "batch_size": DEFAULT_BATCH_SIZE,
    "max_retries": DEFAULT_MAX_RETRIES,
    "retry_delay": DEFAULT_RETRY_DELAY,
    "identify": None,
}
"""`track_mcp`'s defaults of the options the seed names: a value other than these was given on purpose."""
