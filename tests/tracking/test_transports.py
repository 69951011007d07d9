"""A tracked `MCPServer` driven by the real SDK client over stdio (a subprocess) and Streamable HTTP
(uvicorn in a thread), tracking to the fake backend over HTTP: one session per connection, one
event per call, at both protocol revisions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation
from mcp_gateway_tracking import CaptureEvent, track_mcp
from mcp_gateway_tracking.privacy import hash_text

from ..support import MCP_TIMEOUT, serve_in_thread
from .backend import FakeBackend
from .demo_server import SECRET_EMAIL, SECRET_PASSWORD, build_demo_server
from .stdio_server import ORG_ID

Mode = Literal["legacy", "auto"]
MODES: list[Mode] = ["legacy", "auto"]
REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT = Implementation(name="tracking-tests", version="1.2.3")


async def exercise(client: Client) -> None:
    """Calls every kind of tracked primitive once; five of them tool calls, three failing."""
    assert (await client.call_tool("add", {"a": 2, "b": 2})).structured_content == {"result": 4}
    assert not (await client.call_tool("sign_up", {"email": SECRET_EMAIL, "password": SECRET_PASSWORD})).is_error
    assert (await client.call_tool("refuse", {})).is_error
    assert (await client.call_tool("crash", {})).is_error
    assert (await client.call_tool("no_such_tool", {})).is_error
    await client.read_resource("docs://readme")
    await client.get_prompt("greet", {"name": "Ada"})


def check_calls(events: list[CaptureEvent]) -> None:
    calls = {event.primitive_name: event for event in events if event.operation == "call"}
    assert len([event for event in events if event.operation == "call"]) == 7
    assert {name: event.success for name, event in calls.items()} == {
        "add": True,
        "sign_up": True,
        "refuse": False,
        "crash": False,
        "no_such_tool": False,
        "docs://readme": True,
        "greet": True,
    }
    for event in events:
        assert 0 < event.latency < 5000
    sign_up = calls["sign_up"]
    assert sign_up.args is not None and hash_text(SECRET_EMAIL.lower()) in sign_up.args
    assert SECRET_PASSWORD not in sign_up.args and SECRET_PASSWORD not in (sign_up.result or "")


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_connection_is_one_session_with_one_event_per_call(
    mode: Mode, backend: FakeBackend, tmp_path: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.tracking.stdio_server", backend.url, str(tmp_path / "spool")],
        cwd=REPO_ROOT,
        # The SDK's safe default environment holds no PYTHONPATH: pass on the one naming this checkout's SDK.
        env={"TRACKING_TEST_USER": "stdio-user", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    with (tmp_path / "stderr.log").open("w") as errlog, anyio.fail_after(MCP_TIMEOUT):
        async with Client(stdio_client(params, errlog=errlog), mode=mode, client_info=CLIENT) as client:
            await exercise(client)
            await backend.wait_for(lambda: len([e for e in backend.events.values() if e.operation == "call"]) == 7)

    [session] = backend.sessions.values()
    assert session.client_config == "tracking-tests 1.2.3"
    assert (session.transport, session.ip) == ("stdio", "")
    assert session.tools == ["add", "sign_up", "refuse", "crash"]
    assert session.user_data == {"userId": "stdio-user"}
    assert {hit.org for hit in backend.hits} == {ORG_ID}
    assert backend.orphans == 0
    events = list(backend.events.values())
    assert {event.session_id for event in events} == {session.session_id}
    check_calls(events)


def identify(request: Any, env: Mapping[str, str]) -> dict[str, Any] | None:
    if request is None:
        return None
    return {"userId": request.headers.get("x-user", "anonymous"), "email": request.headers.get("x-email")}


@asynccontextmanager
async def http_client(url: str, mode: Mode, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=MCP_TIMEOUT) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, client_info=CLIENT) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_streamable_http_connections_are_sessions_with_one_event_per_call(
    mode: Mode, backend: FakeBackend, tmp_path: Path
) -> None:
    server = build_demo_server()
    tracker = track_mcp(
        server,
        "org-http",
        endpoint=backend.url,
        spool_dir=tmp_path / "spool",
        batch_size=50,
        retry_delay=0.01,
        identify=identify,
    )
    users = {"alice": "Bearer token-alice", "bob": "Bearer token-bob"}
    try:
        with serve_in_thread(server.streamable_http_app(), tmp_path / "unused.db") as live:
            with anyio.fail_after(MCP_TIMEOUT):
                for user, authorization in users.items():
                    headers = {"Authorization": authorization, "X-User": user, "X-Email": f"{user}@Example.com"}
                    async with http_client(live.url("/mcp"), mode, headers) as client:
                        await exercise(client)
            # The server's loop runs in uvicorn's thread: flush() reaches across to it.
            assert await tracker.flush(10)
    finally:
        await tracker.aclose()

    sessions = list(backend.sessions.values())
    assert len(sessions) == 2
    assert sorted(s.user_data["userId"] for s in sessions if s.user_data) == ["alice", "bob"]
    for session in sessions:
        assert session.client_config == "tracking-tests 1.2.3"
        assert (session.transport, session.ip) == ("streamable-http", "127.0.0.1")
        assert session.user_data is not None and session.user_data["email"].startswith("sha256:")
        events = [event for event in backend.events.values() if event.session_id == session.session_id]
        check_calls(events)
    assert backend.orphans == 0 and tracker.dropped == {}
