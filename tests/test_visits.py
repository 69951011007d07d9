"""Seed 001's browser tracking API: /track/session/*, /track/event(s), /lead.capture and tracker.js."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.ingest.enrich import sha256_hex
from mcp_gateway.ingest.visits import LEAD_ALIAS_HEADERS, RATE_LIMITS, VisitRoutes, engagement_score
from mcp_gateway.store import EventRow, Store
from mcp_gateway.web import EXCEPTION_HANDLERS

from .support import DEMO, BoundedASGITransport, database_bytes, leads_of

GID = {"X-Gateway-ID": DEMO}
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
EMAIL = "Visitor.Person@Example.org"
PHONE = "+1 415 555 0199"


def store_of(app: Starlette) -> Store:
    store: Store = app.state.services.store
    return store


async def events(app: Starlette) -> list[EventRow]:
    return await store_of(app).events_after(0, gateway_id=DEMO)


async def start(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/track/session/start", json={"url": "https://shop.example/", **body}, headers=GID)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- session start --------------------------------------------------------------------------------


async def test_session_start_answers_the_seed_shape_and_stores_the_event(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    response = await http.post(
        "/track/session/start",
        json={"url": "https://shop.example/p?utm_source=news", "referrer": "https://www.google.com/", "properties": {}},
        headers={**GID, "User-Agent": UA},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"session_id", "visitor_id", "timestamp"}
    uuid.UUID(body["session_id"])
    assert len(body["visitor_id"]) == 64 and int(body["visitor_id"], 16) >= 0
    assert isinstance(body["timestamp"], int) and body["timestamp"] > 1_700_000_000_000
    assert response.headers["access-control-allow-origin"] == "*"
    [row] = await events(app)
    assert row.name == "$session_start"
    assert row.session_id == body["session_id"]
    assert row.web is not None
    assert row.web.anonymous_id == body["visitor_id"]
    assert row.web.path == "/p"
    assert row.web.traffic_source == "news"
    assert row.web.browser == "Chrome"
    assert row.web.ip_hash is not None


async def test_visitor_id_is_derived_from_ip_and_user_agent_unless_given(http: httpx.AsyncClient) -> None:
    first = await start(http)
    second = await start(http)
    assert first["visitor_id"] == second["visitor_id"]
    assert first["session_id"] != second["session_id"]
    other_agent = (await http.post("/track/session/start", json={"url": "/"}, headers={**GID, "User-Agent": UA})).json()
    assert other_agent["visitor_id"] != first["visitor_id"]
    given = await start(http, anonymous_id="anon-1", session_id="sess-1")
    assert (given["visitor_id"], given["session_id"]) == (sha256_hex("anon-1"), "sess-1")
    assert (await start(http, visitor_id="v-2"))["visitor_id"] == sha256_hex("v-2")


async def test_gateway_is_required_and_must_exist(http: httpx.AsyncClient) -> None:
    body = {"url": "https://shop.example/"}
    missing = await http.post("/track/session/start", json=body)
    assert missing.status_code == 400
    assert missing.json()["field"] == "X-Gateway-ID"
    unknown = await http.post("/track/session/start", json=body, headers={"X-Gateway-ID": "nope"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Gateway Not Configured"}
    assert unknown.headers["access-control-allow-origin"] == "*"
    by_query = await http.post(f"/track/session/start?gid={DEMO}", json=body)
    assert by_query.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "url"), ({"url": "/", "session_id": ""}, "session_id"), ({"url": "/", "properties": []}, "properties")],
)
async def test_session_start_bad_body_names_the_field(http: httpx.AsyncClient, body: Any, field: str) -> None:
    response = await http.post("/track/session/start", json=body, headers=GID)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_bad_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/track/event", content=b"{not json", headers={**GID, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "body"


# -- events ---------------------------------------------------------------------------------------


async def test_event_is_stored_in_the_session(http: httpx.AsyncClient, app: Starlette) -> None:
    session = await start(http)
    response = await http.post(
        "/track/event",
        json={
            "session_id": session["session_id"],
            "visitor_id": session["visitor_id"],
            "event_name": "AddToCart",
            "url": "https://shop.example/cart",
            "properties": {"sku": "a1", "value": 3},
            "event_id": "evt-1",
        },
        headers=GID,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session_id"] == session["session_id"]
    assert body["visitor_id"] == session["visitor_id"]
    assert (body["event_id"], body["status"]) == ("evt-1", "stored")
    row = (await events(app))[-1]
    assert (row.name, row.id, row.session_id) == ("AddToCart", "evt-1", session["session_id"])
    assert row.properties == {"sku": "a1", "value": 3}
    again = await http.post(
        "/track/event",
        json={"session_id": session["session_id"], "name": "AddToCart", "event_id": "evt-1"},
        headers=GID,
    )
    assert again.json()["status"] == "duplicate"
    assert len(await events(app)) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_name": "x"}, "session_id"),
        ({"session_id": "s"}, "event_name"),
        ({"session_id": "s", "event_name": ""}, "event_name"),
        ({"session_id": "s", "event_name": "x" * 201}, "event_name"),
    ],
)
async def test_event_bad_body_names_the_field(http: httpx.AsyncClient, body: Any, field: str) -> None:
    response = await http.post("/track/event", json=body, headers=GID)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_batch_stores_every_event_with_per_event_results(http: httpx.AsyncClient, app: Starlette) -> None:
    session = await start(http)
    response = await http.post(
        "/track/events/batch",
        json={
            "session_id": session["session_id"],
            "events": [
                {"event_name": "Scroll", "properties": {"depth": 50}},
                {"name": "Click", "event_id": "c-1"},
                {"event_name": "Other", "session_id": "elsewhere"},
            ],
        },
        headers=GID,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored"] * 3
    assert results[1]["event_id"] == "c-1"
    assert [r["session_id"] for r in results] == [session["session_id"]] * 2 + ["elsewhere"]
    assert [row.name for row in await events(app)] == ["$session_start", "Scroll", "Click", "Other"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": [{"event_name": "x", "session_id": "s"}] * 101}, "events"),
        ({"events": [{"event_name": "x"}]}, "events.0.session_id"),
        ({"session_id": "s", "events": [{"event_name": "x"}, {}]}, "events.1.event_name"),
    ],
)
async def test_batch_bad_body_names_the_field(http: httpx.AsyncClient, app: Starlette, body: Any, field: str) -> None:
    response = await http.post("/track/events/batch", json=body, headers=GID)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert await events(app) == []


# -- session end ----------------------------------------------------------------------------------


def test_engagement_score_formula() -> None:
    assert engagement_score(None) == 0
    assert engagement_score(150_000) == 20
    assert engagement_score(10 * 60_000, page_views=5, scroll_depth=100, clicks=10) == 100
    assert engagement_score(60_000, page_views=2, scroll_depth=50, clicks=3) == 8 + 8 + 10 + 6


async def test_session_end_stores_an_engagement_score(http: httpx.AsyncClient, app: Starlette) -> None:
    session = await start(http)
    response = await http.post(
        "/track/session/end",
        json={
            "session_id": session["session_id"],
            "duration_ms": 60_000,
            "page_views": 2,
            "scroll_depth": 50,
            "clicks": 3,
        },
        headers=GID,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session_id"] == session["session_id"]
    assert body["engagement_score"] == 32
    row = (await events(app))[-1]
    assert row.name == "$session_end"
    assert row.properties is not None
    assert row.properties["engagement_score"] == 32
    assert row.properties["duration_ms"] == 60_000


async def test_session_end_without_duration_measures_from_the_start(http: httpx.AsyncClient, app: Starlette) -> None:
    session = await start(http, timestamp=1_700_000_000)
    response = await http.post(
        "/track/session/end", json={"session_id": session["session_id"], "timestamp": 1_700_000_120}, headers=GID
    )
    assert response.status_code == 200, response.text
    assert response.json()["duration_ms"] == 120_000
    assert response.json()["engagement_score"] == 16


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "session_id"),
        ({"session_id": "s", "scroll_depth": 101}, "scroll_depth"),
        ({"session_id": "s", "duration_ms": -1}, "duration_ms"),
    ],
)
async def test_session_end_bad_body_names_the_field(http: httpx.AsyncClient, body: Any, field: str) -> None:
    response = await http.post("/track/session/end", json=body, headers=GID)
    assert response.status_code == 400
    assert response.json()["field"] == field


# -- lead capture ---------------------------------------------------------------------------------


async def test_lead_capture_stores_a_lead_and_a_hashed_lead_event(http: httpx.AsyncClient, app: Starlette) -> None:
    session = await start(http)
    response = await http.post(
        "/lead.capture",
        json={
            "email": EMAIL,
            "name": "Visitor Person",
            "company": "Example",
            "message": "Call me",
            "phone": PHONE,
            "source": "pricing-page",
            "project": "alpha",
            "session_id": session["session_id"],
            "visitor_id": session["visitor_id"],
        },
        headers=GID,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "created"
    assert body["session_id"] == session["session_id"]
    [lead] = await leads_of(http)
    assert lead["id"] == body["lead_id"]
    assert (lead["email"], lead["source"], lead["company"]) == (EMAIL.lower(), "web", "Example")
    row = (await events(app))[-1]
    assert row.name == "$lead"
    assert row.session_id == session["session_id"]
    assert row.web is not None
    assert row.web.email_hash == sha256_hex(EMAIL.lower())
    assert row.web.phone_hash == sha256_hex("14155550199")
    assert row.properties == {"lead_id": body["lead_id"], "form_source": "pricing-page", "project": "alpha"}
    again = await http.post("/lead.capture", json={"email": EMAIL}, headers=GID)
    assert again.json()["status"] == "duplicate"
    assert again.json()["lead_id"] == body["lead_id"]
    assert len(await leads_of(http)) == 1


async def test_lead_capture_without_session_gets_a_derived_one(http: httpx.AsyncClient) -> None:
    response = await http.post("/lead.capture", json={"email": "a@example.com", "visitor_id": "v-9"}, headers=GID)
    assert response.status_code == 200, response.text
    assert response.json()["session_id"]
    assert response.json()["visitor_id"] == sha256_hex("v-9")


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email"}, {"email": "a@"}, {"email": 5}])
async def test_lead_capture_bad_email_is_400_naming_email(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post("/lead.capture", json=body, headers=GID)
    assert response.status_code == 400
    assert response.json()["field"] == "email"
    assert await leads_of(http) == []


# -- privacy --------------------------------------------------------------------------------------


async def test_no_raw_identities_or_ip_in_the_database(app: Starlette, db_path: Path) -> None:
    ip = "198.51.100.23"
    async with client_from(app, ip) as http:
        await send_identities(http)
    await store_of(app).close()
    await store_of(app).open()
    data = database_bytes(db_path)
    for raw in (EMAIL, EMAIL.lower(), PHONE, "14155550199", "User-77", "user-77", ip):
        assert raw.encode() not in data, raw
    # The lead itself is business data: its email is kept (as book_demo's are), its phone is only hashed.
    assert b"lead@example.net" in data
    assert hashlib.sha256(b"14155550199").hexdigest().encode() in data


async def send_identities(http: httpx.AsyncClient) -> None:
    session = await start(http, user={"email": EMAIL, "phone": PHONE, "external_id": "User-77"})
    await http.post(
        "/track/event",
        json={
            "session_id": session["session_id"],
            "event_name": "Signup",
            "user": {"email": EMAIL, "phone": PHONE},
            "properties": {"email": EMAIL, "note": f"reach me at {EMAIL.lower()}", "phone": PHONE},
        },
        headers=GID,
    )
    await http.post(
        "/track/session/end", json={"session_id": session["session_id"], "user": {"email": EMAIL}}, headers=GID
    )
    response = await http.post(
        "/lead.capture",
        json={"email": "lead@example.net", "phone": PHONE, "session_id": session["session_id"]},
        headers=GID,
    )
    assert response.status_code == 200


# -- CORS and rate limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/track/session/start", "/track/event", "/track/events/batch", "/track/session/end", "/lead.capture"]
)
async def test_cors_preflight(http: httpx.AsyncClient, path: str) -> None:
    response = await http.options(
        path,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-gateway-id",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "X-Gateway-ID" in response.headers["access-control-allow-headers"]


def test_rate_limits_are_the_seeds() -> None:
    assert {route: limit for route, (limit, _) in RATE_LIMITS.items()} == {
        "session_start": 10,
        "session_end": 10,
        "event": 120,
        "batch": 30,
        "lead": 10,
    }


async def test_session_start_is_limited_to_10_per_minute_per_ip(http: httpx.AsyncClient, app: Starlette) -> None:
    for _ in range(10):
        await start(http)
    response = await http.post("/track/session/start", json={"url": "/"}, headers=GID)
    assert response.status_code == 429
    assert "error" in response.json()
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 60
    assert response.headers["access-control-allow-origin"] == "*"
    # Other routes have windows of their own.
    session_id = (await events(app))[0].session_id
    assert (
        await http.post("/track/event", json={"session_id": session_id, "event_name": "x"}, headers=GID)
    ).status_code == 200


@pytest.fixture
def small_limits_app(app: Starlette) -> Starlette:
    """The tracking routes of the running app's services with every limit at 2 per minute."""
    services = app.state.services
    routes = VisitRoutes(
        services.directory,
        services.web_ingestor,
        services.store,
        services.hash_ip,
        max_body_bytes=65536,
        rate_limits={name: (2, 60.0) for name in RATE_LIMITS},
    )
    return Starlette(routes=routes.routes(), exception_handlers=EXCEPTION_HANDLERS)


