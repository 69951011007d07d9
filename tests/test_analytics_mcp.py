"""The analytics MCP server at /analytics/mcp, with the official client over Streamable HTTP on a real socket.

Each behaviour runs with the sessionless 2026-07-28 revision (`auto`) and the 2025-11-25 handshake (`legacy`).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent

from mcp_gateway.analytics import QUESTIONS
from mcp_gateway.analytics.mcp_endpoint import ANALYTICS_MCP_PATH, question_tools
from mcp_gateway.experiments import QUESTIONS as EXPERIMENT_QUESTIONS

from .support import DEMO, MCP_TIMEOUT, LiveServer, admin_json, create_key, jsonrpc_request

SESSION: Final = "0b7e3c1d-2a4f-4c6e-9d8b-1f2e3d4c5b6a"
MODES: Final = ("auto", "legacy")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@contextlib.asynccontextmanager
async def analytics(server: LiveServer, read_key: str, mode: str) -> AsyncIterator[Client]:
    """An MCP client session on the analytics endpoint, authenticated with `read_key`."""
    with anyio.fail_after(MCP_TIMEOUT):
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {read_key}"}) as http:
            transport = streamable_http_client(server.url(ANALYTICS_MCP_PATH), http_client=http)
            async with Client(transport, mode=mode) as client:
                yield client


def json_text(result: CallToolResult) -> Any:
    [content] = result.content
    assert isinstance(content, TextContent)
    return json.loads(content.text)


async def capture_calls(http: httpx.AsyncClient, gateway_id: str, *calls: tuple[str, bool]) -> None:
    """Store tool calls `(name, success)` for `gateway_id` through the ingestion API."""
    org = await create_key(http, gateway_id, "org")
    session = {"session_id": SESSION, "client_config": "claude-desktop 1.0"}
    events = [
        {
            "session_id": SESSION,
            "primitive_type": "tool",
            "primitive_name": name,
            "latency": 10.0,
            "success": success,
            "event_id": uuid.uuid4().hex,
        }
        for name, success in calls
    ]
    response = await http.post(
        "/api/v1/capture-batch", json={"sessions": [session], "events": events}, headers={"X-Org-Id": org}
    )
    assert response.status_code == 200, response.text


def around_now() -> dict[str, str]:
    now = int(time.time() * 1000)
    return {"since": str(now - 3_600_000), "until": str(now + 3_600_000)}


async def test_every_analytics_question_is_a_tool(
    live_server: LiveServer, live_http: httpx.AsyncClient, mode: str
) -> None:
    read = await create_key(live_http, DEMO, "read")

    async with analytics(live_server, read, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == set(question_tools([*QUESTIONS, *EXPERIMENT_QUESTIONS]))
    assert {"analytics_tools", "stats", "live"} <= set(tools)
    summaries = {q.path: q.summary for q in QUESTIONS}
    assert tools["analytics_tools"].description == summaries["/analytics/tools"]
    assert tools["live"].input_schema["properties"]["window"]["maximum"] == 3600
    assert tools["live"].annotations is not None and tools["live"].annotations.read_only_hint


async def test_analytics_tools_answers_what_get_analytics_tools_answers(
    live_server: LiveServer, live_http: httpx.AsyncClient, mode: str
) -> None:
    await capture_calls(live_http, DEMO, ("search", True), ("search", False), ("search", True), ("book_demo", True))
    read = await create_key(live_http, DEMO, "read")
    window = around_now()

    async with analytics(live_server, read, mode) as client:
        result = await client.call_tool("analytics_tools", window)
    rest = await live_http.get("/analytics/tools", params=window, headers={"X-API-Key": read})

    assert not result.is_error
    assert result.structured_content == rest.json() == json_text(result)
    # search: 3 calls, 1 failed; book_demo: 1 call.
    primitives = [(p["name"], p["calls"], p["errors"]) for p in rest.json()["primitives"]]
    assert primitives == [("search", 3, 1), ("book_demo", 1, 0)]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"period": "5d"}, "period"), ({"since": "soon"}, "since"), ({"since": "2000", "until": "1000"}, "since")],
)
async def test_a_bad_argument_is_a_tool_error_naming_it(
    live_server: LiveServer, live_http: httpx.AsyncClient, arguments: dict[str, str], field: str
) -> None:
    read = await create_key(live_http, DEMO, "read")

    async with analytics(live_server, read, "auto") as client:
        result = await client.call_tool("analytics_tools", arguments)

    assert result.is_error
    assert json_text(result)["field"] == field


async def test_a_read_key_answers_for_its_own_gateway_only(
    live_server: LiveServer, live_http: httpx.AsyncClient, mode: str
) -> None:
    await admin_json(live_http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    await capture_calls(live_http, DEMO, ("search", True))
    await capture_calls(live_http, "acme", ("acme_tool", True))

    async with analytics(live_server, await create_key(live_http, "acme", "read"), mode) as client:
        tools = await client.call_tool("analytics_tools", around_now())
        live = await client.call_tool("live", {})

    assert [p["name"] for p in json_text(tools)["primitives"]] == ["acme_tool"]
    assert json_text(tools)["gateway_id"] == "acme"
    assert (json_text(live)["gateway_id"], json_text(live)["events"]) == ("acme", 1)


@pytest.mark.parametrize("kind", [None, "org", "sk"])
async def test_without_a_read_key_the_endpoint_is_401(live_http: httpx.AsyncClient, kind: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if kind is not None:
        headers["X-API-Key"] = await create_key(live_http, DEMO, kind)
    initialize = jsonrpc_request(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )

    response = await live_http.post(ANALYTICS_MCP_PATH, json=initialize, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]
