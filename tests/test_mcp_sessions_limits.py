"""MCP session exhaustion (issue 14 item 2): anonymous `initialize` floods cannot lock legitimate clients out.

A real server on loopback with small limits; clients bound to loopback aliases (127.0.0.2, 127.0.0.3) stand for
other IPs. The limits are given as `MCP_GATEWAY_*` variables, as an operator would set them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp_gateway import create_app
from mcp_gateway.config_sources import load_settings
from mcp_gateway.transports.session_limits import SessionLimits, TrackedSession, client_key
from mcp_gateway.web import ApiError

from .support import (
    ADMIN_TOKEN,
    DEMO,
    HANDSHAKE,
    MODERN,
    LiveServer,
    connect,
    jsonrpc_request,
    serve_in_thread,
    sse_messages,
)

MCP_URL = f"/mcp?gid={DEMO}"
SSE_URL = f"/v1/mcp/sse?gid={DEMO}"
STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = jsonrpc_request(
    "initialize", {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}
)
WAIT_SECONDS = 10.0
"""Longest a test waits for a session to end."""


@contextlib.contextmanager
def gateway(tmp_path: Path, **limits: object) -> Iterator[LiveServer]:
    """The gateway on a loopback port with `limits` given as `MCP_GATEWAY_<NAME>` variables."""
    db_path = tmp_path / "gateway.db"
    with pytest.MonkeyPatch.context() as environment:
        for name, value in limits.items():
            environment.setenv(f"MCP_GATEWAY_{name.upper()}", str(value))
        settings = load_settings({"db_path": db_path, "admin_token": ADMIN_TOKEN}).settings
    with serve_in_thread(create_app(settings), db_path) as server:
        yield server


@contextlib.asynccontextmanager
async def client_at(server: LiveServer, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose connections come from `address` (a loopback alias: another client IP)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=WAIT_SECONDS) as http:
        yield http


async def initialize(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post(MCP_URL, json=INITIALIZE, headers=STREAMABLE_HEADERS)


async def opened_session(http: httpx.AsyncClient) -> str:
    response = await initialize(http)
    assert response.status_code == 200, response.text
    session_id: str = response.headers["mcp-session-id"]
    return session_id


async def ping(http: httpx.AsyncClient, session_id: str) -> int:
    """The HTTP status of a `ping` in `session_id`: 200 while the session lives, 404 once it ended."""
    headers = {**STREAMABLE_HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE}
    response = await http.post(MCP_URL, json=jsonrpc_request("ping", request_id=2), headers=headers)
    return response.status_code


def assert_refused(response: httpx.Response, status: int = 429) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    body: dict[str, Any] = response.json()
    assert body["retry_after"] == int(response.headers["retry-after"])
    return body


async def assert_legitimate_client_gets_in(server: LiveServer) -> None:
    """The official SDK client opens a session-protocol session, lists the tools and closes it."""
    async with connect(f"streamable-http-{HANDSHAKE}", server) as session:
        assert session.protocol_version == HANDSHAKE
        tools = await session.list_tools()
        assert "book_demo" in {tool.name for tool in tools.tools}


async def test_initialize_flood_from_one_ip_is_answered_429_and_other_clients_still_get_in(tmp_path: Path) -> None:
    with gateway(tmp_path, new_mcp_sessions_per_ip_per_minute=5) as server:
        async with client_at(server, "127.0.0.2") as flood:
            answers = [await initialize(flood) for _ in range(20)]
        assert [answer.status_code for answer in answers[:5]] == [200] * 5
        for answer in answers[5:]:
            assert_refused(answer)
            assert answer.headers["x-ratelimit-remaining"] == "0"
        await assert_legitimate_client_gets_in(server)


async def test_open_sessions_per_ip_are_capped_until_one_is_deleted(tmp_path: Path) -> None:
    with gateway(tmp_path, max_mcp_sessions_per_ip=3) as server:
        async with client_at(server, "127.0.0.2") as crowded, client_at(server, "127.0.0.3") as other:
            held = [await opened_session(crowded) for _ in range(3)]
            assert_refused(await initialize(crowded))
            await opened_session(other)
            deleted = await crowded.delete(
                MCP_URL, headers={"Mcp-Session-Id": held[0], "MCP-Protocol-Version": HANDSHAKE}
            )
            assert deleted.status_code == 200
            await opened_session(crowded)


async def test_full_table_evicts_the_least_recently_active_session_for_a_new_client(tmp_path: Path) -> None:
    with gateway(tmp_path, max_mcp_sessions=6, max_mcp_sessions_per_ip=3) as server:
        async with client_at(server, "127.0.0.2") as first, client_at(server, "127.0.0.3") as second:
            oldest, least_recent, *_ = [await opened_session(first) for _ in range(3)]
            newer = [await opened_session(second) for _ in range(3)]  # the table is full
            assert await ping(first, oldest) == 200  # now the most recently active

            await assert_legitimate_client_gets_in(server)

            assert await ping(first, least_recent) == 404  # ended to make room
            assert await ping(first, oldest) == 200
            assert [await ping(second, session) for session in newer] == [200] * 3


async def test_idle_session_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    with gateway(tmp_path, mcp_session_idle_seconds=0.5, max_mcp_sessions_per_ip=1) as server:
        async with client_at(server, "127.0.0.2") as http:
            session_id = await opened_session(http)
            with anyio.fail_after(WAIT_SECONDS):  # a ping would keep it alive: wait until its place is free
                while (await initialize(http)).status_code != 200:
                    await anyio.sleep(0.1)
            assert await ping(http, session_id) == 404


async def test_sse_streams_count_against_the_new_session_rate(tmp_path: Path) -> None:
    with gateway(tmp_path, new_mcp_sessions_per_ip_per_minute=3) as server:
        async with client_at(server, "127.0.0.2") as http:
            for _ in range(3):
                async with http.stream("GET", SSE_URL) as stream:
                    assert stream.status_code == 200
                    assert (await anext(sse_messages(stream))).event == "endpoint"
            refused = await http.get(SSE_URL)
            assert_refused(refused)


async def test_oldest_sse_stream_is_ended_to_make_room_for_a_new_session(tmp_path: Path) -> None:
    with gateway(tmp_path, max_mcp_sessions=2) as server:
        async with client_at(server, "127.0.0.2") as http, http.stream("GET", SSE_URL) as oldest:
            messages = sse_messages(oldest)
            assert (await anext(messages)).event == "endpoint"
            async with http.stream("GET", SSE_URL) as newer:
                assert (await anext(sse_messages(newer))).event == "endpoint"
                await assert_legitimate_client_gets_in(server)
                with anyio.fail_after(WAIT_SECONDS), pytest.raises(StopAsyncIteration):
                    await anext(messages)  # the stream ended


async def test_sessionless_revision_opens_no_session_and_is_not_counted(tmp_path: Path) -> None:
    with gateway(tmp_path, new_mcp_sessions_per_ip_per_minute=1) as server:
        for _ in range(3):
            async with connect(f"streamable-http-{MODERN}", server) as session:
                assert session.protocol_version == MODERN
                assert (await session.list_tools()).tools
        await assert_legitimate_client_gets_in(server)


# -- the table itself -------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limits(clock: _Clock, *, max_sessions: int = 3, idle_timeout: float | None = None) -> SessionLimits:
    return SessionLimits(
        max_sessions=max_sessions, max_per_ip=100, new_per_ip_per_minute=100, idle_timeout=idle_timeout, clock=clock
    )


async def _open(limits: SessionLimits, session_id: str, ended: list[str], *, streams: int = 0) -> TrackedSession:
    async def close() -> None:
        ended.append(session_id)

    return (await limits.reserve("203.0.113.7")).fill(session_id, close, streams=streams)


async def test_eviction_takes_idle_sessions_before_streaming_ones_and_never_a_busy_one() -> None:
    clock, ended = _Clock(), list[str]()
    limits = _limits(clock)
    busy = await _open(limits, "busy", ended)
    await _open(limits, "streaming", ended, streams=1)
    clock.now += 1
    await _open(limits, "idle", ended)
    assert limits.started("busy", stream=False) is busy

    await _open(limits, "new-1", ended)
    assert ended == ["idle"]
    assert limits.started("new-1", stream=False) is not None  # busy from now on
    await _open(limits, "new-2", ended)
    assert ended == ["idle", "streaming"]
    assert limits.started("new-2", stream=False) is not None
    with pytest.raises(ApiError) as refused:
        await _open(limits, "new-3", ended)
    assert refused.value.status == 503
    limits.ended(busy, stream=False)
    await _open(limits, "new-3", ended)
    assert ended == ["idle", "streaming", "busy"]


async def test_sessions_idle_past_the_timeout_are_forgotten_without_eviction() -> None:
    clock, ended = _Clock(), list[str]()
    limits = _limits(clock, max_sessions=2, idle_timeout=60)
    await _open(limits, "a", ended)
    await _open(limits, "b", ended)
    clock.now += 61
    await _open(limits, "c", ended)
    assert ended == [] and len(limits) == 1


def test_clients_are_counted_by_ipv4_address_and_by_ipv6_64() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key(None) == "unknown"


async def test_an_initialize_too_big_to_keep_opens_no_session_on_either_transport(tmp_path: Path) -> None:
    bloated = {"protocolVersion": HANDSHAKE, "clientInfo": {"name": "x", "version": "1"}}
    bloated["capabilities"] = {"experimental": {f"k{i}": "v" * 64 for i in range(400)}}  # ~30 KB, under 1 MiB
    with gateway(tmp_path) as server:
        async with client_at(server, "127.0.0.2") as http:
            streamable = await http.post(
                MCP_URL, json=jsonrpc_request("initialize", bloated), headers=STREAMABLE_HEADERS
            )
            assert streamable.status_code == 413, streamable.text
            assert (
                streamable.headers["content-type"] == "application/json" and "mcp-session-id" not in streamable.headers
            )
            plain = await http.post(SSE_URL, json=jsonrpc_request("initialize", bloated))
            assert plain.json()["error"]["code"] == -32600 and "mcp-session-id" not in plain.headers
            assert (await initialize(http)).status_code == 200  # an ordinary one still opens a session
