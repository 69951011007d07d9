"""`OtelMiddleware`: OpenTelemetry spans and metrics for every MCP request, after the semantic conventions for MCP.

Imported only when `track_mcp(..., otel=True)` (or a tracer or meter provider) asks for it; it needs nothing beyond
`opentelemetry-api`, which the `mcp` SDK itself depends on. Without a configured SDK (`opentelemetry-sdk`, a
`TracerProvider`) the API is a no-op and so is this.

The conventions (status Development), from https://opentelemetry.io/docs/specs/semconv/gen-ai/mcp/ (source:
https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/gen-ai/mcp.md):

Server span, one per request or notification the server receives:
- kind `SERVER`; name `"{mcp.method.name} {target}"`, the target being `gen_ai.tool.name` or `gen_ai.prompt.name`;
  just `"{mcp.method.name}"` without one (a resource URI is not a target by default: high cardinality).
- `mcp.method.name` (required): `tools/call`, `resources/read`, `prompts/get`, `tools/list`, `initialize`, ...
- `jsonrpc.request.id` (when a request, not a notification): the id as a string.
- `gen_ai.tool.name` / `gen_ai.prompt.name` (when the request names a tool or a prompt);
  `gen_ai.operation.name` = `execute_tool` for `tools/call` and never otherwise.
- `mcp.resource.uri` (for `resources/read`, `resources/subscribe`, `resources/unsubscribe`).
- `mcp.protocol.version` (`2025-11-25`), `mcp.session.id` (when part of a session),
  `network.transport` (`tcp` for HTTP, `pipe` for stdio), `network.protocol.name` (`http`) and
  `network.protocol.version` (`1.1`) when known.
- Errors: `error.type` if and only if the operation failed: the JSON-RPC error code as a string (and the same in
  `rpc.response.status_code`), `tool_error` for a `CallToolResult` with `isError` true, else the exception's class
  name; span status `ERROR` whenever `error.type` is set, described by the JSON-RPC error message when there is one.
- Context propagation: the parent comes from `params._meta` (`traceparent`, `tracestate`, `baggage`, read with the
  configured propagators, SEP-414); the ambient context (an HTTP server span) is then linked, not the parent.

Metrics (histograms, unit `s`, advised buckets `[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]`):
- `mcp.server.operation.duration`: from receiving a request to its answer, with `mcp.method.name`, `error.type`,
  `gen_ai.tool.name`, `gen_ai.prompt.name`, `gen_ai.operation.name`, `rpc.response.status_code`,
  `mcp.protocol.version`, `network.transport`, `network.protocol.name`, `network.protocol.version` (no ids, no URI).
- `mcp.server.session.duration`: a client connection's lifetime, from its first request until the SDK closes the
  connection (a stdio or SSE stream, a stateful Streamable HTTP session), with `mcp.protocol.version`,
  `network.transport`, `network.protocol.name`. Sessionless requests (plain JSON-RPC POST, stateless HTTP) have none.

Replaces the SDK's own `OpenTelemetryMiddleware` (a subset of the above: no session, transport, resource URI or
metrics) where it sits in the chain, so a request makes one server span, not two. Client addresses are not recorded
(the gateway keeps no raw client IP anywhere); through `track_mcp`, names and URIs go through the same redaction
as tracked events. The server's work is never changed: its exception is re-raised
unchanged, its result returned as it came; telemetry's own failures are logged and swallowed.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final, TypeAlias

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, SpanKind, StatusCode
from pydantic import ValidationError

from ._logging import sdk_logger
from .sessions import ConnectionFacts, describe

logger = sdk_logger(__name__)

SessionIdFn: TypeAlias = Callable[[ConnectionFacts], str | None]
"""The session id of a request (described by its connection facts) that carries no transport session id, if any."""

INSTRUMENTATION_NAME: Final = "mcp-gateway-tracking"
"""The instrumentation scope of the spans and metrics."""

DURATION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: the bucket boundaries the conventions advise for both MCP duration histograms."""

MAX_ATTRIBUTE_CHARS: Final = 256
"""Longest value of a name taken from the request (tool, prompt, resource URI, request id)."""

TOOL_ERROR: Final = "tool_error"
"""`error.type` of a tool result with `isError` true (the conventions' value)."""

EXECUTE_TOOL: Final = "execute_tool"

SDK_OTEL_MIDDLEWARE: Final = "OpenTelemetryMiddleware"
"""The class name of the `mcp` SDK's own OpenTelemetry middleware, which every server's chain starts with."""

