"""Web events over a real socket, as each seed's users send them: page context on every route, `/track`'s origin
check, JSON-only bodies (415), and seed 002's `{token, event, properties}` bodies on `/track` and `/track/batch`."""

from __future__ import annotations

import json
import time
from typing import Any, Final

import httpx
import pytest

from mcp_gateway.vocabulary import PAGE_VIEW, PAGE_VIEW_NAMES

from .support import DEMO, LiveServer, admin_json, create_key, stored_rows

GATEWAY: Final = {"X-Gateway-ID": DEMO}
ALLOWED_ORIGIN: Final = "http://localhost:3000"
"""Among the `demo` gateway's default allowed origins (`http://localhost:*`)."""
OTHER_ORIGIN: Final = "https://evil.example"


def stored(server: LiveServer, event_id: str) -> dict[str, Any]:
    rows = stored_rows(
        server.db_path,
        "SELECT gateway_id, name, source, url, path, referrer, properties, emq FROM events WHERE id = ?",
        event_id,
    )
    assert len(rows) == 1, (event_id, rows)
    row = rows[0]
    row["properties"] = json.loads(row["properties"]) if row["properties"] else None
    return row


async def top_pages(http: httpx.AsyncClient) -> dict[str, int]:
    key = await create_key(http, kind="read")
    answer = await http.get(
        "/analytics/pages/top", params={"period": "24h"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    return {page["path"]: page["views"] for page in answer.json()["pages"]}


# -- page context on every route -------------------------------------------------------------------


async def test_page_views_from_every_route_have_a_path_and_fill_top_pages(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    # seed 000, as the first tracker.js sent it: the path only inside custom_data
    first_tracker = {
        "event_name": "PageView",
        "event_id": "pv-custom-data",
        "url": "https://shop.example/pricing?utm_source=newsletter",
        "custom_data": {"path": "/pricing", "title": "Pricing", "page_name": "Pricing"},
    }
    assert (await live_http.post("/track", json=first_tracker, headers=GATEWAY)).status_code == 200
    # seed 000 with only a url: the path comes from it
    url_only = {"event_name": "PageView", "event_id": "pv-url", "url": "https://shop.example/docs/start?x=1"}
    assert (await live_http.post("/track", json=url_only, headers=GATEWAY)).status_code == 200
    batch = {"events": [{"event_name": "PageView", "event_id": "pv-batch", "url": "https://shop.example/docs/start"}]}
    assert (await live_http.post("/track/batch", json=batch, headers=GATEWAY)).status_code == 200
    # seed 004: `path` is optional, "the browser SDK sets this automatically"
    sk = await create_key(live_http, kind="sk")
    v1 = {"event": "$pageview", "event_id": "pv-v1", "url": "https://shop.example/pricing", "title": "Pricing"}
    answer = await live_http.post("/v1/track", json=v1, headers={"Authorization": f"Bearer {sk}"})
    assert answer.status_code == 202, answer.text
    # seed 001: a page view event of a visit
    visit = await live_http.post("/track/session/start", json={"url": "https://shop.example/"}, headers=GATEWAY)
    assert visit.status_code == 200, visit.text
    event = {"session_id": visit.json()["session_id"], "event_name": "page_view", "url": "https://shop.example/blog/a"}
    assert (await live_http.post("/track/event", json=event, headers=GATEWAY)).status_code == 200

    assert stored(live_server, "pv-custom-data")["path"] == "/pricing"
    assert stored(live_server, "pv-custom-data")["properties"]["page"] == "Pricing"
    assert stored(live_server, "pv-url")["path"] == "/docs/start"
    assert stored(live_server, "pv-batch")["path"] == "/docs/start"
    v1_row = stored(live_server, "pv-v1")
    assert (v1_row["path"], v1_row["properties"]) == ("/pricing", {"title": "Pricing"})
    pages = await top_pages(live_http)
    assert (pages["/pricing"], pages["/docs/start"], pages["/blog/a"]) == (2, 2, 1)


def test_the_vocabulary_names_tracker_page_views_and_reads_the_other_seeds_spellings() -> None:
    assert PAGE_VIEW == "PageView"
    assert {"PageView", "page_view", "$pageview"} <= PAGE_VIEW_NAMES


# -- POST /track and allowed origins ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/track", "/track/batch"])
async def test_track_from_a_browser_on_a_site_not_allowed_is_403(live_http: httpx.AsyncClient, path: str) -> None:
    body: dict[str, Any] = {"event_name": "Purchase"}
    if path == "/track/batch":
        body = {"events": [body]}
    refused = await live_http.post(path, json=body, headers={**GATEWAY, "Origin": OTHER_ORIGIN})
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"error": "Origin Not Allowed"}
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # the browser may read why
    browser = await live_http.post(path, json=body, headers={**GATEWAY, "Origin": ALLOWED_ORIGIN})
    server = await live_http.post(path, json=body, headers=GATEWAY)  # no Origin: server to server
    assert (browser.status_code, server.status_code) == (200, 200)


async def test_track_checks_the_origins_of_the_gateway_it_names(live_http: httpx.AsyncClient) -> None:
    shop = {"id": "shop", "name": "Shop", "allowed_origins": ["https://shop.example"]}
    await admin_json(live_http, "POST", "/v1/gateways", shop)
    body = {"event_name": "Purchase"}
    allowed = await live_http.post("/track?gid=shop", json=body, headers={"Origin": "https://shop.example"})
    assert allowed.status_code == 200, allowed.text
    refused = await live_http.post("/track?gid=shop", json=body, headers={"Origin": ALLOWED_ORIGIN})
    assert refused.status_code == 403


# -- JSON bodies only --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/track", "/track/batch", "/v1/track"])
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
async def test_a_body_that_is_not_json_is_415(live_http: httpx.AsyncClient, path: str, content_type: str) -> None:
    headers = {**GATEWAY, "Content-Type": content_type}
    if path == "/v1/track":
        headers["Authorization"] = f"Bearer {await create_key(live_http, kind='sk')}"
    response = await live_http.post(path, content=b"event_name=Purchase", headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["field"] == "Content-Type"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await live_http.options(
        path, headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204


async def test_v1_track_answers_415_in_seed_004s_error_shape(live_http: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {await create_key(live_http, kind='sk')}", "Content-Type": "text/xml"}
    response = await live_http.post("/v1/track", content=b"<event/>", headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_track_reads_json_declared_as_a_beacons_text_or_with_a_charset(live_http: httpx.AsyncClient) -> None:
    body = json.dumps({"event_name": "PageView"}).encode()
    for content_type in ("text/plain;charset=UTF-8", "application/json; charset=utf-8"):
        response = await live_http.post("/track", content=body, headers={**GATEWAY, "Content-Type": content_type})
        assert response.status_code == 200, (content_type, response.text)


# -- seed 002's bodies -------------------------------------------------------------------------------


async def test_track_accepts_seed_002s_token_body_and_answers_202_queued(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    token = await create_key(live_http, kind="pk")
    body = {
        "token": token,
        "event": "page_view",
        "event_id": "s2-1",
        "properties": {"page": "Docs", "path": "/docs", "url": "https://shop.example/docs", "plan": "free"},
        "user_id": "anon_abc",
        "timestamp": int(time.time() * 1000),  # what seed 002's tracker sends: Date.now()
    }
    response = await live_http.post("/track", json=body)  # no gateway id: the token names it
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": True}
    row = stored(live_server, "s2-1")
    assert (row["gateway_id"], row["name"], row["source"], row["path"]) == (DEMO, "page_view", "web", "/docs")
    assert row["properties"]["plan"] == "free"
    assert (await top_pages(live_http))["/docs"] == 1


async def test_track_batch_accepts_seed_002s_token_body(live_server: LiveServer, live_http: httpx.AsyncClient) -> None:
    token = await create_key(live_http, kind="sk")
    events: list[dict[str, Any]] = [
        {"event": "signup_start", "event_id": "s2-b1", "properties": {"step": 1}},
        {"event": "signup_complete", "event_id": "s2-b2", "timestamp": "2026-01-01T00:00:00Z"},
    ]
    response = await live_http.post("/track/batch", json={"token": token, "events": events})
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": True, "count": 2}
    assert stored(live_server, "s2-b1")["source"] == "server"  # an sk_ token: a server's events
    # The token on the events instead, as seed 002's SDKs may send it.
    per_event = [{**event, "token": token, "event_id": event["event_id"] + "x"} for event in events]
    again = await live_http.post("/track/batch", json={"events": per_event})
    assert again.status_code == 202, again.text
    assert stored(live_server, "s2-b2x")["name"] == "signup_complete"


async def test_seed_002_body_sent_by_send_beacon_as_text_is_read(live_http: httpx.AsyncClient) -> None:
    token = await create_key(live_http, kind="pk")
    body = json.dumps({"token": token, "event": "page_view", "properties": {"path": "/"}}).encode()
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": ALLOWED_ORIGIN}
    response = await live_http.post("/track", content=body, headers=headers)
    assert response.status_code == 202, response.text


async def test_seed_002_body_with_an_unknown_or_revoked_token_is_401(live_http: httpx.AsyncClient) -> None:
    created = await admin_json(live_http, "POST", f"/v1/gateways/{DEMO}/keys", {"kind": "pk"})
    await admin_json(live_http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")
    read = await create_key(live_http, kind="read")
    for token in ("pk_not-a-real-key", created["key"], read):
        response = await live_http.post("/track", json={"token": token, "event": "signup"})
        assert response.status_code == 401, response.text
        assert response.json()["field"] == "token"
        batch = await live_http.post("/track/batch", json={"token": token, "events": [{"event": "signup"}]})
        assert batch.status_code == 401


async def test_seed_002_body_with_a_browser_token_checks_the_origin(live_http: httpx.AsyncClient) -> None:
    pk, sk = await create_key(live_http, kind="pk"), await create_key(live_http, kind="sk")
    body = {"event": "signup"}
    refused = await live_http.post("/track", json={**body, "token": pk}, headers={"Origin": OTHER_ORIGIN})
    assert refused.status_code == 403
    assert refused.json() == {"error": "Origin Not Allowed"}
    server = await live_http.post("/track", json={**body, "token": sk}, headers={"Origin": OTHER_ORIGIN})
    assert server.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": "pk_x"}, "event"),
        ({"token": "pk_x", "event": ""}, "event"),
        ({"token": "pk_x", "event": "a", "properties": "plan=free"}, "properties"),
        ({"token": "pk_x", "event": "a", "properties": {"blob": "x" * 9000}}, "properties"),
        ({"token": "pk_x", "event": "a", "timestamp": "yesterday"}, "timestamp"),
        ({"token": "pk_x", "event": "a", "timestamp": -5}, "timestamp"),
    ],
)
async def test_seed_002_body_that_is_malformed_is_400_naming_the_field(
    live_http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await live_http.post("/track", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_seed_002_batch_with_one_bad_event_stores_none(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    token = await create_key(live_http, kind="sk")
    events = [{"event": "ok", "event_id": "s2-none"}, {"event_id": "no-name"}]
    response = await live_http.post("/track/batch", json={"token": token, "events": events})
    assert response.status_code == 400
    assert response.json()["field"] == "events.1.event"
    assert stored_rows(live_server.db_path, "SELECT id FROM events WHERE id = ?", "s2-none") == []


async def test_openapi_documents_both_bodies_of_track_and_their_answers(live_http: httpx.AsyncClient) -> None:
    doc = (await live_http.get("/openapi.json")).json()
    for path, seed_000, seed_002 in (
        ("/track", "TrackEvent", "TokenTrackEvent"),
        ("/track/batch", "TrackBatch", "TokenTrackBatch"),
    ):
        operation = doc["paths"][path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {ref["$ref"].rsplit("/", 1)[1] for ref in schema["anyOf"]} == {seed_000, seed_002}
        assert {"200", "202", "401", "403", "415"} <= set(operation["responses"])
