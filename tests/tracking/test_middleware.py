"""What the tracking middleware records for a server driven in-process by the SDK's own client."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import pytest
from mcp import Client
from mcp.server import MCPServer, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    Implementation,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from mcp_gateway_tracking import LocalSink, SinkStats, TrackingMiddleware, track_mcp
from mcp_gateway_tracking.middleware import MAX_EVENT_PAYLOAD_CHARS
from mcp_gateway_tracking.privacy import MAX_PAYLOAD_CHARS, hash_text
from pydantic import BaseModel, ValidationError

from .demo_server import SECRET_EMAIL, SECRET_PASSWORD, build_demo_server
from .helpers import Recorder

Mode = Literal["legacy", "auto"]
MODES: list[Mode] = ["legacy", "auto"]
CLIENT = Implementation(name="claude-desktop", version="1.2.3")


def local_sink(recorder: Recorder) -> LocalSink:
    return LocalSink(recorder, batch_size=50, flush_interval=5)


@pytest.mark.parametrize("mode", MODES)
async def test_one_session_then_one_event_per_call_with_outcome_and_latency(mode: Mode) -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder))
    before = time.time() * 1000
    async with Client(server, mode=mode, client_info=CLIENT) as client:
        await client.list_tools()
        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}
        assert (await client.call_tool("refuse", {})).is_error
        assert (await client.call_tool("crash", {})).is_error
        assert (await client.call_tool("no_such_tool", {})).is_error
        await client.read_resource("docs://readme")
        await client.get_prompt("greet", {"name": "Ada"})
        await client.list_resources()
        await client.list_resource_templates()
        await client.list_prompts()
    assert await tracker.flush(5)
    await tracker.aclose()

    assert [org for org, _ in recorder.batches] == ["org-1"] * len(recorder.batches)
    [session] = recorder.sessions
    assert session.client_config == "claude-desktop 1.2.3"
    assert session.tools == ["add", "sign_up", "refuse", "crash"]
    assert uuid.UUID(session.session_id).version == 4
    events = recorder.events
    assert len(events) == 10
    assert {event.session_id for event in events} == {session.session_id}
    assert len({event.event_id for event in events}) == 10
    for event in events:
        assert 0 < event.latency < 5000
        assert event.timestamp is not None and before <= event.timestamp <= time.time() * 1000

    add = recorder.event("add")
    assert (add.primitive_type, add.operation, add.success, add.error_type) == ("tool", "call", True, None)
    assert add.args is not None and json.loads(add.args) == {"a": 2, "b": 3}
    assert add.result is not None and json.loads(add.result)["structuredContent"] == {"result": 5}
    for name in ("refuse", "crash", "no_such_tool"):
        failed = recorder.event(name)
        assert (failed.success, failed.error_type) == (False, "ToolError")
    resource = recorder.event("docs://readme")
    assert (resource.primitive_type, resource.operation, resource.success) == ("resource", "call", True)
    prompt = recorder.event("greet")
    assert (prompt.primitive_type, prompt.success) == ("prompt", True)
    assert prompt.args is not None and json.loads(prompt.args) == {"name": "Ada"}
    listed = {e.primitive_name: (e.primitive_type, e.operation) for e in events if e.operation == "list"}
    assert listed == {
        "tools/list": ("tool", "list"),
        "resources/list": ("resource", "list"),
        "resources/templates/list": ("resource", "list"),
        "prompts/list": ("prompt", "list"),
    }
    tools_list = recorder.event("tools/list")
    assert tools_list.result is not None and json.loads(tools_list.result) == {
        "tools": ["add", "sign_up", "refuse", "crash"]
    }


async def test_each_connection_is_its_own_session() -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder))
    for _ in range(2):
        async with Client(server, mode="legacy") as client:
            await client.call_tool("add", {"a": 1, "b": 1})
            await client.call_tool("add", {"a": 1, "b": 2})
    await tracker.aclose()
    assert len(recorder.sessions) == 2
    adds = [e.session_id for e in recorder.events if e.primitive_name == "add"]
    assert adds == [s.session_id for s in recorder.sessions for _ in range(2)]


async def test_protocol_errors_are_failures_and_reach_the_client_unchanged() -> None:
    recorder = Recorder()
    server = build_demo_server()

    async def forbid_add(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and (ctx.params or {}).get("name") == "add":
            raise MCPError(code=INVALID_PARAMS, message="Unknown tool: add")
        return await call_next(ctx)

    server.middleware.append(forbid_add)
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder))
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("add", {"a": 1, "b": 2})
        assert raised.value.code == INVALID_PARAMS
        with pytest.raises(MCPError):
            await client.read_resource("docs://missing")
    await tracker.aclose()

    add = recorder.event("add")
    assert (add.success, add.error_type) == (False, "MCPError")
    assert add.result is not None and json.loads(add.result)["error"]["code"] == INVALID_PARAMS
    missing = recorder.event("docs://missing")
    assert (missing.success, missing.error_type) == (False, "MCPError")


async def test_privacy_flags_leave_arguments_and_results_out() -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder), disable_input=True, disable_output=True)
    async with Client(server, mode="legacy") as client:
        await client.call_tool("add", {"a": 1, "b": 2})
        await client.get_prompt("greet", {"name": "Ada"})
    await tracker.aclose()
    assert recorder.events
    assert {(e.args, e.result) for e in recorder.events} == {(None, None)}


async def test_only_disabling_input_keeps_results() -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder), disable_input=True)
    async with Client(server, mode="legacy") as client:
        await client.call_tool("add", {"a": 1, "b": 2})
    await tracker.aclose()
    add = recorder.event("add")
    assert add.args is None and add.result is not None


async def test_sensitive_values_leave_only_as_hashes() -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(
        server,
        "org-1",
        sink=local_sink(recorder),
        identify=lambda request, env: {"userId": "u-7", "email": SECRET_EMAIL, "api_key": "sk-live-123"},
    )
    async with Client(server, mode="legacy") as client:
        await client.call_tool("sign_up", {"email": SECRET_EMAIL, "password": SECRET_PASSWORD})
    await tracker.aclose()

    everything = json.dumps([item.model_dump(mode="json") for item in [*recorder.sessions, *recorder.events]])
    for secret in (SECRET_EMAIL, SECRET_EMAIL.lower(), SECRET_PASSWORD, "sk-live-123"):
        assert secret not in everything
    email_hash = hash_text(SECRET_EMAIL.strip().lower())
    [session] = recorder.sessions
    assert session.user_data is not None
    assert session.user_data["userId"] == "u-7"
    assert session.user_data["email"] == email_hash
    sign_up = recorder.event("sign_up")
    assert sign_up.args is not None and json.loads(sign_up.args) == {
        "email": email_hash,
        "password": hash_text(SECRET_PASSWORD),
    }
    # The tool's text result is JSON: it is parsed, and its token hashed too.
    assert sign_up.result is not None
    text = json.loads(sign_up.result)["content"][0]["text"]
    assert json.loads(text) == {"email": email_hash, "plan": "free", "token": hash_text("tok-" + SECRET_PASSWORD)}


async def test_sensitive_keys_are_configurable() -> None:
    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder), sensitive_keys=["a"])
    async with Client(server, mode="legacy") as client:
        await client.call_tool("add", {"a": 1, "b": 2})
    await tracker.aclose()
    args = recorder.event("add").args
    assert args is not None and json.loads(args) == {"a": hash_text("1"), "b": 2}


async def test_a_sink_that_redacts_gets_values_as_sent_unless_they_must_be_cut() -> None:
    recorder = Recorder()
    server = build_demo_server()

    @server.tool()
    def blob(text: str) -> str:
        return text * 3

    tracker = track_mcp(server, "org-1", sink=local_sink(recorder), sink_redacts=True)
    async with Client(server, mode="legacy") as client:
        await client.call_tool("sign_up", {"email": SECRET_EMAIL, "password": SECRET_PASSWORD})
        await client.call_tool("blob", {"text": f"{SECRET_EMAIL} " + "x" * 10_000 + " "})
    await tracker.aclose()

    sign_up = recorder.event("sign_up")  # small: left to the sink, which redacts what it keeps
    assert sign_up.args is not None and json.loads(sign_up.args) == {"email": SECRET_EMAIL, "password": SECRET_PASSWORD}
    blob_event = recorder.event("blob")  # cut to fit: redacted before the cut, which the sink could not parse
    assert blob_event.args is not None and blob_event.result is not None
    assert "truncated" in blob_event.result
    assert SECRET_EMAIL not in blob_event.args + blob_event.result
    assert hash_text(SECRET_EMAIL.strip().lower()) in blob_event.args


async def test_large_results_are_cut_to_the_event_size_limit() -> None:
    recorder = Recorder()
    server = MCPServer("big")

    @server.tool()
    def blob(text: str) -> str:
        return text * 3

    tracker = track_mcp(server, "org-1", sink=local_sink(recorder))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("blob", {"text": "x" * 20_000})
    assert isinstance(result.content[0], TextContent) and len(result.content[0].text) == 60_000
    await tracker.aclose()
    event = recorder.event("blob")
    assert event.args is not None and event.result is not None
    assert len(event.args) + len(event.result) <= MAX_EVENT_PAYLOAD_CHARS
    assert len(event.result) <= MAX_PAYLOAD_CHARS + 40 and "truncated" in event.result


async def test_tracking_failures_never_reach_the_client() -> None:
    class BrokenSink:
        stats = SinkStats()

        def submit(self, item: object, *, org_id: str | None = None) -> bool:
            raise RuntimeError("sink bug")

        def start(self) -> None:
            raise RuntimeError("sink bug")

        async def flush(self, timeout: float | None = None) -> bool:
            return True

        async def aclose(self, timeout: float = 5.0) -> None:
            return None

    def identify(request: object, env: Mapping[str, str]) -> dict[str, Any]:
        raise KeyError("identify bug")

    server = build_demo_server()
    sink = BrokenSink()
    tracker = track_mcp(server, "org-1", sink=sink, identify=identify)
    async with Client(server, mode="legacy") as client:
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3}
    await tracker.aclose()
    assert set(sink.stats.dropped) == {"capture_error"}


async def test_identify_sees_the_environment_and_may_be_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKING_USER", "env-user")
    seen: list[object] = []

    async def identify(request: object, env: Mapping[str, str]) -> dict[str, Any]:
        seen.append(request)
        return {"userId": env["TRACKING_USER"]}

    recorder = Recorder()
    server = build_demo_server()
    tracker = track_mcp(server, "org-1", sink=local_sink(recorder), identify=identify)
    async with Client(server, mode="legacy") as client:
        await client.call_tool("add", {"a": 1, "b": 2})
        await client.call_tool("add", {"a": 1, "b": 3})
    await tracker.aclose()
    assert seen == [None]  # once per session; no HTTP request in-process
    assert recorder.sessions[0].user_data == {"userId": "env-user"}


async def test_track_mcp_joins_after_the_sdk_middleware_and_leaves_on_close() -> None:
    server = build_demo_server()

    async def app_middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        return await call_next(ctx)

    server.middleware.append(app_middleware)
    builtins = list(server.middleware[:-1])
    tracker = track_mcp(server, "org-1", sink=local_sink(Recorder()))
    assert server.middleware == [*builtins, tracker.middleware, app_middleware]
    with pytest.raises(ValueError):
        track_mcp(server, "org-1", sink=local_sink(Recorder()))
    await tracker.aclose()
    assert server.middleware == [*builtins, app_middleware]


# -- the low-level Server ---------------------------------------------------------------------------


def build_lowlevel_server() -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=[Tool(name="echo", input_schema={"type": "object"})])

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        if params.name != "echo":
            return CallToolResult(content=[TextContent(type="text", text="unknown tool")], is_error=True)
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(params.arguments))])

    return Server("lowlevel", on_list_tools=list_tools, on_call_tool=call_tool)


@pytest.mark.parametrize("mode", MODES)
async def test_lowlevel_server_is_tracked_with_its_registered_tool_list(mode: Mode) -> None:
    recorder = Recorder()
    server = build_lowlevel_server()
    tracker = track_mcp(server, "org-low", sink=local_sink(recorder))
    async with Client(server, mode=mode) as client:
        assert not (await client.call_tool("echo", {"say": "hi"})).is_error
        assert (await client.call_tool("other", {})).is_error
    await tracker.aclose()
    [session] = recorder.sessions
    assert session.tools == ["echo"]
    calls = [(e.primitive_name, e.success) for e in recorder.events if e.operation == "call"]
    assert calls == [("echo", True), ("other", False)]


async def test_lowlevel_server_without_tools_has_an_empty_tool_list() -> None:
    async def list_prompts(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> Any:
        from mcp.types import ListPromptsResult

        return ListPromptsResult(prompts=[])

    recorder = Recorder()
    server: Server[Any] = Server("prompts-only", on_list_prompts=list_prompts)
    tracker = track_mcp(server, "org-low", sink=local_sink(recorder))
    async with Client(server, mode="legacy") as client:
        await client.list_prompts()
    await tracker.aclose()
    assert recorder.sessions[0].tools == []
    assert recorder.event("prompts/list").success


# -- the middleware on its own ----------------------------------------------------------------------------


class _StubSession:
    client_params = None


def request_context(method: str, params: dict[str, Any] | None, request_id: int | None = 1) -> Any:
    return ServerRequestContext(
        session=_StubSession(),  # type: ignore[arg-type]
        lifespan_context={},
        protocol_version="2025-11-25",
        method=method,
        params=params,
        request_id=request_id,
    )


def bare_middleware(recorder: Recorder) -> tuple[TrackingMiddleware, LocalSink]:
    sink = local_sink(recorder)
    return TrackingMiddleware(build_lowlevel_server(), sink=sink, org_id="org-1"), sink


class _Params(BaseModel):
    n: int


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (RuntimeError("boom"), "RuntimeError"),
        (MCPError(code=INVALID_PARAMS, message="bad"), "MCPError"),
        (None, "ValidationError"),
    ],
)
async def test_the_callers_exception_is_reraised_as_is(error: Exception | None, error_type: str) -> None:
    if error is None:
        try:
            _Params.model_validate({"n": "x"})
        except ValidationError as exc:
            error = exc
    assert error is not None
    recorder = Recorder()
    middleware, sink = bare_middleware(recorder)

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        assert error is not None
        raise error

    with pytest.raises(Exception) as raised:
        await middleware(request_context("tools/call", {"name": "echo", "arguments": {}}), call_next)
    assert raised.value is error
    await sink.aclose()
    event = recorder.event("echo")
    assert (event.success, event.error_type) == (False, error_type)


@pytest.mark.parametrize(
    ("method", "request_id"),
    [
        ("ping", 1),
        ("completion/complete", 1),
        ("notifications/initialized", None),
        ("tools/call", None),
    ],
)
async def test_untracked_methods_and_notifications_record_nothing(method: str, request_id: int | None) -> None:
    recorder = Recorder()
    middleware, sink = bare_middleware(recorder)
    answer = {"ok": True}

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return answer

    assert await middleware(request_context(method, {"name": "echo"}, request_id), call_next) is answer
    await sink.aclose()
    assert recorder.batches == []


@pytest.mark.parametrize("method", ["initialize", "server/discover"])
async def test_a_client_connecting_submits_its_session_and_no_event(method: str) -> None:
    recorder = Recorder()
    middleware, sink = bare_middleware(recorder)
    answer = {"ok": True}

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return answer

    params = {"clientInfo": {"name": "inspector", "version": "0.9"}} if method == "initialize" else {}
    assert await middleware(request_context(method, params, 1), call_next) is answer
    await sink.aclose()
    [session] = recorder.sessions
    assert recorder.events == []
    if method == "initialize":
        assert session.client_config == "inspector 0.9"


async def test_a_failed_handshake_submits_no_session() -> None:
    recorder = Recorder()
    middleware, sink = bare_middleware(recorder)

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        raise MCPError(code=-32602, message="unsupported")

    with pytest.raises(MCPError):
        await middleware(request_context("initialize", {}, 1), call_next)
    await sink.aclose()
    assert recorder.batches == []


async def test_a_missing_name_is_recorded_as_such() -> None:
    recorder = Recorder()
    middleware, sink = bare_middleware(recorder)

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return {"content": [], "isError": True}

    await middleware(request_context("tools/call", None), call_next)
    await sink.aclose()
    event = recorder.event("(missing)")
    assert (event.success, event.error_type, event.args) == (False, "ToolError", "{}")


async def test_concurrent_first_requests_of_a_session_share_one_session_submitted_before_their_events() -> None:
    gate = asyncio.Event()

    async def slow_identify(request: object, env: Mapping[str, str]) -> dict[str, Any]:
        await gate.wait()
        return {"userId": "u"}

    recorder = Recorder()
    sink = local_sink(recorder)
    middleware = TrackingMiddleware(build_lowlevel_server(), sink=sink, org_id="org-1", identify=slow_identify)

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return {"content": []}

    async def call(n: int) -> None:
        await middleware(request_context("tools/call", {"name": f"t{n}"}), call_next)

    calls = [asyncio.create_task(call(n)) for n in range(3)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*calls)
    await sink.aclose()
    [(_, batch)] = recorder.batches
    assert len(batch.sessions) == 1 and len(batch.events) == 3
    assert {event.session_id for event in batch.events} == {batch.sessions[0].session_id}


async def test_a_session_the_sink_refused_is_offered_again_with_the_next_request() -> None:
    class RefusesFirst:
        def __init__(self) -> None:
            self.stats = SinkStats()
            self.items: list[object] = []

        def submit(self, item: object, *, org_id: str | None = None) -> bool:
            self.items.append(item)
            return len(self.items) > 1

        def start(self) -> None:
            return None

        async def flush(self, timeout: float | None = None) -> bool:
            return True

        async def aclose(self, timeout: float = 5.0) -> None:
            return None

    sink = RefusesFirst()
    middleware = TrackingMiddleware(build_lowlevel_server(), sink=sink, org_id="org-1")

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return {"content": []}

    for _ in range(2):
        await middleware(request_context("tools/call", {"name": "echo"}), call_next)
    kinds = [type(item).__name__ for item in sink.items]
    assert kinds == ["CaptureSession", "CaptureSession", "CaptureEvent"]
    assert sink.stats.dropped == {"session_not_queued": 1}


def test_track_mcp_refuses_what_it_cannot_wrap_and_bad_options() -> None:
    with pytest.raises(TypeError):
        track_mcp(object(), "org-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        track_mcp(build_demo_server(), "", sink=local_sink(Recorder()))
    with pytest.raises(ValueError):
        track_mcp(build_demo_server(), "org-1", batch_size=0)
    with pytest.raises(ValueError):
        track_mcp(build_demo_server(), "org-1", endpoint="ftp://nope")