_URI_METHODS: Final = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
_HTTP_TRANSPORTS: Final = frozenset({"sse", "streamable-http", "http"})


def _cut(value: str) -> str:
    return value if len(value) <= MAX_ATTRIBUTE_CHARS else value[:MAX_ATTRIBUTE_CHARS]


def _parent(meta: Any) -> Context | None:
    """The remote parent in `params._meta` (by the configured propagators), or None if it carries no valid one."""
    if not isinstance(meta, Mapping) or not meta:
        return None
    carrier = {key: value for key, value in meta.items() if isinstance(key, str) and isinstance(value, str)}
    try:
        context = extract(carrier)
    except (ValueError, TypeError):
        return None
    return context if trace.get_current_span(context).get_span_context().is_valid else None


class OtelMiddleware:
    """A `ServerMiddleware` making one SERVER span and one duration measurement per MCP request (module docstring).

    `tracer_provider` and `meter_provider` default to the global ones (`opentelemetry.trace.set_tracer_provider`).
    `redact(text)`, when given, cleans the names a client sends (tool, prompt, resource URI) before they become
    attributes (`track_mcp` passes its `Redactor`: emails, phones and sensitive URL parts hashed, as in events).
    `session_id_of(facts)`, when given, names the session of a request that carries no transport session id
    (`track_mcp` passes the tracking session id, so spans and tracked events share one).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        session_id_of: SessionIdFn | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
        self._operation_duration = meter.create_histogram(
            "mcp.server.operation.duration",
            unit="s",
            description="MCP request or notification duration as observed on the receiver from the time it was "
            "received until the result or ack is sent.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._session_duration = meter.create_histogram(
            "mcp.server.session.duration",
            unit="s",
            description="The duration of the MCP session as observed on the MCP server.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._session_id_of = session_id_of
        self._redact = redact
        self._sessions: weakref.WeakSet[object] = weakref.WeakSet()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            facts = describe(ctx)
            name, attributes, metric_attributes, parent, links = self._describe(ctx, facts)
        except Exception:
            logger.exception("OpenTelemetry: could not describe %s", ctx.method)
            return await call_next(ctx)
        t0 = time.perf_counter()
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            error: str | None = None
            try:
                result = await call_next(ctx)
            except MCPError as exc:
                error = str(exc.error.code)
                span.set_attributes({"error.type": error, "rpc.response.status_code": error})
                span.set_status(StatusCode.ERROR, exc.error.message)
                metric_attributes["rpc.response.status_code"] = error
                raise
            except ValidationError:  # the SDK answers -32602 without pydantic's text (it quotes the input)
                error = str(INVALID_PARAMS)
                span.set_attributes({"error.type": error, "rpc.response.status_code": error})
                span.set_status(StatusCode.ERROR, "Invalid request parameters")
                metric_attributes["rpc.response.status_code"] = error
                raise
            except Exception as exc:
                error = type(exc).__qualname__
                span.set_attribute("error.type", error)
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                raise
            else:
                if ctx.method == "tools/call" and _is_tool_error(result):
                    error = TOOL_ERROR
                    span.set_attribute("error.type", error)
                    span.set_status(StatusCode.ERROR)
                return result
            finally:
                self._name_session(ctx.method, facts, span, attributes)
                if error is not None:
                    metric_attributes["error.type"] = error
                self._record(time.perf_counter() - t0, metric_attributes)

    def _describe(
        self, ctx: ServerRequestContext[Any, Any], facts: ConnectionFacts
    ) -> tuple[str, dict[str, Any], dict[str, Any], Context | None, list[Link]]:
        params: Mapping[str, Any] = ctx.params if isinstance(ctx.params, Mapping) else {}
        method = ctx.method
        common: dict[str, Any] = {"mcp.method.name": method}
        if ctx.protocol_version:
            common["mcp.protocol.version"] = ctx.protocol_version
        http = facts.transport in _HTTP_TRANSPORTS
        if facts.transport == "stdio":
            common["network.transport"] = "pipe"
        elif http:
            common["network.transport"] = "tcp"
            common["network.protocol.name"] = "http"
            version = _http_version(ctx.request)
            if version:
                common["network.protocol.version"] = version
        target = params.get("name")
        target = self._clean(target) if isinstance(target, str) and target else None
        if method == "tools/call":
            common["gen_ai.operation.name"] = EXECUTE_TOOL
            if target is not None:
                common["gen_ai.tool.name"] = target
        elif method == "prompts/get" and target is not None:
            common["gen_ai.prompt.name"] = target
        else:
            target = None
        attributes = dict(common)
        if ctx.request_id is not None:
            attributes["jsonrpc.request.id"] = _cut(str(ctx.request_id))
        uri = params.get("uri")
        if method in _URI_METHODS and isinstance(uri, str):
            attributes["mcp.resource.uri"] = self._clean(uri)
        if facts.transport_session_id:
            attributes["mcp.session.id"] = _cut(facts.transport_session_id)
        if facts.anchor is not None and facts.anchor not in self._sessions:
            self._session_started(ctx, facts.anchor, common)
        parent = _parent(params.get("_meta"))
        links: list[Link] = []
        if parent is not None:
            ambient = trace.get_current_span().get_span_context()
            if ambient.is_valid:
                links.append(Link(ambient))
        name = f"{method} {target}" if target else method
        return name, attributes, common, parent, links

    def _clean(self, text: str) -> str:
        return _cut(self._redact(text) if self._redact is not None else text)

    def _name_session(
        self, method: str, facts: ConnectionFacts, span: trace.Span, attributes: Mapping[str, Any]
    ) -> None:
        """The tracking session id, once the request has one (it opened the session), when no transport id named it."""
        if self._session_id_of is None or "mcp.session.id" in attributes or not span.is_recording():
            return
        try:
            session_id = self._session_id_of(facts)
            if session_id:
                span.set_attribute("mcp.session.id", session_id)
        except Exception:
            logger.exception("OpenTelemetry: could not name the session of %s", method)

    def _session_started(self, ctx: ServerRequestContext[Any, Any], anchor: object, common: Mapping[str, Any]) -> None:
        """Measure the connection `anchor` stands for until it closes.

        A connection serving one stream (stdio, SSE, a stateful Streamable HTTP session at the handshake revisions)
        is measured until the SDK unwinds its `exit_stack`; a 2026-07-28 duplex stream, whose requests each get a
        fresh connection around one shared channel (the anchor), until that channel is dropped."""
        attributes = {
            key: common[key]
            for key in ("mcp.protocol.version", "network.transport", "network.protocol.name")
            if key in common
        }
        started = time.perf_counter()
        connection = getattr(ctx.session, "_connection", None)
        exit_stack = getattr(connection, "exit_stack", None)
        try:
            self._sessions.add(anchor)
            if getattr(connection, "outbound", None) is anchor and isinstance(exit_stack, AsyncExitStack):
                exit_stack.callback(self._session_ended, started, attributes)
            else:
                weakref.finalize(anchor, self._session_ended, started, attributes)
        except TypeError:  # not weak-referenceable: no session measurement
            pass

    def _session_ended(self, started: float, attributes: dict[str, Any]) -> None:
        try:
            self._session_duration.record(time.perf_counter() - started, attributes)
        except Exception:
            logger.exception("OpenTelemetry: could not record a session's duration")

    def _record(self, seconds: float, attributes: dict[str, Any]) -> None:
        try:
            self._operation_duration.record(seconds, attributes)
        except Exception:
            logger.exception("OpenTelemetry: could not record an operation's duration")


def _is_tool_error(result: HandlerResult) -> bool:
    if isinstance(result, CallToolResult):
        return result.is_error is True
    return isinstance(result, Mapping) and result.get("isError") is True


def _http_version(request: Any) -> str | None:
    scope = getattr(request, "scope", None)
    version = scope.get("http_version") if isinstance(scope, Mapping) else None
    return version if isinstance(version, str) and version else None


class OtelSwap:
    """`installed` in the place of the SDK's own OpenTelemetry middleware in a server's `middleware` chain (first in
    the chain if it has none), so that a request makes one server span, not two; `undo` puts the SDK's back."""

    def __init__(self, chain: list[Any], installed: ServerMiddleware[Any]) -> None:
        self.installed = installed
        self.replaced: Any = None
        index = next((i for i, m in enumerate(chain) if type(m).__name__ == SDK_OTEL_MIDDLEWARE), None)
        if index is None:
            chain.insert(0, installed)
        else:
            self.replaced, chain[index] = chain[index], installed

    def undo(self, chain: list[Any]) -> None:
        if self.installed not in chain:
            return
        index = chain.index(self.installed)
        if self.replaced is None:
            del chain[index]
        else:
            chain[index] = self.replaced
