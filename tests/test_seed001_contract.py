"""Seed 001's own requests over a real socket, answered as the seed says: the CRM callback, the deprecated lead
paths, the browser scripts, visitor headers, unknown sessions, `/health` and the CORS headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.errors import InvalidInputError, StorageError
from mcp_gateway.ingest.enrich import sha256_hex
from mcp_gateway.web import EXCEPTION_HANDLERS, cors_route

from .support import DEMO, LiveServer, admin_json, create_key, database_bytes, serve_in_thread, stored_rows

GID: Final = {"X-Gateway-ID": DEMO}
SEED_ALLOWED_HEADERS: Final = ("Content-Type", "X-Fingerprint-ID", "X-Visitor-ID", "Authorization", "X-API-Key")
"""Seed 001's Access-Control-Allow-Headers."""
LEAD_FORM: Final = {"email": "Ada@Example.com", "name": "Ada Lovelace", "company": "Engines", "source": "pricing"}


def assert_seed_cors(response: httpx.Response) -> None:
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {name.lower() for name in SEED_ALLOWED_HEADERS} <= allowed


async def capture_lead(http: httpx.AsyncClient, **form: Any) -> dict[str, Any]:
    response = await http.post("/lead.capture", json={**LEAD_FORM, **form}, headers=GID)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- POST /lead.capture/crm-callback -------------------------------------------------------------------


async def test_crm_callback_stores_the_crm_lead_id_where_the_leads_endpoints_show_it(
    live_http: httpx.AsyncClient,
) -> None:
    lead_id = (await capture_lead(live_http))["lead_id"]
    secret = {"Authorization": f"Bearer {await create_key(live_http, DEMO, 'sk')}"}

    response = await live_http.post(
        "/lead.capture/crm-callback", json={"lead_id": lead_id, "crm_lead_id": "HS-98765"}, headers=secret
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["lead_id"], body["crm_lead_id"], body["status"]) == (lead_id, "HS-98765", "updated")
    assert isinstance(body["timestamp"], int) and body["timestamp"] > 1_700_000_000_000
    read = {"X-API-Key": await create_key(live_http, DEMO, "read")}
    [listed] = (await live_http.get("/analytics/leads", headers=read)).json()["leads"]
    detail = (await live_http.get(f"/analytics/leads/{lead_id}", headers=read)).json()
    [admin_lead] = (await admin_json(live_http, "GET", f"/v1/gateways/{DEMO}/leads"))["leads"]
    assert listed["crm_lead_id"] == detail["lead"]["crm_lead_id"] == admin_lead["crm_lead_id"] == "HS-98765"

    # Make.com sends it again (numbers and camelCase welcome): nothing changes.
    again = await live_http.post(
        "/lead.capture/crm-callback", json={"leadId": lead_id, "crmLeadId": "HS-98765"}, headers=secret
    )
    assert again.json()["status"] == "unchanged"
    renumbered = await live_http.post(
        "/lead.capture/crm-callback", json={"lead_id": lead_id, "crm_lead_id": 4242}, headers=secret
    )
    assert (renumbered.json()["status"], renumbered.json()["crm_lead_id"]) == ("updated", "4242")


