"""`mcp_json_response`: Streamable HTTP answered as `application/json`, never as an SSE stream, when asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.client import Client

from mcp_gateway import Settings, create_app
from mcp_gateway.config_sources import load_settings

from .support import (
    ADMIN_TOKEN,
    DEMO,
    HANDSHAKE,
    LiveServer,
    jsonrpc_request,
    leads_of,
    serve_in_thread,
    stored_rows,
)

FLUSH_TIMEOUT = 5.0

STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _serve(db_path: Path, database_url: str | None, *, json_response: bool) -> Iterator[LiveServer]:
    settings = Settings(
        db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, mcp_json_response=json_response
    )
    with serve_in_thread(create_app(settings), db_path) as server:
        yield server


@pytest.fixture
def json_server(tmp_path: Path, database_url: str | None) -> Iterator[LiveServer]:
    yield from _serve(tmp_path / "gateway.db", database_url, json_response=True)


@pytest.fixture
def sse_server(tmp_path: Path, database_url: str | None) -> Iterator[LiveServer]:
    yield from _serve(tmp_path / "gateway.db", database_url, json_response=False)


def test_json_response_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no config file of the machine's
    monkeypatch.delenv("MCP_GATEWAY_MCP_JSON_RESPONSE", raising=False)
    assert load_settings().settings.mcp_json_response is False
    monkeypatch.setenv("MCP_GATEWAY_MCP_JSON_RESPONSE", "true")
    assert load_settings().settings.mcp_json_response is True


async def _initialize(http: httpx.AsyncClient) -> httpx.Response:
    params = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    return await http.post(f"/mcp?gid={DEMO}", headers=STREAMABLE_HEADERS, json=jsonrpc_request("initialize", params))


async def test_streamable_http_answers_as_json_when_asked_to(json_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=json_server.base_url) as http:
        response = await _initialize(http)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["result"]["protocolVersion"] == HANDSHAKE


async def test_streamable_http_answers_as_sse_by_default(sse_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=sse_server.base_url) as http:
        response = await _initialize(http)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_client_books_a_demo_over_json_responses_and_the_call_is_tracked(
    json_server: LiveServer, mode: str
) -> None:
    email = f"ada-{mode}@example.com"
    async with Client(json_server.url(f"/mcp?gid={DEMO}"), mode=mode) as client:
        result = await client.call_tool("book_demo", {"name": "Ada Lovelace", "email": email})
        assert not result.is_error
        assert result.structured_content is not None and result.structured_content["status"] == "booked"
    async with httpx.AsyncClient(base_url=json_server.base_url) as http:
        assert [lead["email"] for lead in await leads_of(http)] == [email]
    assert await json_server.app.state.services.tracking_sink.flush(FLUSH_TIMEOUT)
    events = stored_rows(json_server.db_path, "SELECT name, success FROM events WHERE name = ?", "book_demo")
    assert [(event["name"], bool(event["success"])) for event in events] == [("book_demo", True)]
