"""OpenTelemetry: the wrapper's spans and metrics field by field (the SDK's in-memory exporter and reader), and the
gateway's own spans reaching a real OTLP/HTTP receiver on loopback from `mcp-gateway serve`."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation, RequestParamsMeta
from mcp_gateway_tracking import LocalSink, track_mcp
from mcp_gateway_tracking.wire import CaptureBatch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_gateway import telemetry as gateway_telemetry
from mcp_gateway.cli import run
from mcp_gateway.config import Settings
from mcp_gateway.config_sources import load_settings
from mcp_gateway.errors import GatewayError
from mcp_gateway.telemetry import HttpTracingMiddleware

from .otlp_receiver import otlp_receiver
from .support import (
    DEMO,
    MCP_TIMEOUT,
    STARTUP_TIMEOUT,
    create_key,
    gateway_environment,
    gateway_executable,
    jsonrpc_request,
    serve_environment,
)

CLIENT = Implementation(name="otel-test", version="1.0")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
SERVER = 2  # OTLP's Span.SpanKind
STATUS_UNSET, STATUS_ERROR = 0, 2  # OTLP's Status.StatusCode


@dataclass(frozen=True)
class Point:
    attributes: dict[str, Any]
    count: int
    sum: float
    bounds: list[float]


class Telemetry:
    """An SDK tracer provider and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_out.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.spans() if s.name == name]
        return span

    def points(self, metric: str) -> list[Point]:
        """The histogram points of `metric` recorded so far."""
        data = self.reader.get_metrics_data()
        found: list[Point] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        assert m.unit == "s"
                        found += [
                            Point(dict(p.attributes or {}), p.count, p.sum, list(p.explicit_bounds))
                            for p in m.data.data_points
                            if isinstance(p, HistogramDataPoint)
                        ]
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


def build_server() -> MCPServer:
    server = MCPServer("otel-demo")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def refuse() -> str:
        """Always an expected failure."""
        raise ToolError("not today")

    @server.resource("docs://readme")
    def readme() -> str:
        return "Read me."

    @server.prompt()
    def greet(name: str) -> str:
        return f"Say hello to {name}."

    return server


async def _discard(org_id: str, batch: CaptureBatch) -> None:
    return None