async def test_crm_callback_needs_a_secret_key_of_the_leads_gateway(live_http: httpx.AsyncClient) -> None:
    lead_id = (await capture_lead(live_http))["lead_id"]
    body = {"lead_id": lead_id, "crm_lead_id": "CRM-1"}
    await admin_json(live_http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})

    anonymous = await live_http.post("/lead.capture/crm-callback", json=body, headers=GID)
    read_key = await live_http.post(
        "/lead.capture/crm-callback", json=body, headers={"X-API-Key": await create_key(live_http, DEMO, "read")}
    )
    other_key = {"Authorization": f"Bearer {await create_key(live_http, 'other', 'sk')}"}
    others_lead = await live_http.post("/lead.capture/crm-callback", json=body, headers=other_key)
    named_other = await live_http.post("/lead.capture/crm-callback", json=body, headers={**other_key, **GID})

    assert anonymous.status_code == read_key.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert others_lead.status_code == 404 and others_lead.json()["error"]
    assert named_other.status_code == 403
    [lead] = (await admin_json(live_http, "GET", f"/v1/gateways/{DEMO}/leads"))["leads"]
    assert lead["crm_lead_id"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"crm_lead_id": "CRM-1"}, 400, "lead_id"),
        ({"lead_id": "x"}, 400, "crm_lead_id"),
        ({"lead_id": "x", "crm_lead_id": "   "}, 400, "crm_lead_id"),
        ({"lead_id": "x", "crm_lead_id": "c" * 201}, 400, "crm_lead_id"),
        ({"lead_id": "no-such-lead", "crm_lead_id": "CRM-1"}, 404, "lead_id"),
    ],
)
async def test_crm_callback_bad_body_is_a_json_error_naming_the_field(
    live_http: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    secret = {"X-API-Key": await create_key(live_http, DEMO, "sk")}

    response = await live_http.post("/lead.capture/crm-callback", json=body, headers=secret)

    assert response.status_code == status, response.text
    assert response.json()["field"] == field


# -- the deprecated lead paths ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/lead", "/"])
async def test_deprecated_lead_paths_answer_like_lead_capture_with_deprecation_headers(
    live_http: httpx.AsyncClient, path: str
) -> None:
    response = await live_http.post(path, json=LEAD_FORM, headers=GID)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"lead_id", "status", "session_id", "visitor_id", "timestamp"}
    assert body["status"] == "created"
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"] == "Mon, 01 Jun 2026 00:00:00 GMT"
    assert '</lead.capture>; rel="successor-version"' in response.headers["link"]
    assert_seed_cors(response)
    [lead] = (await admin_json(live_http, "GET", f"/v1/gateways/{DEMO}/leads"))["leads"]
    assert (lead["id"], lead["email"]) == (body["lead_id"], "ada@example.com")
    bad = await live_http.post(path, json={"email": "not-an-email"}, headers=GID)
    assert (bad.status_code, bad.json()["field"]) == (400, "email")
    assert bad.headers["sunset"] == "Mon, 01 Jun 2026 00:00:00 GMT"


@pytest.mark.parametrize("path", ["/lead.capture", "/lead", "/", "/lead.capture/crm-callback", "/track/event"])
async def test_lead_and_tracking_paths_answer_cors_preflights(live_http: httpx.AsyncClient, path: str) -> None:
    response = await live_http.options(
        path,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-visitor-id,x-fingerprint-id",
        },
    )

    assert response.status_code == 204
    assert_seed_cors(response)


# -- form.js and pulse.js ---------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "api"), [("/form.js", "window.PulseForm"), ("/pulse.js", "window.PulseGate")])
async def test_browser_scripts_are_served_like_tracker_js(live_http: httpx.AsyncClient, path: str, api: str) -> None:
    response = await live_http.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert_seed_cors(response)
    assert api in response.text and "/lead.capture" in response.text
    cached = await live_http.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")


# -- visitor headers ---------------------------------------------------------------------------------


