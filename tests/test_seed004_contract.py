"""Seed 004's own requests over a real socket, answered as the seed says: `/v1/track` filling what the caller left
out (visitor, session, path) and classifying the source with its confidence and rule, `/v1/identify`, and the
`track_event` MCP tool through the official client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, Final

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.types import CallToolResult

from mcp_gateway import Settings, create_app
from mcp_gateway.gateways import Gateway, GatewayDirectory
from mcp_gateway.server import build_gateway_server
from mcp_gateway.store import Store

from .support import DEMO, MCP_TIMEOUT, LiveServer, admin_json, create_key, database_bytes, serve_in_thread

SEED_TRACK_BODY: Final = {
    "event": "signup",
    "event_id": "evt_abc123",
    "timestamp": "2026-05-16T19:00:00.000Z",
    "anonymous_id": "u_abc",
    "user_id": "user_42",
    "session_id": "sess_xyz",
    "url": "https://yoursite.com/?utm_source=facebook&utm_medium=cpc&fbclid=abc",
    "path": "/",
    "referrer": "https://l.facebook.com/",
    "properties": {"plan": "free", "team_size": 4},
}
"""The request of seed 004's `POST /v1/track` page, as it is written there."""
MAY_2026: Final = {"since": "2026-05-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}
SESSION_BUCKET_MS: Final = 30 * 60 * 1000
TOOL_NAME: Final = "track_event"
SEED_MCP_ARGUMENTS: Final = {"event": "purchase", "anonymous_id": "u_abc", "properties": {"amount_cents": 4900}}
"""The arguments of seed 004's MCP example."""


async def bearer(http: httpx.AsyncClient, kind: str = "sk") -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}