def client_from(app: Starlette, ip: str) -> httpx.AsyncClient:
    transport = BoundedASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/track/session/start", {"url": "/"}),
        ("/track/event", {"session_id": "s", "event_name": "x"}),
        ("/track/events/batch", {"session_id": "s", "events": [{"event_name": "x"}]}),
        ("/track/session/end", {"session_id": "s"}),
        ("/lead.capture", {"email": "a@example.com"}),
    ],
)
async def test_every_route_is_rate_limited(
    small_limits_app: Starlette, http: httpx.AsyncClient, path: str, body: Any
) -> None:
    await start(http, session_id="s")
    async with client_from(small_limits_app, "203.0.113.7") as client:
        statuses = [(await client.post(path, json=body, headers=GID)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_limits_are_per_ip(small_limits_app: Starlette, http: httpx.AsyncClient) -> None:
    await start(http, session_id="s")
    body = {"session_id": "s", "event_name": "x"}
    async with (
        client_from(small_limits_app, "203.0.113.7") as first,
        client_from(small_limits_app, "198.51.100.2") as second,
    ):
        assert [(await first.post("/track/event", json=body, headers=GID)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert (await second.post("/track/event", json=body, headers=GID)).status_code == 200


async def test_a_rate_limited_deprecated_lead_path_answers_429_with_its_deprecation_headers(
    small_limits_app: Starlette,
) -> None:
    """The limiter raises a domain error (`RateLimitedError`); the alias still adds its headers to the answer."""
    body = {"email": "a@example.com"}
    async with client_from(small_limits_app, "203.0.113.9") as client:
        answers = [await client.post("/lead", json=body, headers=GID) for _ in range(3)]

    refused = answers[-1]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    error = refused.json()
    assert error["error"] == "Rate limit exceeded. Maximum 2 requests per minute."
    assert sorted(error) == ["error", "retry_after"]
    assert 1 <= error["retry_after"] <= 60
    assert refused.headers["retry-after"] == str(error["retry_after"])
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert {name: refused.headers[name] for name in LEAD_ALIAS_HEADERS} == LEAD_ALIAS_HEADERS


# -- tracker.js -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/tracker.js", "/v1/tracker.js"])
async def test_tracker_js_is_served_with_caching_headers(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age=" in response.headers["cache-control"]
    assert "window.anacoic" in response.text and "window.mcpGateway" in response.text
    etag = response.headers["etag"]
    cached = await http.get(path, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""


@pytest.mark.parametrize("timestamp", [1e300, 10**15, -1])
async def test_a_timestamp_out_of_range_is_400_naming_it(http: httpx.AsyncClient, timestamp: float) -> None:
    """Found by tests/test_fuzz_rest.py: 1e300 overflowed SQLite's integer and answered 500."""
    body = {"session_id": "s-range", "event_name": "click", "timestamp": timestamp}

    response = await http.post("/track/event", json=body, headers={"X-Gateway-ID": DEMO})

    assert response.status_code == 400
    assert response.json()["field"] == "timestamp"
