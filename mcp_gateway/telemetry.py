"""The gateway's own OpenTelemetry: its spans and MCP metrics exported over OTLP/HTTP when an endpoint is configured.

`Telemetry.start(settings)` is None when `Settings.otlp_endpoint` is unset, and then nothing of OpenTelemetry's SDK
is imported and no middleware is added: zero cost. With an endpoint it holds a `TracerProvider` (a batching span
processor posting protobuf to `{endpoint}/v1/traces`) and a `MeterProvider` (a periodic reader posting to
`{endpoint}/v1/metrics`), both of the process, never installed as the global ones. The gateway's MCP servers get
them through `track_mcp(..., tracer_provider=, meter_provider=)` (MCP spans and histograms after the semantic
conventions, `tracking/otel.py`), and `HttpTracingMiddleware` makes one SERVER span per HTTP request, which the
MCP spans of that request link to. The service is named by `OTEL_SERVICE_NAME` (default `mcp-gateway`) and
`OTEL_RESOURCE_ATTRIBUTES`, as OpenTelemetry's own variables say. The analytics MCP endpoint, which is not tracked,
gets the same MCP spans through `Telemetry.instrument`. Export runs on the SDK's worker threads, never on
the event loop; a collector that is down costs dropped spans and a logged warning, never a failed request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from . import __version__
from .config import Settings
from .errors import GatewayError

if TYPE_CHECKING:
    from mcp.server import MCPServer, Server
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mcp-gateway"
"""`service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) says otherwise."""

METRICS_EXPORT_MILLIS: Final = 30_000
"""How often the MCP histograms are posted to the collector."""

EXPORT_TIMEOUT_SECONDS: Final = 3.0
"""Longest one export may take, its retries included (OpenTelemetry's default is 10 s): a collector that is down
delays stopping by about this much, not more."""

SHUTDOWN_TIMEOUT_MILLIS: Final = 5_000
"""Longest stopping waits for the last metrics to be posted."""

INSTRUMENTATION_NAME: Final = "mcp-gateway.http"

MISSING_EXTRA: Final = (
    "an OTLP endpoint is configured but OpenTelemetry's SDK is not installed: pip install 'mcp-gateway[otel]'"
    " (in a checkout: pip install '.[otel]')"
)


class Telemetry:
    """The tracer and meter providers exporting the gateway's telemetry to one OTLP/HTTP collector."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    @classmethod
    def start(cls, settings: Settings) -> Telemetry | None:
        """The providers for `settings.otlp_endpoint`, or None when it is unset."""
        if not settings.otlp_endpoint:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise GatewayError(MISSING_EXTRA) from exc
        base = settings.otlp_endpoint.rstrip("/")
        resource = Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME, "service.version": __version__}
        )
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=EXPORT_TIMEOUT_SECONDS),
            export_interval_millis=METRICS_EXPORT_MILLIS,
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        logger.info("exporting spans and MCP metrics over OTLP/HTTP to %s", base)
        return cls(tracer_provider, meter_provider)

    def instrument(self, server: Server[Any] | MCPServer) -> None:
        """Spans and histograms for an MCP server the gateway runs without tracking it (the analytics endpoint); a
        tracked server gets them from `track_mcp`."""
        from mcp_gateway_tracking.otel import OtelMiddleware, OtelSwap

        middleware = OtelMiddleware(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        OtelSwap(server.middleware, middleware)

    def shutdown(self) -> None:
        """Post what is pending (each export bounded by `EXPORT_TIMEOUT_SECONDS`), then stop exporting. Blocking:
        run it on a thread."""
        try:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(SHUTDOWN_TIMEOUT_MILLIS)
        except Exception:
            logger.warning("OpenTelemetry: the last spans or metrics could not be exported", exc_info=True)


class HttpTracingMiddleware:
    """An ASGI middleware: one SERVER span per HTTP request, after the HTTP semantic conventions.

    Named `"{method} {route}"` (the route's template, `"{method}"` for no route), with `http.request.method`,
    `url.path`, `url.scheme`, `http.route`, `network.protocol.version` and `http.response.status_code`; a 5xx sets
    `error.type` to the status code and the span's status to ERROR. The parent is read from the request headers
    (`traceparent`) with the configured propagators. Query strings and client addresses are not recorded.
    """

    def __init__(self, app: ASGIApp, *, tracer_provider: TracerProvider) -> None:
        from opentelemetry import trace

        self.app = app
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, StatusCode

        method = str(scope.get("method", "GET"))
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": str(scope.get("path", "")),
            "url.scheme": str(scope.get("scheme", "http")),
            "network.protocol.version": str(scope.get("http_version", "1.1")),
        }
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with self._tracer.start_as_current_span(
            method, context=extract(headers), kind=SpanKind.SERVER, attributes=attributes, end_on_exit=True
        ) as span:
            try:
                await self.app(scope, receive, send_noting_status)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR)
                raise
            finally:
                route = _route_of(scope)
                if route:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_attribute("error.type", str(status[0]))
                        span.set_status(StatusCode.ERROR)


def _route_of(scope: Mapping[str, Any]) -> str | None:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else None


def tracing_configured() -> bool:
    """Whether this process has a global OpenTelemetry tracer provider (set by auto-instrumentation or an
    application embedding the gateway): the `mcp` SDK's own spans go there."""
    from opentelemetry import trace  # the API only, which `mcp` itself imports

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def drop_sdk_tracing(server: MCPServer) -> None:
    """Take the `mcp` SDK's own OpenTelemetry middleware out of `server`'s chain. It opens a span per request for
    the global tracer provider; with none configured that span is a no-op that still costs ~22 µs of CPU per request
    here (a quarter of what tracking a call costs), for nothing."""
    from mcp.server._otel import OpenTelemetryMiddleware  # loaded with every server

    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