async def event_log(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    read = {"X-API-Key": await create_key(http, DEMO, "read")}
    response = await http.get("/events", params={"limit": 1000, **params}, headers=read)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def track(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await http.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- POST /v1/track ------------------------------------------------------------------------------------


async def test_v1_track_stores_the_seeds_request_with_its_source_confidence_and_rule(
    live_http: httpx.AsyncClient,
) -> None:
    response = await live_http.post("/v1/track", json=SEED_TRACK_BODY, headers=await bearer(live_http))

    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert (answer["ok"], answer["event_id"]) == (True, "evt_abc123")
    [stored] = await event_log(live_http, **MAY_2026)
    assert (stored["id"], stored["event"], stored["session_id"], stored["visitor_id"]) == (
        "evt_abc123",
        "signup",
        "sess_xyz",
        "u_abc",
    )
    assert (stored["traffic_source"], stored["traffic_medium"]) == ("facebook", "cpc")
    assert (stored["source_confidence"], stored["source_rule_id"]) == ("high", "utm")
    assert stored["properties"] == {"plan": "free", "team_size": 4}


@pytest.mark.parametrize(
    ("url", "referrer", "confidence", "rule"),
    [
        ("https://yoursite.com/pricing?fbclid=abc", "https://l.facebook.com/", "high", "fbclid_redirect"),
        ("https://yoursite.com/pricing?fbclid=abc", None, "medium", "fbclid"),
        ("https://yoursite.com/pricing?gclid=xyz", None, "high", "gclid"),
        ("https://yoursite.com/pricing", "https://www.google.com/", "medium", "search"),
        ("https://yoursite.com/pricing", "https://blog.example/post", "low", "referral"),
        ("https://yoursite.com/pricing", None, "low", "direct"),
    ],
)
async def test_v1_track_classifies_each_source_with_a_confidence_and_derives_the_path(
    live_http: httpx.AsyncClient, url: str, referrer: str | None, confidence: str, rule: str
) -> None:
    body = {"event": "$pageview", "url": url} | ({"referrer": referrer} if referrer else {})

    answer = await track(live_http, await bearer(live_http), **body)

    [stored] = [event for event in await event_log(live_http) if event["id"] == answer["event_id"]]
    assert (stored["source_confidence"], stored["source_rule_id"]) == (confidence, rule)
    assert stored["path"] == "/pricing"


async def test_v1_track_without_anonymous_id_generates_one_and_answers_it(live_http: httpx.AsyncClient) -> None:
    headers = await bearer(live_http)
    body = {"event": "purchase", "user_id": "user_42", "properties": {"amount_cents": 4900, "currency": "usd"}}

    first = await track(live_http, headers, **body)
    again = await track(live_http, headers, **body, anonymous_id=first["anonymous_id"])

    assert uuid.UUID(first["anonymous_id"]).version == 4
    events = {event["id"]: event for event in await event_log(live_http)}
    assert events[first["event_id"]]["visitor_id"] == first["anonymous_id"]
    assert events[again["event_id"]]["visitor_id"] == first["anonymous_id"]
    other = await track(live_http, headers, **body)
    assert other["anonymous_id"] != first["anonymous_id"]


async def test_v1_track_without_session_id_derives_it_from_the_visitor_and_the_half_hour(
    live_http: httpx.AsyncClient,
) -> None:
    headers = await bearer(live_http)
    at = "2026-05-16T19:00:00.000Z"
    bucket = 1778958000000 // SESSION_BUCKET_MS

    same = [
        await track(live_http, headers, event="a", anonymous_id="u_abc", timestamp=t) for t in (at, at[:14] + "29Z")
    ]
    later = await track(live_http, headers, event="b", anonymous_id="u_abc", timestamp="2026-05-16T19:30:00Z")
    chosen = await track(live_http, headers, event="c", anonymous_id="u_abc", session_id="sess_xyz", timestamp=at)

    assert [answer["session_id"] for answer in same] == [f"u_abc-{bucket}"] * 2
    assert later["session_id"] == f"u_abc-{bucket + 1}"
    assert chosen["session_id"] == "sess_xyz"
    sessions = {event["id"]: event["session_id"] for event in await event_log(live_http, **MAY_2026)}
    assert sessions[later["event_id"]] == f"u_abc-{bucket + 1}"
    assert {sessions[answer["event_id"]] for answer in same} == {f"u_abc-{bucket}"}


# -- POST /v1/identify ---------------------------------------------------------------------------------


async def test_identify_links_the_visitors_earlier_and_later_events_to_the_user(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    headers = await bearer(live_http)
    before = await track(live_http, headers, event="$pageview", anonymous_id="u_abc", url="https://yoursite.com/")
    stranger = await track(live_http, headers, event="$pageview", anonymous_id="u_other")
    traits = {"email": "ada@example.com", "plan": "pro"}

    response = await live_http.post(
        "/v1/identify", json={"anonymous_id": "u_abc", "user_id": "user_42", "traits": traits}, headers=headers
    )

    assert response.status_code == 202, response.text
    assert response.json()["ok"] is True
    after = await track(live_http, headers, event="purchase", anonymous_id="u_abc")
    users = await event_log(live_http, user_id="user_42")
    assert {event["id"] for event in users} == {before["event_id"], response.json()["event_id"], after["event_id"]}
    assert stranger["event_id"] not in {event["id"] for event in users}
    [identified] = [event for event in users if event["event"] == "$identify"]
    assert identified["visitor_id"] == "u_abc"
    assert identified["properties"]["plan"] == "pro"
    assert identified["properties"]["email"] != "ada@example.com"  # the store's redaction policy, as for properties
    assert b"ada@example.com" not in database_bytes(live_server.db_path)


async def test_identify_of_the_same_visitor_again_moves_it_to_the_new_user(live_http: httpx.AsyncClient) -> None:
    headers = await bearer(live_http)
    visit = await track(live_http, headers, event="$pageview", anonymous_id="u_shared")
    for user in ("user_1", "user_2"):
        response = await live_http.post(
            "/v1/identify", json={"anonymous_id": "u_shared", "user_id": user}, headers=headers
        )
        assert response.status_code == 202, response.text

    assert visit["event_id"] in {event["id"] for event in await event_log(live_http, user_id="user_2")}
    assert visit["event_id"] not in {event["id"] for event in await event_log(live_http, user_id="user_1")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "user_42"}, "anonymous_id"),
        ({"anonymous_id": "u_abc"}, "user_id"),
        ({"anonymous_id": "u_abc", "user_id": ""}, "user_id"),
        ({"anonymous_id": "u_abc", "user_id": "user_42", "traits": {"blob": "x" * 9000}}, "traits"),
        ({"anonymous_id": "u_abc", "user_id": "user_42", "traits": ["not", "an", "object"]}, "traits"),
        ([], "body"),
    ],
)
async def test_identify_with_a_bad_body_is_400_invalid_payload(
    live_http: httpx.AsyncClient, body: Any, field: str
) -> None:
    response = await live_http.post("/v1/identify", json=body, headers=await bearer(live_http))

    assert response.status_code == 400, response.text
    answer = response.json()
    assert (answer["error"], answer["field"].split(".")[0]) == ("invalid_payload", field)