def tracked(server: MCPServer, telemetry: Telemetry) -> Any:
    return track_mcp(
        server,
        "org-otel",
        sink=LocalSink(_discard),
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_tool_call_span_and_duration_follow_the_mcp_conventions(telemetry: Telemetry) -> None:
    server = build_server()
    tracker = tracked(server, telemetry)
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        result = await client.call_tool("add", {"a": 2, "b": 3})
        assert result.structured_content == {"result": 5}
        version = client.protocol_version
    await tracker.aclose()

    span = telemetry.span("tools/call add")
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    a = attrs(span)
    assert a["mcp.method.name"] == "tools/call"
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "add"
    assert a["mcp.protocol.version"] == version
    assert a["network.transport"] == "pipe"  # the in-memory client drives the stdio-style JSON-RPC loop
    assert a["jsonrpc.request.id"].isdigit()
    assert "error.type" not in a and "mcp.resource.uri" not in a
    assert a["mcp.session.id"]  # the tracking session id: no transport session id on a stream
    initialize = telemetry.span("initialize")
    assert attrs(initialize)["mcp.method.name"] == "initialize"
    assert attrs(initialize)["mcp.session.id"] == a["mcp.session.id"]
    # One server span per request: the SDK's own OpenTelemetry middleware was replaced, not doubled.
    assert [s.name for s in telemetry.spans()].count("tools/call add") == 1

    [point] = [p for p in telemetry.points("mcp.server.operation.duration") if p.attributes.get("gen_ai.tool.name")]
    assert point.count == 1 and point.sum > 0
    assert dict(point.attributes) == {
        "mcp.method.name": "tools/call",
        "mcp.protocol.version": version,
        "network.transport": "pipe",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
    }
    assert point.bounds == [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]


async def test_resource_read_records_the_uri_but_keeps_it_out_of_the_name(telemetry: Telemetry) -> None:
    server = build_server()
    tracker = tracked(server, telemetry)
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        await client.read_resource("docs://readme")
        await client.get_prompt("greet", {"name": "Ada"})
        await client.list_tools()
    await tracker.aclose()

    read = telemetry.span("resources/read")
    a = attrs(read)
    assert (a["mcp.method.name"], a["mcp.resource.uri"]) == ("resources/read", "docs://readme")
    assert "gen_ai.operation.name" not in a and "gen_ai.tool.name" not in a
    prompt = attrs(telemetry.span("prompts/get greet"))
    assert (prompt["mcp.method.name"], prompt["gen_ai.prompt.name"]) == ("prompts/get", "greet")
    assert attrs(telemetry.span("tools/list"))["mcp.method.name"] == "tools/list"
    methods = {p.attributes["mcp.method.name"] for p in telemetry.points("mcp.server.operation.duration")}
    assert {"initialize", "resources/read", "prompts/get", "tools/list"} <= methods
    points = telemetry.points("mcp.server.operation.duration")
    [read_point] = [p for p in points if p.attributes["mcp.method.name"] == "resources/read"]
    assert "mcp.resource.uri" not in read_point.attributes  # opt-in on metrics: unbounded


async def test_an_email_in_a_resource_uri_is_hashed_as_in_tracked_events(telemetry: Telemetry) -> None:
    server = build_server()

    @server.resource("users://{email}/profile")
    def profile(email: str) -> str:
        return f"profile of {email}"

    tracker = tracked(server, telemetry)
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        await client.read_resource("users://jane.doe@example.com/profile")
    await tracker.aclose()

    uri = attrs(telemetry.span("resources/read"))["mcp.resource.uri"]
    assert uri.startswith("users://") and uri.endswith("/profile")
    assert "jane.doe" not in uri and "example.com" not in uri


async def test_errors_set_status_error_and_error_type(telemetry: Telemetry) -> None:
    server = build_server()
    tracker = tracked(server, telemetry)
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        assert (await client.call_tool("refuse", {})).is_error
        with pytest.raises(MCPError) as missing:
            await client.read_resource("docs://missing")
        with pytest.raises(MCPError):
            await client.get_prompt("nope", {})
    await tracker.aclose()

    refused = telemetry.span("tools/call refuse")
    assert refused.status.status_code is StatusCode.ERROR
    assert attrs(read := telemetry.span("resources/read"))["mcp.session.id"] == attrs(refused)["mcp.session.id"]
    assert attrs(refused)["error.type"] == "tool_error"
    assert "rpc.response.status_code" not in attrs(refused)

    code = str(missing.value.error.code)
    assert read.status.status_code is StatusCode.ERROR
    assert read.status.description == missing.value.error.message
    assert (attrs(read)["error.type"], attrs(read)["rpc.response.status_code"]) == (code, code)

    errors = {
        (p.attributes["mcp.method.name"], p.attributes.get("error.type"))
        for p in telemetry.points("mcp.server.operation.duration")
    }
    assert ("tools/call", "tool_error") in errors
    assert ("resources/read", code) in errors
    assert ("initialize", None) in errors
    prompt = telemetry.span("prompts/get nope")
    assert prompt.status.status_code is StatusCode.ERROR and attrs(prompt)["error.type"] != ""


async def test_traceparent_in_meta_makes_the_client_span_the_parent(telemetry: Telemetry) -> None:
    server = build_server()
    tracker = tracked(server, telemetry)
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        await client.call_tool("add", {"a": 1, "b": 1}, meta=cast(RequestParamsMeta, {"traceparent": traceparent}))
        await client.call_tool("add", {"a": 1, "b": 2}, meta=cast(RequestParamsMeta, {"traceparent": "00-garbage"}))
    await tracker.aclose()

    first, second = [s for s in telemetry.spans() if s.name == "tools/call add"]
    assert first.context is not None and first.parent is not None
    assert format(first.context.trace_id, "032x") == TRACE_ID
    assert format(first.parent.span_id, "016x") == PARENT_SPAN_ID
    assert first.parent.is_remote
    assert second.context is not None and format(second.context.trace_id, "032x") != TRACE_ID


async def test_without_otel_the_sdk_middleware_stays() -> None:
    server = build_server()
    before = list(server.middleware)
    tracker = track_mcp(server, "org-otel", sink=LocalSink(_discard))
    assert tracker.otel_middleware is None
    assert type(server.middleware[0]).__name__ == "OpenTelemetryMiddleware"
    await tracker.aclose()
    assert server.middleware == before


def test_without_otel_nothing_of_ours_is_imported() -> None:
    code = (
        "import sys\nfrom mcp.server import MCPServer\nfrom mcp_gateway_tracking import track_mcp, LocalSink\n"
        "async def sink(org, batch): pass\n"
        "track_mcp(MCPServer('x'), 'org', sink=LocalSink(sink))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk') or m.endswith('.otel')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert run.stdout.strip() == "[]"


async def test_detach_puts_the_sdk_middleware_back(telemetry: Telemetry) -> None:
    server = build_server()
    before = list(server.middleware)
    tracker = tracked(server, telemetry)
    assert tracker.otel_middleware is not None and tracker.otel_middleware in server.middleware
    assert not any(type(m).__name__ == "OpenTelemetryMiddleware" for m in server.middleware)
    await tracker.aclose()
    assert server.middleware == before


async def test_a_session_s_duration_is_recorded_when_its_connection_ends(telemetry: Telemetry) -> None:
    server = build_server()
    tracker = tracked(server, telemetry)
    async with Client(server, mode="legacy", client_info=CLIENT) as client:
        await client.list_tools()
        assert telemetry.points("mcp.server.session.duration") == []
        version = client.protocol_version
    await tracker.aclose()
    [point] = telemetry.points("mcp.server.session.duration")
    assert point.count == 1 and point.sum > 0
    assert point.attributes == {"mcp.protocol.version": version, "network.transport": "pipe"}


def serve_exporting(db_path: Path, otlp_url: str, exchange: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """`mcp-gateway serve` on a free port exporting to `otlp_url`: `exchange(base_url)` runs against it, then
    SIGTERM (which flushes the spans) and a clean exit are awaited."""
    env = serve_environment(otlp_endpoint=otlp_url)
    command = [gateway_executable(), "serve", "--port", "0", "--db", str(db_path)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        watchdog = threading.Timer(STARTUP_TIMEOUT * 4, process.kill)
        watchdog.start()
        try:
            assert process.stderr is not None
            line = ""
            while (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", line)) is None:
                line = process.stderr.readline()
                assert line, "the server stopped before it listened"
            asyncio.run(exchange(f"http://127.0.0.1:{found.group(1)}"))
            process.send_signal(signal.SIGTERM)
            process.stderr.read()
            assert process.wait(STARTUP_TIMEOUT) in (0, -signal.SIGTERM)
        finally:
            watchdog.cancel()
            process.kill()


def test_the_gateway_exports_its_mcp_and_http_spans_to_an_otlp_receiver(tmp_path: Path) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"

    async def exchange(base_url: str) -> None:
        with anyio.fail_after(MCP_TIMEOUT):
            async with Client(f"{base_url}/mcp?gid={DEMO}", mode="legacy", client_info=CLIENT) as client:
                await client.read_resource("pricing://current")
                meta = cast(RequestParamsMeta, {"traceparent": traceparent})
                await client.call_tool("book_demo", {"name": "Ada"}, meta=meta)  # no email: a tool error
                with pytest.raises(MCPError):
                    await client.read_resource("nothing://here")
            async with httpx.AsyncClient(base_url=base_url) as http:
                assert (await http.get("/health", headers={"traceparent": traceparent})).status_code == 200
                key = await create_key(http, DEMO, "read")
                answer = await http.post(
                    "/analytics/mcp",
                    json=jsonrpc_request("tools/list"),
                    headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"},
                )
                assert answer.status_code == 200 and answer.json()["result"]["tools"]

    with otlp_receiver() as receiver:
        serve_exporting(tmp_path / "g.db", receiver.url, exchange)

    assert {path for path, _ in receiver.requests} == {"/v1/traces", "/v1/metrics"}
    assert {"mcp.server.operation.duration", "mcp.server.session.duration"} <= receiver.metric_names
    spans = receiver.spans
    assert {s.resource.get("service.name") for s in spans} == {"mcp-gateway"}
    reads = [s for s in spans if s.name == "resources/read"]
    assert len(reads) == 2
    ok, failed = sorted(reads, key=lambda s: "error.type" in s.attributes)
    assert ok.kind == SERVER and ok.status_code == STATUS_UNSET
    assert ok.attributes["mcp.method.name"] == "resources/read"
    assert ok.attributes["mcp.resource.uri"] == "pricing://current"
    assert ok.attributes["network.transport"] == "tcp" and ok.attributes["network.protocol.name"] == "http"
    assert ok.attributes["mcp.protocol.version"] == "2025-11-25"
    assert ok.attributes["mcp.session.id"]  # the Streamable HTTP session
    assert failed.status_code == STATUS_ERROR
    assert failed.attributes["error.type"] == failed.attributes["rpc.response.status_code"]

    [tool] = [s for s in spans if s.name == "tools/call book_demo"]
    assert (tool.attributes["gen_ai.tool.name"], tool.attributes["gen_ai.operation.name"]) == (
        "book_demo",
        "execute_tool",
    )
    assert (tool.attributes["error.type"], tool.status_code) == ("tool_error", STATUS_ERROR)
    assert (tool.trace_id, tool.parent_span_id) == (TRACE_ID, PARENT_SPAN_ID)
    assert tool.attributes["mcp.session.id"] == ok.attributes["mcp.session.id"]

    http = [s for s in spans if s.attributes.get("http.request.method") == "POST"]
    assert http and all(s.kind == SERVER for s in http)
    assert {s.attributes.get("http.response.status_code") for s in http} >= {200}
    assert all("?" not in s.attributes["url.path"] for s in http)
    assert {s.attributes.get("http.route") for s in http} >= {"/mcp"}
    # An MCP request's span is the child of the HTTP request that carried it, unless the client sent a trace
    # context in `_meta`: then that is the parent, and the HTTP span is linked.
    http_ids = {s.span_id for s in http}
    assert ok.parent_span_id in http_ids and ok.trace_id in {s.trace_id for s in http}
    assert len(tool.links) == 1 and tool.links[0][1] in http_ids
    [health] = [s for s in spans if s.name == "GET /health"]
    assert (health.kind, health.trace_id, health.parent_span_id) == (SERVER, TRACE_ID, PARENT_SPAN_ID)
    assert (health.attributes["http.route"], health.attributes["http.response.status_code"]) == ("/health", 200)
    # The analytics MCP endpoint is not tracked, but its requests are traced all the same.
    [analytics_http] = [s for s in http if s.attributes["url.path"] == "/analytics/mcp"]
    [analytics] = [s for s in spans if s.parent_span_id == analytics_http.span_id]
    assert (analytics.name, analytics.kind, analytics.attributes["mcp.method.name"]) == (
        "tools/list",
        SERVER,
        "tools/list",
    )


def test_the_endpoint_comes_from_the_flag_our_variable_or_otel_s_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no config file of the machine's
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("MCP_GATEWAY_OTLP_ENDPOINT", raising=False)
    assert load_settings().settings.otlp_endpoint is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert load_settings().settings.otlp_endpoint == "http://collector:4318"
    monkeypatch.setenv("MCP_GATEWAY_OTLP_ENDPOINT", "https://otlp.example.com")
    assert load_settings().settings.otlp_endpoint == "https://otlp.example.com"
    flag = {"otlp_endpoint": "http://127.0.0.1:4318"}
    assert load_settings(flag).settings.otlp_endpoint == "http://127.0.0.1:4318"


@pytest.mark.parametrize("endpoint", ["ftp://collector:4318", "collector:4318", "http://"])
def test_serve_refuses_an_endpoint_that_is_not_an_http_url(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "g.db"
    assert run(["serve", "--otlp-endpoint", endpoint, "--db", str(db_path)]) == 1

    err = capsys.readouterr().err
    assert "error: invalid --otlp-endpoint: " in err and "Traceback" not in err  # the flag the value came from
    assert not db_path.exists()


def test_an_endpoint_without_the_otel_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if opentelemetry-sdk were missing

    with pytest.raises(GatewayError, match=r"mcp-gateway\[otel\]"):
        gateway_telemetry.Telemetry.start(Settings(otlp_endpoint="http://127.0.0.1:4318"))


def test_without_an_endpoint_the_gateway_loads_nothing_of_the_otel_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom mcp_gateway.app import create_app\n"
        "from mcp_gateway.config import Settings\n"
        f"app = create_app(Settings(db_path=Path({str(tmp_path / 'g.db')!r})))\n"
        "assert app.state.services.telemetry is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))"
        " or m.endswith('.otel')))"
    )
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert run_.stdout.strip() == "[]"


def test_a_stdio_gateway_exports_its_spans_with_transport_pipe(tmp_path: Path) -> None:
    async def exchange(otlp_url: str) -> None:
        params = StdioServerParameters(
            command=gateway_executable(),
            args=["stdio", "--gateway", DEMO, "--db", str(tmp_path / "g.db")],
            env=gateway_environment() | {"MCP_GATEWAY_OTLP_ENDPOINT": otlp_url},
        )
        with anyio.fail_after(MCP_TIMEOUT), (tmp_path / "stderr.log").open("w", encoding="utf-8") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy", client_info=CLIENT) as client:
                await client.read_resource("pricing://current")

    with otlp_receiver() as receiver:
        asyncio.run(exchange(receiver.url))
        assert receiver.received.wait(STARTUP_TIMEOUT), "no spans before the stdio server exited"

    [read] = [s for s in receiver.spans if s.name == "resources/read"]
    assert read.attributes["network.transport"] == "pipe" and "network.protocol.name" not in read.attributes
    assert read.attributes["mcp.resource.uri"] == "pricing://current"
    assert read.attributes["mcp.session.id"]  # the tracking session: a stdio stream has no transport session id
    assert not [s for s in receiver.spans if "http.request.method" in s.attributes]


async def test_http_spans_name_the_route_and_mark_server_errors(telemetry: Telemetry) -> None:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    async def unavailable(_: Request) -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=503)

    async def boom(_: Request) -> JSONResponse:
        raise RuntimeError("kaboom")

    app = Starlette(
        routes=[Route("/items/{item_id}", item), Route("/down", unavailable), Route("/boom", boom)],
        middleware=[Middleware(HttpTracingMiddleware, tracer_provider=telemetry.tracer_provider)],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        assert (await http.get("/items/42?key=secret")).status_code == 200
        assert (await http.get("/down")).status_code == 503
        assert (await http.get("/boom")).status_code == 500
        assert (await http.get("/nowhere")).status_code == 404

    ok = telemetry.span("GET /items/{item_id}")
    assert ok.kind is SpanKind.SERVER and ok.status.status_code is StatusCode.UNSET
    assert attrs(ok) == {
        "http.request.method": "GET",
        "url.path": "/items/42",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    down = telemetry.span("GET /down")
    assert (attrs(down)["error.type"], down.status.status_code) == ("503", StatusCode.ERROR)
    crashed = telemetry.span("GET /boom")
    assert (attrs(crashed)["error.type"], crashed.status.status_code) == ("RuntimeError", StatusCode.ERROR)
    missing = telemetry.span("GET")  # no route matched: the method alone
    assert attrs(missing)["http.response.status_code"] == 404 and missing.status.status_code is StatusCode.UNSET


def test_a_collector_that_is_down_changes_no_answer_and_stopping_still_works(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a loopback port nobody listens on: every export is refused
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}"

    async def exchange(base_url: str) -> None:
        with anyio.fail_after(MCP_TIMEOUT):
            async with Client(f"{base_url}/mcp?gid={DEMO}", mode="legacy", client_info=CLIENT) as client:
                for _ in range(3):
                    assert "tiers" in str((await client.read_resource("pricing://current")).contents[0])
            async with httpx.AsyncClient(base_url=base_url) as http:
                assert (await http.get("/health")).status_code == 200

    serve_exporting(tmp_path / "g.db", refused, exchange)  # SIGTERM, then a clean exit within its bound