async def test_visitor_headers_name_the_visitor_hashed_like_every_identifier(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:

        async def visitor(body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> str:
            response = await http.post(
                "/track/session/start",
                json={"url": "https://shop.example/", **(body or {})},
                headers={**GID, **(headers or {})},
            )
            assert response.status_code == 200, response.text
            answered: str = response.json()["visitor_id"]
            return answered

        by_header = await visitor(headers={"X-Visitor-ID": "visitor-raw-42"})
        by_fingerprint = await visitor(headers={"X-Fingerprint-ID": "fp-raw-77"})
        body_wins = await visitor({"visitor_id": "body-raw-5"}, {"X-Visitor-ID": "visitor-raw-42"})
        header_beats_fingerprint = await visitor(
            headers={"X-Visitor-ID": "visitor-raw-42", "X-Fingerprint-ID": "fp-raw-77"}
        )
        sent_back = await visitor(headers={"X-Visitor-ID": by_header})
        derived = await visitor()
        too_long = await http.post(
            "/track/session/start", json={"url": "/"}, headers={**GID, "X-Visitor-ID": "v" * 129}
        )

    assert by_header == header_beats_fingerprint == sent_back == sha256_hex("visitor-raw-42")
    assert by_fingerprint == sha256_hex("fp-raw-77")
    assert body_wins == sha256_hex("body-raw-5")
    assert derived not in (by_header, by_fingerprint) and len(derived) == 64
    assert (too_long.status_code, too_long.json()["field"]) == (400, "X-Visitor-ID")
    batch = {"session_id": "s-batch", "events": [{"event_name": "a"}, {"event_name": "b", "visitor_id": "item-raw-9"}]}
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        response = await http.post("/track/events/batch", json=batch, headers={**GID, "X-Visitor-ID": "batch-raw-8"})
    assert response.json()["visitor_id"] == sha256_hex("batch-raw-8")
    rows = stored_rows(live_server.db_path, "SELECT name, anonymous_id FROM events WHERE session_id = 's-batch'")
    assert {row["name"]: row["anonymous_id"] for row in rows} == {
        "a": sha256_hex("batch-raw-8"),
        "b": sha256_hex("item-raw-9"),
    }
    raw = database_bytes(live_server.db_path)
    for secret in (b"visitor-raw-42", b"fp-raw-77", b"body-raw-5", b"batch-raw-8", b"item-raw-9"):
        assert secret not in raw


# -- unknown sessions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/track/event", {"session_id": "never-started", "event_name": "click"}),
        ("/track/session/end", {"session_id": "never-started", "duration_ms": 1000}),
    ],
)
async def test_an_unknown_session_is_404_in_the_seeds_error_shape(
    live_http: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await live_http.post(path, json=body, headers=GID)

    assert response.status_code == 404
    assert isinstance(response.json()["error"], str) and response.json()["field"] == "session_id"
    assert_seed_cors(response)
    started = await live_http.post(
        "/track/session/start", json={"url": "https://shop.example/", "session_id": "never-started"}, headers=GID
    )
    assert started.status_code == 200
    assert (await live_http.post(path, json=body, headers=GID)).status_code == 200


# -- /health -----------------------------------------------------------------------------------------


async def test_health_carries_a_timestamp_and_the_seeds_cors_headers(live_http: httpx.AsyncClient) -> None:
    response = await live_http.get("/health", headers={"Origin": "https://status.example"})
    preflight = await live_http.options(
        "/health", headers={"Origin": "https://status.example", "Access-Control-Request-Method": "GET"}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["timestamp"], int) and body["timestamp"] > 1_700_000_000_000
    assert_seed_cors(response)
    assert preflight.status_code == 204
    assert_seed_cors(preflight)


async def test_session_end_reads_a_beacons_text_plain_body_as_json(live_http: httpx.AsyncClient) -> None:
    """`navigator.sendBeacon(url, string)` sends text/plain (no CORS preflight); pulse.js ends visits so."""
    started = await live_http.post("/track/session/start", json={"url": "https://shop.example/"}, headers=GID)
    body = json.dumps({"session_id": started.json()["session_id"], "duration_ms": 60_000, "clicks": 3})
    beacon = {**GID, "Content-Type": "text/plain;charset=UTF-8"}

    ended = await live_http.post("/track/session/end", content=body, headers=beacon)
    event = await live_http.post("/track/event", content=body, headers=beacon)

    assert ended.status_code == 200, ended.text
    assert ended.json()["engagement_score"] == 14
    assert event.status_code == 415


@pytest.mark.parametrize(
    ("error", "status"), [(StorageError("database down"), 503), (InvalidInputError("bad", field="x"), 400)]
)
def test_a_cors_routes_errors_carry_the_cors_headers_whatever_raised_them(
    tmp_path: Path, error: Exception, status: int
) -> None:
    """A browser sees the gateway's error (a 503 while the database is down), not a CORS failure."""

    async def failing(_: Request) -> Response:
        raise error

    app = Starlette(routes=[cors_route("/fails", failing, ["POST"])], exception_handlers=EXCEPTION_HANDLERS)
    with serve_in_thread(app, tmp_path / "unused.db") as server:
        response = httpx.post(server.url("/fails"), json={}, headers={"Origin": "https://shop.example"})

    assert response.status_code == status
    assert "error" in response.json()
    assert_seed_cors(response)
