"""Seed 003 (the Agnost SDK and capture API), against a live gateway: a session is recorded when a client connects,
before any call, on every transport; the plain JSON-RPC POST opens sessions its later calls join."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import Implementation

from .support import (
    DEMO,
    HANDSHAKE,
    MCP_TIMEOUT,
    LiveServer,
    gateway_environment,
    gateway_executable,
    gateway_process,
    jsonrpc_request,
    stored_rows,
)

DEMO_TOOLS: Final = ["book_demo", "track_event"]
"""The tools the bundled `demo` manifest enables."""

CLIENT: Final = Implementation(name="seed003-client", version="4.5.6")
FLUSH_TIMEOUT: Final = 5.0
CONNECT_TRANSPORTS: Final = (
    "sse-legacy",
    "sse-auto",
    "streamable-http-legacy",
    "streamable-http-auto",
    "stdio-legacy",
    "stdio-auto",
)
"""Transport and connect mode of the SDK client: `legacy` initializes, `auto` discovers (2026-07-28)."""


async def flush(server: LiveServer) -> None:
    assert await server.app.state.services.tracking_sink.flush(FLUSH_TIMEOUT)


def sessions_of(server: LiveServer) -> list[dict[str, Any]]:
    return stored_rows(server.db_path, "SELECT * FROM mcp_sessions ORDER BY seq")


def events_of(server: LiveServer) -> list[dict[str, Any]]:
    return stored_rows(server.db_path, "SELECT * FROM events ORDER BY seq")


@contextlib.asynccontextmanager
async def sdk_client(transport: str, server: LiveServer) -> AsyncIterator[Client]:
    """The SDK's client, connected to the demo gateway over `transport` (`kind-mode`)."""
    kind, _, mode = transport.rpartition("-")
    with anyio.fail_after(MCP_TIMEOUT):
        if kind == "sse":
            async with Client(sse_client(server.url(f"/v1/mcp/sse?gid={DEMO}")), mode=mode, client_info=CLIENT) as c:
                yield c
        elif kind == "streamable-http":
            async with Client(server.url(f"/mcp?gid={DEMO}"), mode=mode, client_info=CLIENT) as client:
                yield client
        else:
            params = StdioServerParameters(
                command=gateway_executable(),
                args=["stdio", "--gateway", DEMO, "--db", str(server.db_path)],
                env=gateway_environment(),
            )
            with (server.db_path.parent / "stdio-stderr.log").open("a", encoding="utf-8") as errlog:
                async with Client(stdio_client(params, errlog=errlog), mode=mode, client_info=CLIENT) as client:
                    yield client


@pytest.mark.parametrize("transport", CONNECT_TRANSPORTS)
async def test_a_client_that_connects_and_calls_nothing_is_a_recorded_session(
    transport: str, live_server: LiveServer
) -> None:
    async with sdk_client(transport, live_server):
        pass  # connected (initialize, or server/discover), and gone without a call
    await flush(live_server)

    [session] = sessions_of(live_server)
    assert session["gateway_id"] == DEMO
    assert session["client_config"] == "seed003-client 4.5.6"
    assert session["transport"] == transport.rpartition("-")[0]
    assert json.loads(session["tools"]) == DEMO_TOOLS
    assert events_of(live_server) == []


async def test_a_connection_that_then_calls_is_still_one_session(live_server: LiveServer) -> None:
    async with sdk_client("streamable-http-legacy", live_server) as client:
        await client.list_tools()
        await client.read_resource("system://hint")
    await flush(live_server)

    [session] = sessions_of(live_server)
    events = events_of(live_server)
    assert [event["name"] for event in events] == ["tools/list", "system://hint"]
    assert {event["session_id"] for event in events} == {session["id"]}


# -- the plain JSON-RPC POST ----------------------------------------------------------------------------------------

JSONRPC_URL: Final = f"/v1/mcp/sse?gid={DEMO}"
INITIALIZE_PARAMS: Final = {
    "protocolVersion": HANDSHAKE,
    "capabilities": {},
    "clientInfo": {"name": "curl-script", "version": "0.1"},
}


