"""The gateway tracks its own MCP traffic into its store: one session per connection, one event per call.

Each behaviour runs over every transport in `support.TRANSPORTS` against the live server; stdio
runs in a subprocess writing the same database, which has flushed by the time the session closes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_gateway_tracking.privacy import hash_text

from mcp_gateway import Settings, create_app
from mcp_gateway.cli import run

from .postgres import database_for
from .support import (
    ADMIN_TOKEN,
    DEMO,
    TRANSPORTS,
    LiveServer,
    McpSession,
    admin_json,
    connect,
    database_bytes,
    expected_protocol_version,
    jsonrpc_request,
    leads_of,
    serve_in_thread,
    stored_rows,
)

BOOKED_EMAIL: Final = "Ada.Lovelace@Engines.example.com"
"""Booked for real: it lands in `leads` (business data), never in sessions or events."""

REFUSED_EMAIL: Final = "Charles.Babbage@difference.example.net"
"""Sent with a booking that is refused: it must land nowhere at all."""

FLUSH_TIMEOUT: Final = 5.0
MAX_LATENCY_MS: Final = 5000


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def session_transport(transport: str) -> str:
    """The `transport` a session is stored with: the test transport id without its revision."""
    return transport.removesuffix("-" + expected_protocol_version(transport))


async def flush(server: LiveServer) -> None:
    """Everything the live server captured so far, committed (stdio processes flush as they exit)."""
    assert await server.app.state.services.tracking_sink.flush(FLUSH_TIMEOUT)


def query(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    return stored_rows(db_path, sql, *params)


def stored_sessions(db_path: Path) -> list[dict[str, Any]]:
    return query(db_path, "SELECT * FROM mcp_sessions ORDER BY seq")


def stored_events(db_path: Path) -> list[dict[str, Any]]:
    return query(db_path, "SELECT * FROM events ORDER BY seq")


async def exercise(session: McpSession) -> None:
    """List everything, read a resource, book (once validly, once not), call an unknown tool, get the prompt."""
    await session.list_tools()
    await session.list_resources()
    await session.list_prompts()
    await session.read_resource("pricing://current")
    assert not (await session.call_tool("book_demo", {"name": "Ada Lovelace", "email": BOOKED_EMAIL})).is_error
    assert (await session.call_tool("book_demo", {"name": "   ", "email": REFUSED_EMAIL})).is_error
    try:
        unknown = await session.call_tool("no_such_tool", {"x": 1})
    except MCPError:
        pass  # a client may see it as a protocol error: the event must say it failed either way
    else:
        assert unknown.is_error
    await session.get_prompt("recommend_plan", {"needs": "lead capture"})


EXPECTED_EVENTS: Final = [
    ("tool", "list", "tools/list", True),
    ("resource", "list", "resources/list", True),
    ("prompt", "list", "prompts/list", True),
    ("resource", "call", "pricing://current", True),
    ("tool", "call", "book_demo", True),
    ("tool", "call", "book_demo", False),
    ("tool", "call", "no_such_tool", False),
    ("prompt", "call", "recommend_plan", True),
]
"""(primitive_type, operation, name, success) of the events `exercise` makes, in order."""


@dataclass(frozen=True)
class Exercised:
    """What one connection running `exercise` left behind, once the server had stopped."""

    transport: str
    sessions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    leads: list[dict[str, Any]]
    database: bytes
    started_ms: int
    finished_ms: int


@pytest.fixture(scope="module", params=TRANSPORTS)
def exercised(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, module_backend: str
) -> Iterator[Exercised]:
    """Run `exercise` once per transport against a fresh live server on a fresh database; its tests only read the
    outcome."""
    with database_for(module_backend, request) as database_url:
        yield _exercise(str(request.param), tmp_path_factory, database_url)


def _exercise(transport: str, tmp_path_factory: pytest.TempPathFactory, database_url: str | None) -> Exercised:
    db_path = tmp_path_factory.mktemp("self-tracking") / "gateway.db"
    started_ms = int(time.time() * 1000)
    settings = Settings(db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN)
    with serve_in_thread(create_app(settings), db_path) as server:

        async def drive() -> list[dict[str, Any]]:
            async with connect(transport, server) as session:
                await exercise(session)
            await flush(server)
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                return await leads_of(http)

        leads = anyio.run(drive)
    return Exercised(
        transport=transport,
        sessions=stored_sessions(db_path),
        events=stored_events(db_path),
        leads=leads,
        database=database_bytes(db_path),
        started_ms=started_ms,
        finished_ms=int(time.time() * 1000),
    )


def test_a_connection_is_one_session_with_one_event_per_call(exercised: Exercised) -> None:
    [stored] = exercised.sessions
    events = exercised.events
    assert stored["gateway_id"] == DEMO
    assert stored["transport"] == session_transport(exercised.transport)
    assert json.loads(stored["tools"]) == ["book_demo", "track_event"]
    assert exercised.started_ms <= stored["started_at_ms"] <= exercised.finished_ms
    assert [(e["primitive_type"], e["operation"], e["name"], bool(e["success"])) for e in events] == EXPECTED_EVENTS
    for event in events:
        assert (event["gateway_id"], event["session_id"], event["source"]) == (DEMO, stored["id"], "mcp")
        assert 0 <= event["latency_ms"] < MAX_LATENCY_MS
        assert exercised.started_ms <= event["ts_ms"] <= exercised.finished_ms
        assert (event["error_type"] is None) == bool(event["success"])
    assert len({event["id"] for event in events}) == len(events)


def test_failed_calls_say_why_and_successful_ones_keep_their_arguments_and_result(exercised: Exercised) -> None:
    events = {(e["name"], bool(e["success"])): e for e in exercised.events}
    refused = events[("book_demo", False)]
    assert refused["error_type"]
    assert json.loads(refused["args"]) == {"name": "   ", "email": hash_text(REFUSED_EMAIL.lower())}
    assert events[("no_such_tool", False)]["error_type"]
    assert json.loads(events[("no_such_tool", False)]["args"]) == {"x": 1}
    assert json.loads(events[("tools/list", True)]["result"]) == {"tools": ["book_demo", "track_event"]}
    assert json.loads(events[("pricing://current", True)]["args"]) == {"uri": "pricing://current"}
    assert json.loads(events[("recommend_plan", True)]["args"]) == {"needs": "lead capture"}
    booked = json.loads(events[("book_demo", True)]["result"])
    assert booked["structuredContent"]["status"] == "booked"
    assert booked["structuredContent"]["lead_id"] == exercised.leads[0]["id"]


def test_emails_reach_the_store_only_as_hashes(exercised: Exercised) -> None:
    tracked = json.dumps([exercised.sessions, exercised.events]).lower()
    assert hash_text(BOOKED_EMAIL.lower()) in tracked  # it was recorded, as its pseudonym
    for email in (BOOKED_EMAIL, REFUSED_EMAIL):
        assert email.lower() not in tracked
    assert REFUSED_EMAIL.lower().encode() not in exercised.database.lower()
    assert [lead["email"] for lead in exercised.leads] == [BOOKED_EMAIL.lower()]  # the lead keeps it: business data


async def test_a_call_with_a_lone_surrogate_in_its_arguments_is_recorded_with_its_neighbours(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    odd_booking = {"name": "Ada", "email": "ada@example.com", "message": "\ud800"}
    requests = [
        jsonrpc_request("tools/list", request_id=1),
        jsonrpc_request("tools/call", {"name": "book_demo", "arguments": odd_booking}, request_id=2),
        jsonrpc_request("resources/read", {"uri": "system://hint"}, request_id=3),
    ]
    for request in requests:  # json.dumps escapes the surrogate as \ud800, as a JSON client may send it
        response = await live_http.post(
            "/v1/mcp/sse?gid=demo", content=json.dumps(request), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
    await flush(live_server)

    events = stored_events(live_server.db_path)
    assert [(event["name"], bool(event["success"])) for event in events] == [
        ("tools/list", True),
        ("book_demo", False),
        ("system://hint", True),
    ]
    assert json.loads(events[1]["args"])["message"] == hash_text("\ud800")  # a lead's message is hashed when tracked


async def set_tracking(http: httpx.AsyncClient, enabled: bool) -> None:
    manifest = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/manifest")
    updated = await admin_json(http, "PUT", f"/v1/gateways/{DEMO}/manifest", manifest | {"tracking_enabled": enabled})
    assert updated["tracking_enabled"] is enabled


async def test_tracking_disabled_in_the_manifest_records_nothing(
    transport: str, live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    async with connect(transport, live_server) as session:
        await session.list_tools()
    await flush(live_server)
    before = (stored_sessions(live_server.db_path), stored_events(live_server.db_path))

    await set_tracking(live_http, False)
    async with connect(transport, live_server) as session:
        await exercise(session)
    await flush(live_server)
    after = (stored_sessions(live_server.db_path), stored_events(live_server.db_path))

    assert [len(rows) for rows in before] == [1, 1]  # tracking was on, and working, before
    assert after == before


async def test_tracking_enabled_again_records_again_without_a_restart(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    async with connect("jsonrpc-post-2026-07-28", live_server) as session:
        await set_tracking(live_http, False)
        await session.list_tools()
        await set_tracking(live_http, True)
        await session.read_resource("system://hint")
    await flush(live_server)

    assert [event["name"] for event in stored_events(live_server.db_path)] == ["system://hint"]


async def test_events_tail_once_json_prints_the_stored_rows(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect("streamable-http-2025-11-25", live_server) as session:
        await exercise(session)
    await flush(live_server)
    sessions = stored_sessions(live_server.db_path)
    events = stored_events(live_server.db_path)

    capsys.readouterr()
    argv = ["events", "tail", "--once", "--json", "--db", str(live_server.db_path)]
    assert await anyio.to_thread.run_sync(run, argv) == 0
    lines = capsys.readouterr().out.splitlines()

    printed = [json.loads(line) for line in lines]
    assert [row["type"] for row in printed] == ["session"] + ["event"] * len(EXPECTED_EVENTS)
    [stored_session] = sessions
    assert printed[0] == {
        "type": "session",
        **stored_session,
        "tools": json.loads(stored_session["tools"]),
        "user_data": None,
    }
    for line, event in zip(printed[1:], events, strict=True):
        assert line == {
            "type": "event",
            **event,
            "success": bool(event["success"]),
            "properties": None,
        }
