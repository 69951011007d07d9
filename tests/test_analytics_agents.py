"""MCP agent questions: clients, sessions and their calls, and which sessions booked a demo."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.analytics.agents import Client, lead_id_in, parse_client

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed
from .support import DEMO, admin_json, create_key

OTHER = "other"
WINDOW = {"since": str(T0), "until": str(T0 + DAY)}


def booked_result(lead_id: str, status: str = "booked") -> str:
    """What the tracking middleware records for a book_demo call: the structured result and its text copy."""
    structured = {"lead_id": lead_id, "status": status, "message": "ok"}
    return json.dumps({"content": [{"type": "text", "text": json.dumps(structured)}], "structuredContent": structured})


async def seed_agents(app: Starlette) -> None:
    """Four sessions started in the window (a1-a4), one before it with a call inside (a5), one of another gateway."""
    sessions = [
        mcp_session("a1", T0 + HOUR, client="claude-desktop 1.0", country="DE"),
        mcp_session("a2", T0 + 2 * HOUR, client="Claude Desktop 1.1", transport="sse"),
        mcp_session("a3", T0 + 3 * HOUR, client="cursor 0.45"),
        mcp_session("a4", T0 + 4 * HOUR, client="unknown"),
        mcp_session("a5", T0 - HOUR, client="claude-desktop 1.0"),
        mcp_session("o1", T0 + HOUR, gateway_id=OTHER),
    ]
    events = [
        mcp_call("a1", "tools/list", T0 + HOUR + MINUTE, 2.0, operation="list"),
        mcp_call("a1", "search", T0 + HOUR + 2 * MINUTE, 10.0),
        mcp_call("a1", "search", T0 + HOUR + 3 * MINUTE, 30.0, success=False, error_type="ToolError"),
        mcp_call("a1", "book_demo", T0 + HOUR + 10 * MINUTE, 20.0, result=booked_result("LA")),
        mcp_call("a2", "book_demo", T0 + 2 * HOUR + MINUTE, 5.0, success=False, error_type="ToolError"),
        mcp_call("a2", "book_demo", T0 + 2 * HOUR + 4 * MINUTE, 15.0, args='{"name": "B"}', result=booked_result("LB")),
        mcp_call("a2", "book_demo", T0 + 2 * HOUR + 6 * MINUTE, 5.0, result=booked_result("LB", "already_booked")),
        mcp_call("a3", "pricing://current", T0 + 3 * HOUR + MINUTE, 4.0, primitive_type="resource"),
        mcp_call("a5", "search", T0 + 5 * MINUTE, 40.0),
        mcp_call("o1", "book_demo", T0 + HOUR + MINUTE, 1.0, result=booked_result("LO"), gateway_id=OTHER),
    ]
    await seed(app, sessions=sessions, events=events)


@pytest.fixture
async def seeded(app: Starlette, http: httpx.AsyncClient) -> dict[str, str]:
    await admin_json(http, "POST", "/v1/gateways", {"id": OTHER, "name": "Other"})
    await seed_agents(app)
    return await read_headers(http)


async def ask(http: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str) -> Any:
    response = await http.get(path, params={**WINDOW, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("claude-desktop 1.0", Client("claude-desktop", "1.0", "Claude Desktop")),
        ("Claude Desktop v2", Client("claude-desktop", "v2", "Claude Desktop")),
        ("mcp-inspector 0.14.0", Client("mcp-inspector", "0.14.0", "MCP Inspector")),
        ("cursor", Client("cursor", None, "Cursor")),
        ("My Client", Client("my-client", None, "my-client")),
        ("", Client("unknown", None, "Unknown client")),
    ],
)
def test_a_client_config_is_a_client_name_and_version(config: str, expected: Client) -> None:
    assert parse_client(config) == expected


def test_the_lead_id_is_read_from_the_structured_result() -> None:
    assert lead_id_in(booked_result("L-1")) == "L-1"
    assert lead_id_in('{"content": [{"type": "text", "text": "{\\"lead_id\\": \\"L-2\\"}"}]}') is None
    assert lead_id_in(None) is None


async def test_clients_count_sessions_calls_errors_and_latency_per_client(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/clients", seeded)

    # claude-desktop: sessions a1 (1.0), a2 ("Claude Desktop 1.1"); calls a1 3 (the list is not a call), a2 3,
    # a5 1 (started before the window, called inside it) = 7; errors 2; latency (60 + 25 + 40) / 7
    claude, cursor, unknown = body["clients"]
    assert claude == {
        "client": "claude-desktop",
        "display_name": "Claude Desktop",
        "sessions": 2,
        "versions": [{"version": "1.0", "sessions": 1}, {"version": "1.1", "sessions": 1}],
        "calls": 7,
        "errors": 2,
        "error_rate": pytest.approx(2 / 7),
        "avg_latency_ms": pytest.approx(125 / 7),
    }
    assert (cursor["client"], cursor["display_name"], cursor["sessions"], cursor["calls"]) == ("cursor", "Cursor", 1, 1)
    assert (cursor["errors"], cursor["avg_latency_ms"]) == (0, 4.0)
    assert (unknown["client"], unknown["sessions"], unknown["calls"], unknown["avg_latency_ms"]) == (
        "unknown",
        1,
        0,
        None,
    )


async def test_sessions_list_recent_sessions_with_activity_and_booking(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/mcp/sessions", seeded)

    # newest first; a5 started before the window
    a4, a3, a2, a1 = body["sessions"]
    assert [s["session_id"] for s in (a4, a3, a2, a1)] == ["a4", "a3", "a2", "a1"]
    assert a1 == {
        "session_id": "a1",
        "client": "claude-desktop",
        "client_version": "1.0",
        "display_name": "Claude Desktop",
        "transport": "streamable-http",
        "country": "DE",
        "started_at": T0 + HOUR,
        "last_activity_at": T0 + HOUR + 10 * MINUTE,
        "calls": 3,
        "errors": 1,
        "booked_demo": True,
    }
    assert (a2["transport"], a2["calls"], a2["errors"], a2["booked_demo"]) == ("sse", 3, 1, True)
    assert (a3["calls"], a3["booked_demo"]) == (1, False)
    assert (a4["last_activity_at"], a4["calls"], a4["booked_demo"]) == (T0 + 4 * HOUR, 0, False)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"client": "claude-desktop"}, ["a2", "a1"]),
        ({"client": "Claude Desktop"}, ["a2", "a1"]),
        ({"client": "cursor"}, ["a3"]),
        ({"client": "nobody"}, []),
        ({"client": ""}, ["a4", "a3", "a2", "a1"]),
        ({"booked": "true"}, ["a2", "a1"]),
        ({"booked": "false"}, ["a4", "a3"]),
        ({"client": "claude-desktop", "booked": "false"}, []),
        ({"limit": "1"}, ["a4"]),
        ({"since": str(T0 - DAY)}, ["a4", "a3", "a2", "a1", "a5"]),
    ],
)
async def test_sessions_filter_by_client_booking_and_time(
    http: httpx.AsyncClient, seeded: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    body = await ask(http, "/analytics/mcp/sessions", seeded, **params)

    assert [s["session_id"] for s in body["sessions"]] == expected


async def test_a_session_comes_with_all_its_calls_in_order(http: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    body = await ask(http, "/analytics/mcp/sessions/a2", seeded)

    assert body["session"]["session_id"] == "a2"
    assert (body["session"]["client"], body["session"]["client_version"]) == ("claude-desktop", "1.1")
    assert (body["session"]["client_config"], body["session"]["tools"]) == ("Claude Desktop 1.1", ["book_demo"])
    assert (body["booked_demo"], body["truncated"]) == (True, False)
    calls = body["calls"]
    assert [(c["name"], c["success"], c["error_type"]) for c in calls] == [
        ("book_demo", False, "ToolError"),
        ("book_demo", True, None),
        ("book_demo", True, None),
    ]
    assert [c["ts"] for c in calls] == [T0 + 2 * HOUR + m * MINUTE for m in (1, 4, 6)]
    assert (calls[1]["args"], calls[1]["result"], calls[1]["latency_ms"]) == (
        '{"name": "B"}',
        booked_result("LB"),
        15.0,
    )


async def test_conversions_are_sessions_that_booked_a_demo(http: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    body = await ask(http, "/analytics/mcp/conversions", seeded)

    # 4 sessions started, a1 and a2 booked: a1 10 minutes after its start, a2 4 (its first try failed)
    assert (body["sessions"], body["booked_sessions"], body["conversion_rate"]) == (4, 2, 0.5)
    assert body["median_time_to_book_ms"] == 7 * MINUTE
    assert body["clients"] == [
        {"client": "claude-desktop", "display_name": "Claude Desktop", "sessions": 2, "booked_sessions": 2,
         "conversion_rate": 1.0},
        {"client": "cursor", "display_name": "Cursor", "sessions": 1, "booked_sessions": 0, "conversion_rate": 0.0},
        {"client": "unknown", "display_name": "Unknown client", "sessions": 1, "booked_sessions": 0,
         "conversion_rate": 0.0},
    ]  # fmt: skip
    assert body["conversions"] == [
        {
            "session_id": "a2",
            "client": "claude-desktop",
            "display_name": "Claude Desktop",
            "lead_id": "LB",
            "started_at": T0 + 2 * HOUR,
            "booked_at": T0 + 2 * HOUR + 4 * MINUTE,
            "time_to_book_ms": 4 * MINUTE,
        },
        {
            "session_id": "a1",
            "client": "claude-desktop",
            "display_name": "Claude Desktop",
            "lead_id": "LA",
            "started_at": T0 + HOUR,
            "booked_at": T0 + HOUR + 10 * MINUTE,
            "time_to_book_ms": 10 * MINUTE,
        },
    ]
    limited = await ask(http, "/analytics/mcp/conversions", seeded, limit="1")
    assert [c["session_id"] for c in limited["conversions"]] == ["a2"]
    assert limited["booked_sessions"] == 2


async def test_another_gateways_key_sees_only_its_own_agents(http: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    other = await read_headers(http, OTHER)

    clients = await ask(http, "/analytics/clients", other)
    sessions = await ask(http, "/analytics/mcp/sessions", other)
    conversions = await ask(http, "/analytics/mcp/conversions", other)
    theirs = await http.get("/analytics/mcp/sessions/a1", headers=other)
    ours = await http.get("/analytics/mcp/sessions/o1", headers=seeded)
    unknown = await http.get("/analytics/mcp/sessions/nope", headers=seeded)

    assert [(c["client"], c["sessions"], c["calls"]) for c in clients["clients"]] == [("claude-desktop", 1, 1)]
    assert [s["session_id"] for s in sessions["sessions"]] == ["o1"]
    assert [(c["session_id"], c["lead_id"]) for c in conversions["conversions"]] == [("o1", "LO")]
    assert (theirs.status_code, ours.status_code, unknown.status_code) == (404, 404, 404)


async def test_agent_questions_need_a_read_key(http: httpx.AsyncClient) -> None:
    paths = [
        "/analytics/clients",
        "/analytics/mcp/sessions",
        "/analytics/mcp/sessions/a1",
        "/analytics/mcp/conversions",
    ]
    for kind in (None, "org", "pk"):
        headers = {} if kind is None else {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}
        for path in paths:
            response = await http.get(path, headers=headers)

            assert response.status_code == 401, (path, kind)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_agent_parameters_are_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    cases = [
        ("/analytics/clients", {"since": str(T0 + DAY), "until": str(T0)}, "since"),
        ("/analytics/mcp/sessions", {"booked": "maybe"}, "booked"),
        ("/analytics/mcp/sessions", {"limit": "0"}, "limit"),
        ("/analytics/mcp/sessions", {"client": "x" * 201}, "client"),
        ("/analytics/mcp/sessions/" + "x" * 257, {}, "session_id"),
        ("/analytics/mcp/conversions", {"limit": "500"}, "limit"),
        ("/analytics/mcp/conversions", {"period": "forever"}, "period"),
    ]
    for path, params, field in cases:
        response = await http.get(path, params=params, headers=headers)

        assert response.status_code == 400, (path, params)
        assert response.json()["field"] == field, (path, params)