async def test_identify_needs_a_tracking_key_and_an_allowed_origin_for_a_publishable_one(
    live_http: httpx.AsyncClient,
) -> None:
    body = {"anonymous_id": "u_abc", "user_id": "user_42"}
    read_key = {"Authorization": f"Bearer {await create_key(live_http, DEMO, 'read')}"}
    publishable = await bearer(live_http, "pk")

    nobody = await live_http.post("/v1/identify", json=body)
    reader = await live_http.post("/v1/identify", json=body, headers=read_key)
    elsewhere = await live_http.post(
        "/v1/identify", json=body, headers={**publishable, "Origin": "https://evil.example"}
    )
    at_home = await live_http.post(
        "/v1/identify", json=body, headers={**publishable, "Origin": "http://localhost:3000"}
    )

    assert [nobody.status_code, reader.status_code] == [401, 401]
    assert nobody.json() == {"error": "unauthorized"}
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (403, "origin_not_allowed")
    assert at_home.status_code == 202, at_home.text
    assert at_home.headers["access-control-allow-origin"] in ("*", "http://localhost:3000")


async def test_identify_is_in_the_openapi_document(live_http: httpx.AsyncClient) -> None:
    document = (await live_http.get("/openapi.json")).json()

    operation = document["paths"]["/v1/identify"]["post"]
    assert "202" in operation["responses"]
    schema = json.dumps(document)
    assert "source_confidence" in schema and "source_rule_id" in schema


# -- the track_event MCP tool --------------------------------------------------------------------------


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[LiveServer]:
    """The gateway whose `track_event` allows each client 2 events a minute."""

    def factory(gateway: Gateway, directory: GatewayDirectory, store: Store) -> Any:
        return build_gateway_server(gateway, directory, store, track_event_limit=2)

    with serve_in_thread(create_app(settings, server_factory=factory), settings.db_path) as server:
        yield server


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_track_event_records_the_seeds_mcp_example_as_a_server_event(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    with anyio.fail_after(MCP_TIMEOUT):
        async with Client(live_server.url(f"/mcp?gid={DEMO}")) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            answer = structured(await client.call_tool(TOOL_NAME, SEED_MCP_ARGUMENTS))
            anonymous = structured(await client.call_tool(TOOL_NAME, {"event": "signup"}))

    assert set(listed[TOOL_NAME].input_schema["properties"]) >= {"event", "anonymous_id", "user_id", "properties"}
    assert listed[TOOL_NAME].input_schema["required"] == ["event"]
    assert (answer["ok"], answer["anonymous_id"]) == (True, "u_abc")
    assert uuid.UUID(anonymous["anonymous_id"]).version == 4
    [stored] = [event for event in await event_log(live_http, source="server") if event["id"] == answer["event_id"]]
    assert (stored["event"], stored["visitor_id"], stored["session_id"]) == ("purchase", "u_abc", answer["session_id"])
    assert stored["properties"] == {"amount_cents": 4900}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"event": ""}, "event"),
        ({"event": "x" * 129}, "event"),
        ({"event": "big", "properties": {"blob": "x" * 9000}}, "properties"),
        ({"anonymous_id": "u_abc"}, "event"),
    ],
)
async def test_track_event_refuses_what_v1_track_refuses(
    live_server: LiveServer, arguments: dict[str, Any], field: str
) -> None:
    with anyio.fail_after(MCP_TIMEOUT):
        async with Client(live_server.url(f"/mcp?gid={DEMO}")) as client:
            result = await client.call_tool(TOOL_NAME, arguments)

    text = error_text(result).replace(TOOL_NAME, "")
    assert "Unknown tool" not in text
    assert field in text


async def test_track_event_limits_each_client_of_the_gateway(limited_server: LiveServer) -> None:
    with anyio.fail_after(MCP_TIMEOUT):
        async with Client(limited_server.url(f"/mcp?gid={DEMO}")) as client:
            results = [await client.call_tool(TOOL_NAME, {"event": f"e{i}"}) for i in range(3)]

    assert [result.is_error for result in results] == [False, False, True]
    assert "rate_limited" in error_text(results[2])


async def test_track_event_is_offered_only_where_the_manifest_enables_it(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    manifest = await admin_json(live_http, "GET", f"/v1/gateways/{DEMO}/manifest")
    await admin_json(live_http, "PUT", f"/v1/gateways/{DEMO}/manifest", {**manifest, "enabled_tools": ["book_demo"]})

    with anyio.fail_after(MCP_TIMEOUT):
        async with Client(live_server.url(f"/mcp?gid={DEMO}")) as client:
            listed = [tool.name for tool in (await client.list_tools()).tools]

    assert TOOL_NAME in manifest["enabled_tools"]
    assert listed == ["book_demo"]
