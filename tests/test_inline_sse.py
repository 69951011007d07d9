"""Streamable HTTP answers written from the request's own task (`transports/inline_sse.py`, `streamable.py`,
`modern.py`) against the plain SDK's, over real sockets: a session's request POST and a 2026-07-28 POST carry the
same events, in the same order, with the same headers; a request running past the keepalive window is pinged; a
client leaving a 2026-07-28 request cancels its handler; every malformed request is answered as the SDK answers it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import httpx
import pytest
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_gateway import Settings, create_app
from mcp_gateway.gateways import Gateway, GatewayDirectory
from mcp_gateway.server import build_gateway_server
from mcp_gateway.store import Store
from mcp_gateway.transports import inline_sse

from .support import (
    ADMIN_TOKEN,
    DEMO,
    HANDSHAKE,
    MODERN,
    LiveServer,
    jsonrpc_request,
    modern_envelope,
    serve_in_thread,
    sse_messages,
)

ACCEPT_BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
SHORT_KEEPALIVE = 0.1
"""The keepalive window while a test runs (the SDK's is 15 s)."""
CANCEL_TIMEOUT = 10.0
_VOLATILE_HEADERS = {"date", "server", "mcp-session-id", "content-length", "transfer-encoding"}


class _Hang:
    """What the `hang` tool saw, from the server's thread: started, then cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()


HANG = _Hang()


def _register_tools(server: MCPServer) -> None:
    @server.tool(name="chatty", description="Reports progress `steps` times, then answers.")
    async def chatty(steps: int, ctx: Context) -> str:
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        return "chatted"

    @server.tool(name="slow", description="Sleeps, then answers.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "slept"

    @server.tool(name="routed", description="Answers with the region it was routed by (an `Mcp-Param-Region` header).")
    async def routed(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        return region

    @server.tool(name="hang", description="Never answers.")
    async def hang() -> str:
        HANG.started.set()
        try:
            await anyio.sleep_forever()
        finally:
            HANG.cancelled.set()
        return "unreachable"


def _gateway_with_tools(gateway: Gateway, directory: GatewayDirectory, store: Store) -> MCPServer:
    server = build_gateway_server(gateway, directory, store)
    _register_tools(server)
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveServer]]:
    """The gateway (with the test tools) and a plain SDK server with the same tools, in its default mode."""
    tmp = tmp_path_factory.mktemp("inline-sse")
    settings = Settings(db_path=tmp / "gateway.db", admin_token=ADMIN_TOKEN)
    plain = MCPServer(name="plain-sdk")
    _register_tools(plain)
    with (
        serve_in_thread(create_app(settings, server_factory=_gateway_with_tools), tmp / "gateway.db") as gateway,
        serve_in_thread(plain.streamable_http_app(), tmp / "unused.db") as sdk,
    ):
        yield {"gateway": gateway, "sdk": sdk}


def _path(kind: str) -> str:
    return f"/mcp?gid={DEMO}" if kind == "gateway" else "/mcp"


@contextlib.asynccontextmanager
async def _session(server: LiveServer, path: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """An initialized Streamable HTTP session: the client and the headers its requests carry."""
    params = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        opened = await http.post(path, headers=ACCEPT_BOTH, json=jsonrpc_request("initialize", params))
        assert opened.status_code == 200, opened.text
        headers = {**ACCEPT_BOTH, "Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": HANDSHAKE}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(path, headers=headers, json=initialized)).status_code == 202
        yield http, headers


def _modern_headers(tool: str) -> dict[str, str]:
    return {**ACCEPT_BOTH, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}


def _call(tool: str, arguments: dict[str, Any], *, modern: bool = False, request_id: int = 7) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments, "_meta": {"progressToken": "p1"}}
    if modern:
        params["_meta"] |= modern_envelope()
    return jsonrpc_request("tools/call", params, request_id)


def _stable_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in _VOLATILE_HEADERS}


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    """`message` without what names the server (the 2026-07-28 result's `_meta` carries its name)."""
    result = message.get("result")
    if isinstance(result, dict):
        return {**message, "result": {k: v for k, v in result.items() if k != "_meta"}}
    return message


async def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [_comparable(message.json()) async for message in sse_messages(response)]


async def _answers(
    servers: dict[str, LiveServer], headers: dict[str, str], body: bytes
) -> tuple[httpx.Response, httpx.Response]:
    """The gateway's and the plain SDK's answers to the same sessionless POST."""
    answers: dict[str, httpx.Response] = {}
    for kind, server in servers.items():
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            answers[kind] = await http.post(_path(kind), headers=headers, content=body)
    return answers["gateway"], answers["sdk"]


async def _session_answer(server: LiveServer, path: str, message: dict[str, Any]) -> tuple[httpx.Response, str]:
    async with _session(server, path) as (http, headers):
        response = await http.post(path, headers=headers, json=message)
        return response, response.text


async def test_session_request_streams_its_notifications_then_its_reply_as_the_sdk_does(
    servers: dict[str, LiveServer],
) -> None:
    message = _call("chatty", {"steps": 2})
    answers = {kind: await _session_answer(server, _path(kind), message) for kind, server in servers.items()}
    gateway, sdk = answers["gateway"][0], answers["sdk"][0]
    assert gateway.status_code == sdk.status_code == 200
    assert _stable_headers(gateway) == _stable_headers(sdk)
    assert "mcp-session-id" in gateway.headers
    events = {kind: await _events(response) for kind, (response, _) in answers.items()}
    assert [e.get("method") for e in events["gateway"]] == ["notifications/progress"] * 2 + [None]
    assert events["gateway"] == events["sdk"]
    assert events["gateway"][-1]["result"]["content"][0]["text"] == "chatted"


async def test_session_request_past_the_keepalive_window_is_pinged_then_answered(
    servers: dict[str, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sse, "KEEPALIVE_SECONDS", SHORT_KEEPALIVE)
    response, text = await _session_answer(servers["gateway"], _path("gateway"), _call("slow", {"seconds": 0.5}))
    assert response.headers["content-type"] == "text/event-stream"
    assert text.count(inline_sse.PING.decode()) >= 2  # at the window, and again one window later
    assert text.rindex(inline_sse.PING.decode()) < text.index('"slept"')
    assert (await _events(response))[-1]["result"]["content"][0]["text"] == "slept"


async def test_session_outlives_a_client_leaving_one_of_its_requests(
    servers: dict[str, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sse, "KEEPALIVE_SECONDS", SHORT_KEEPALIVE)
    path = _path("gateway")
    async with _session(servers["gateway"], path) as (http, headers):
        async with http.stream("POST", path, headers=headers, json=_call("slow", {"seconds": 2})) as left:
            assert left.status_code == 200
        answer = await http.post(path, headers=headers, json=_call("chatty", {"steps": 1}, request_id=8))
        assert (await _events(answer))[-1]["result"]["content"][0]["text"] == "chatted"


async def _post_into(answer: list[httpx.Response], http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    answer.append(await http.post(path, headers=headers, json=_call("slow", {"seconds": 5})))


@pytest.mark.parametrize("kind", ["gateway", "sdk"])
async def test_session_ended_while_a_request_runs_ends_its_stream_as_the_sdk_does(
    servers: dict[str, LiveServer], kind: str
) -> None:
    path = _path(kind)
    answer: list[httpx.Response] = []
    async with _session(servers[kind], path) as (http, headers), anyio.create_task_group() as tg:
        tg.start_soon(_post_into, answer, http, path, headers)
        await anyio.sleep(0.3)
        assert (await http.delete(path, headers=headers)).status_code == 200
        with anyio.fail_after(CANCEL_TIMEOUT):
            while not answer:
                await anyio.sleep(0.05)
    assert answer[0].status_code == 200
    assert not [e for e in await _events(answer[0]) if "result" in e]


async def test_modern_request_without_notifications_is_answered_as_json_as_the_sdk_does(
    servers: dict[str, LiveServer],
) -> None:
    message = json.dumps(_call("slow", {"seconds": 0}, modern=True)).encode()
    gateway, sdk = await _answers(servers, _modern_headers("slow"), message)
    assert gateway.status_code == sdk.status_code == 200
    assert gateway.headers["content-type"] == sdk.headers["content-type"] == "application/json"
    assert _comparable(gateway.json()) == _comparable(sdk.json())
    assert gateway.json()["result"]["content"][0]["text"] == "slept"


async def test_modern_request_turns_into_an_event_stream_at_its_first_notification_as_the_sdk_does(
    servers: dict[str, LiveServer],
) -> None:
    message = json.dumps(_call("chatty", {"steps": 2}, modern=True)).encode()
    gateway, sdk = await _answers(servers, _modern_headers("chatty"), message)
    assert gateway.status_code == sdk.status_code == 200
    assert _stable_headers(gateway) == _stable_headers(sdk)
    events = {"gateway": await _events(gateway), "sdk": await _events(sdk)}
    assert [e.get("method") for e in events["gateway"]] == ["notifications/progress"] * 2 + [None]
    assert events["gateway"] == events["sdk"]


async def test_modern_request_past_the_keepalive_window_is_streamed_and_pinged(
    servers: dict[str, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sse, "KEEPALIVE_SECONDS", SHORT_KEEPALIVE)
    async with httpx.AsyncClient(base_url=servers["gateway"].base_url) as http:
        message = _call("slow", {"seconds": 0.5}, modern=True)
        response = await http.post(_path("gateway"), headers=_modern_headers("slow"), json=message)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.startswith(inline_sse.PING.decode())
    assert (await _events(response))[-1]["result"]["content"][0]["text"] == "slept"


async def test_client_leaving_a_modern_request_cancels_its_handler(
    servers: dict[str, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sse, "KEEPALIVE_SECONDS", SHORT_KEEPALIVE)
    HANG.started.clear()
    HANG.cancelled.clear()
    async with httpx.AsyncClient(base_url=servers["gateway"].base_url) as http:
        message = _call("hang", {}, modern=True)
        async with http.stream("POST", _path("gateway"), headers=_modern_headers("hang"), json=message) as response:
            assert response.status_code == 200  # committed by the keepalive, the handler still running
            assert await anyio.to_thread.run_sync(HANG.started.wait, CANCEL_TIMEOUT)
    assert await anyio.to_thread.run_sync(HANG.cancelled.wait, CANCEL_TIMEOUT)


def _modern_malformed() -> list[Any]:
    call = _call("slow", {"seconds": 0}, modern=True)
    routed = json.dumps(_call("routed", {"region": "eu"}, modern=True)).encode()
    headers = _modern_headers("slow")
    cases = [
        ("header naming another method", {**headers, "Mcp-Method": "tools/list"}, json.dumps(call).encode()),
        ("header naming another tool", {**headers, "Mcp-Name": "chatty"}, json.dumps(call).encode()),
        ("batch", headers, json.dumps([call]).encode()),
        ("not JSON", headers, b"{not json"),
        ("not a request", headers, json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}).encode()),
        ("notification", headers, json.dumps({"jsonrpc": "2.0", "method": "notifications/x"}).encode()),
        ("no event-stream in Accept", {**headers, "Accept": "application/json"}, json.dumps(call).encode()),
        ("text body", {**headers, "Content-Type": "text/plain"}, json.dumps(call).encode()),
        ("unknown revision", {**headers, "MCP-Protocol-Version": "2099-01-01"}, json.dumps(call).encode()),
        ("missing envelope", headers, json.dumps(jsonrpc_request("tools/call", {"name": "slow"})).encode()),
        ("routing header missing", _modern_headers("routed"), routed),
        ("routing header disagreeing", {**_modern_headers("routed"), "Mcp-Param-Region": "us"}, routed),
        ("routing header agreeing", {**_modern_headers("routed"), "Mcp-Param-Region": "eu"}, routed),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize(
    ("case", "headers", "body"), _modern_malformed(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_checked_modern_request_is_answered_as_the_sdk_answers_it(
    servers: dict[str, LiveServer], case: str, headers: dict[str, str], body: bytes
) -> None:
    gateway, sdk = await _answers(servers, headers, body)
    assert gateway.status_code == sdk.status_code, case
    if sdk.headers.get("content-type", "").startswith("application/json"):
        assert _comparable(gateway.json()) == _comparable(sdk.json()), case
    elif sdk.status_code >= 400:  # the gateway answers the SDK's plain-text and empty errors as JSON
        assert gateway.headers["content-type"] == "application/json", case
    else:  # an acknowledged notification
        assert not gateway.content and not sdk.content, case


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("not JSON", b"{not json"),
        ("not JSON-RPC", json.dumps({"hello": "world"}).encode()),
        ("a response", json.dumps({"jsonrpc": "2.0", "id": 99, "result": {}}).encode()),
    ],
)
async def test_malformed_session_post_is_answered_as_the_sdk_answers_it(
    servers: dict[str, LiveServer], case: str, body: bytes
) -> None:
    answers: dict[str, httpx.Response] = {}
    for kind, server in servers.items():
        async with _session(server, _path(kind)) as (http, headers):
            answers[kind] = await http.post(_path(kind), headers=headers, content=body)
    gateway, sdk = answers["gateway"], answers["sdk"]
    assert gateway.status_code == sdk.status_code, case
    assert gateway.headers["content-type"].split(";")[0] == sdk.headers["content-type"].split(";")[0], case
    if gateway.status_code != 202:
        assert gateway.json()["error"]["code"] == sdk.json()["error"]["code"], case
