"""Seed 003 (the Agnost SDK and capture API), against a live gateway: a session is recorded when a client connects,
before any call, on every transport; the plain JSON-RPC POST opens sessions its later calls join."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
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
    stored_rows,
)

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


def stdio_environment() -> dict[str, str]:
    """The stdio server's environment, with this run's `PYTHONPATH` (a worktree's checkout runs as it is tested)."""
    env = gateway_environment()
    if path := os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = path
    return env


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
                env=stdio_environment(),
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
    assert json.loads(session["tools"]) == ["book_demo"]
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