async def post(http: httpx.AsyncClient, message: Any, session_id: str | None = None) -> httpx.Response:
    headers = {"Mcp-Session-Id": session_id} if session_id is not None else {}
    return await http.post(JSONRPC_URL, json=message, headers=headers)


async def test_a_jsonrpc_initialize_opens_a_session_that_later_posts_join(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    opened = await post(live_http, jsonrpc_request("initialize", INITIALIZE_PARAMS, 1))
    assert opened.status_code == 200, opened.text
    assert opened.json()["result"]["protocolVersion"] == HANDSHAKE
    session_id = opened.headers["Mcp-Session-Id"]
    await flush(live_server)
    [stored] = sessions_of(live_server)  # recorded at initialize, before any call
    assert (stored["client_config"], stored["transport"]) == ("curl-script 0.1", "jsonrpc-post")

    listed = await post(live_http, jsonrpc_request("tools/list", request_id=2), session_id)
    assert listed.status_code == 200, listed.text
    assert [tool["name"] for tool in listed.json()["result"]["tools"]] == DEMO_TOOLS
    assert "Mcp-Session-Id" not in listed.headers
    read = await post(live_http, jsonrpc_request("resources/read", {"uri": "system://hint"}, 3), session_id)
    assert read.status_code == 200, read.text
    stateless = await post(live_http, jsonrpc_request("prompts/list", request_id=4))
    assert stateless.status_code == 200, stateless.text
    await flush(live_server)

    sessions = {row["id"]: row for row in sessions_of(live_server)}
    events = {event["name"]: event for event in events_of(live_server)}
    assert events["tools/list"]["session_id"] == events["system://hint"]["session_id"] == stored["id"]
    anonymous = sessions[events["prompts/list"]["session_id"]]  # no id sent: the sessionless session, as before
    assert anonymous["id"] != stored["id"] and anonymous["client_config"] == "unknown"


async def test_a_jsonrpc_batch_after_initialize_belongs_to_the_session_it_opened(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    batch = [jsonrpc_request("initialize", INITIALIZE_PARAMS, 1), jsonrpc_request("tools/list", request_id=2)]
    response = await post(live_http, batch)
    assert response.status_code == 200, response.text
    assert [reply["id"] for reply in response.json()] == [1, 2]
    assert response.headers["Mcp-Session-Id"]
    await flush(live_server)

    [stored] = sessions_of(live_server)
    [event] = events_of(live_server)
    assert (event["name"], event["session_id"], stored["client_config"]) == (
        "tools/list",
        stored["id"],
        "curl-script 0.1",
    )


@pytest.mark.parametrize("session_id", ["0" * 32, "not-a-session", ""])
async def test_an_unknown_jsonrpc_session_is_404_as_streamable_http_answers_it(
    session_id: str, live_http: httpx.AsyncClient
) -> None:
    response = await post(live_http, jsonrpc_request("tools/list"), session_id)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}}

    again = await post(live_http, jsonrpc_request("initialize", INITIALIZE_PARAMS), session_id)  # start over
    assert again.status_code == 200 and again.headers["Mcp-Session-Id"] != session_id


@pytest.mark.parametrize("backend", ["postgresql"])  # several processes share one PostgreSQL database
@pytest.mark.usefixtures("database_url")
async def test_a_jsonrpc_session_opened_on_one_process_is_joined_through_another(tmp_path: Path) -> None:
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with (
        gateway_process(tmp_path / "unused.db") as (_, first_url),
        gateway_process(tmp_path / "unused.db") as (_, second_url),
        httpx.AsyncClient(base_url=first_url, limits=no_reuse, timeout=MCP_TIMEOUT) as first,
        httpx.AsyncClient(base_url=second_url, limits=no_reuse, timeout=MCP_TIMEOUT) as second,
    ):
        opened = await post(first, jsonrpc_request("initialize", INITIALIZE_PARAMS, 1))
        session_id = opened.headers["Mcp-Session-Id"]
        listed = await post(second, jsonrpc_request("tools/list", request_id=2), session_id)
        unknown = await post(second, jsonrpc_request("tools/list", request_id=3), "f" * 32)

    assert listed.status_code == 200, listed.text
    assert [tool["name"] for tool in listed.json()["result"]["tools"]] == DEMO_TOOLS
    assert unknown.status_code == 404
