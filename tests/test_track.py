"""The tracking endpoints: seed 000's `POST /track` (+ `/track/batch`) and seed 004's `POST /v1/track`."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.ingest.track import verify_receipt
from mcp_gateway.store import EventRow

from .support import (
    ADMIN_HEADERS,
    DEMO,
    BoundedASGITransport,
    admin_json,
    create_key,
    database_bytes,
    lifespan_running,
    serve_in_thread,
)

GATEWAY: Final = {"X-Gateway-ID": DEMO}
SHOP_ORIGIN: Final = "https://shop.example"
CHROME_UA: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


async def stored_event(app: Starlette, event_id: str, gateway_id: str = DEMO) -> EventRow:
    row: EventRow | None = await app.state.services.store.get_event(gateway_id, event_id)
    assert row is not None, event_id
    return row


async def count_events(app: Starlette, gateway_id: str = DEMO) -> int:
    return len(await app.state.services.store.events_after(0, gateway_id=gateway_id, limit=10_000))


async def create_shop(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "shop", "name": "Shop", "allowed_origins": [SHOP_ORIGIN]})


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway allowing 3 requests a minute on `/track` (per gateway) and `/v1/track` (per key)."""
    app = create_app(settings.model_copy(update={"track_rate_limit": 3, "v1_track_rate_limit": 3}))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


# -- POST /track -------------------------------------------------------------------------------------


async def test_track_confirms_an_event_with_a_receipt_for_the_gateway(http: httpx.AsyncClient, app: Starlette) -> None:
    body = {"event_name": "Purchase", "event_id": "order-1", "timestamp": 1704067200, "custom_data": {"value": 9.5}}
    response = await http.post("/track", json=body, headers=GATEWAY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "confirmed"
    assert answer["receipt"]["data"] == {"id": "order-1", "ts": 1704067200000, "owner": DEMO}
    assert len(answer["receipt"]["signature"]) == 64
    assert uuid.UUID(answer["tx_id"]).version == 5
    assert response.headers["X-RateLimit-Remaining"] == "99"
    assert "X-RateLimit-Reset" in response.headers
    row = await stored_event(app, "order-1")
    assert (row.name, row.source, row.ts_ms, row.properties) == ("Purchase", "web", 1704067200000, {"value": 9.5})


async def test_track_takes_the_gateway_from_the_gid_query_parameter(http: httpx.AsyncClient, app: Starlette) -> None:
    response = await http.post(f"/track?gid={DEMO}", json={"event_name": "PageView"})
    assert response.status_code == 200, response.text
    event_id = response.json()["receipt"]["data"]["id"]
    assert (await stored_event(app, event_id)).name == "PageView"


async def test_track_reads_millisecond_timestamps_and_defaults_to_now(http: httpx.AsyncClient) -> None:
    ms = await http.post("/track", json={"event_name": "A", "timestamp": 1704067200123}, headers=GATEWAY)
    assert ms.json()["receipt"]["data"]["ts"] == 1704067200123
    now = await http.post("/track", json={"event_name": "B"}, headers=GATEWAY)
    assert now.json()["receipt"]["data"]["ts"] > 1704067200123


async def test_track_without_a_gateway_id_is_400_naming_the_header(http: httpx.AsyncClient) -> None:
    response = await http.post("/track", json={"event_name": "Purchase"})
    assert response.status_code == 400
    assert response.json()["field"] == "X-Gateway-ID"


async def test_track_for_an_unknown_gateway_is_404_gateway_not_configured(http: httpx.AsyncClient) -> None:
    response = await http.post("/track", json={"event_name": "Purchase"}, headers={"X-Gateway-ID": "nope"})
    assert response.status_code == 404
    assert response.json() == {"error": "Gateway Not Configured"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "event_name"),
        ({"event_name": ""}, "event_name"),
        ({"event_name": "x" * 129}, "event_name"),
        ({"event_name": "A", "event_id": ""}, "event_id"),
        ({"event_name": "A", "timestamp": "yesterday"}, "timestamp"),
        ({"event_name": "A", "timestamp": -1}, "timestamp"),
        ({"event_name": "A", "user": "bob"}, "user"),
        ({"event_name": "A", "user": {"email": 42}}, "user.email"),
        ({"event_name": "A", "user": {"phone": "1" * 65}}, "user.phone"),
        ({"event_name": "A", "custom_data": [1]}, "custom_data"),
        ({"event_name": "A", "custom_data": {"blob": "x" * 9000}}, "custom_data"),
        ([1, 2], "body"),
    ],
)
async def test_track_with_a_malformed_body_is_400_naming_the_field(
    http: httpx.AsyncClient, body: Any, field: str
) -> None:
    response = await http.post("/track", json=body, headers=GATEWAY)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_track_with_invalid_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/track", content=b"{nope", headers={**GATEWAY, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body"


async def test_track_ignores_unknown_user_fields(http: httpx.AsyncClient) -> None:
    body = {"event_name": "A", "user": {"email": "a@example.com", "favourite_colour": "blue"}}
    response = await http.post("/track", json=body, headers=GATEWAY)
    assert response.status_code == 200


async def test_the_same_event_id_twice_stores_one_event_and_answers_the_same_receipt(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    before = await count_events(app)
    first = await http.post("/track", json={"event_name": "Purchase", "event_id": "dup-1"}, headers=GATEWAY)
    second = await http.post(
        "/track", json={"event_name": "Purchase", "event_id": "dup-1", "timestamp": 1}, headers=GATEWAY
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await count_events(app) == before + 1


async def test_receipts_verify_with_the_secret_from_the_admin_api(http: httpx.AsyncClient) -> None:
    response = await http.post("/track", json={"event_name": "Purchase", "event_id": "sig-1"}, headers=GATEWAY)
    receipt = response.json()["receipt"]
    secret = (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/receipt-secret"))["secret"]
    canonical = json.dumps(receipt["data"], sort_keys=True, separators=(",", ":")).encode()
    expected = hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()
    assert receipt["signature"] == expected
    assert verify_receipt(receipt, secret)
    assert not verify_receipt({**receipt, "data": {**receipt["data"], "ts": 1}}, secret)
    assert not verify_receipt(receipt, "wrong-secret")


async def test_receipt_secrets_are_per_gateway_and_need_the_admin_token(http: httpx.AsyncClient) -> None:
    await create_shop(http)
    demo = (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/receipt-secret"))["secret"]
    shop = (await admin_json(http, "GET", "/v1/gateways/shop/receipt-secret"))["secret"]
    assert demo != shop
    assert (await http.get(f"/v1/gateways/{DEMO}/receipt-secret")).status_code == 401
    assert (await http.get("/v1/gateways/nope/receipt-secret", headers=ADMIN_HEADERS)).status_code == 404


async def test_track_over_the_rate_limit_is_429_with_retry_after(limited: httpx.AsyncClient) -> None:
    remaining = []
    for _ in range(3):
        ok = await limited.post("/track", json={"event_name": "A"}, headers=GATEWAY)
        assert ok.status_code == 200
        remaining.append(ok.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = await limited.post("/track", json={"event_name": "A"}, headers=GATEWAY)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "Rate limit exceeded. Maximum 3 requests per minute."
    assert 1 <= body["retry_after"] <= 60
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in refused.headers
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite is one process's: its windows are in memory
async def test_processes_sharing_a_database_share_the_rate_limit(settings: Settings) -> None:
    """Two gateway processes on one PostgreSQL database (two apps here) count against one window."""
    limited = settings.model_copy(update={"track_rate_limit": 3})
    first, second = create_app(limited), create_app(limited)
    async with lifespan_running(first), lifespan_running(second):
        clients = [
            httpx.AsyncClient(transport=BoundedASGITransport(app=app, client=("127.0.0.1", 40000)), base_url="http://x")
            for app in (first, second, first, second)
        ]
        answers = [await client.post("/track", json={"event_name": "A"}, headers=GATEWAY) for client in clients]
        for client in clients:
            await client.aclose()
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]


async def test_track_rate_limits_each_gateway_separately(limited: httpx.AsyncClient) -> None:
    await create_shop(limited)
    for _ in range(3):
        await limited.post("/track", json={"event_name": "A"}, headers=GATEWAY)
    assert (await limited.post("/track", json={"event_name": "A"}, headers=GATEWAY)).status_code == 429
    assert (await limited.post("/track?gid=shop", json={"event_name": "A"})).status_code == 200


async def test_track_limits_one_client_ip_alone_over_a_real_socket(settings: Settings) -> None:
    """One client using up its window on a gateway leaves the gateway's other visitors theirs (seed 001: per IP)."""
    app = create_app(settings.model_copy(update={"track_rate_limit": 3}))
    with serve_in_thread(app, settings.db_path) as server:
        abuser = httpx.AsyncClient(
            base_url=server.base_url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        )
        visitor = httpx.AsyncClient(
            base_url=server.base_url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.3")
        )
        async with abuser, visitor:
            answers = [(await abuser.post("/track", json={"event_name": "A"}, headers=GATEWAY)) for _ in range(4)]
            assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
            assert answers[-1].json()["error"] == "Rate limit exceeded. Maximum 3 requests per minute."
            assert answers[-1].headers["Retry-After"] == str(answers[-1].json()["retry_after"])
            other = await visitor.post("/track", json={"event_name": "A"}, headers=GATEWAY)
            assert other.status_code == 200, other.text
            assert other.headers["X-RateLimit-Remaining"] == "2"
            batch = await visitor.post("/track/batch", json={"events": [{"event_name": "A"}] * 2}, headers=GATEWAY)
            assert batch.status_code == 200
            assert (
                await abuser.post("/track/batch", json={"events": [{"event_name": "A"}]}, headers=GATEWAY)
            ).status_code == 429


# -- hashing and enrichment --------------------------------------------------------------------------


async def test_track_stores_no_raw_email_phone_or_ip(http: httpx.AsyncClient, app: Starlette, db_path: Path) -> None:
    user = {
        "email": "Jane.Doe@Example.com",
        "phone": "+1 (555) 013-7788",
        "external_id": "user_secret_42",
        "client_ip_address": "203.0.113.77",
    }
    response = await http.post(
        "/track", json={"event_name": "Lead", "event_id": "pii-1", "user": user}, headers=GATEWAY
    )
    assert response.status_code == 200
    row = await stored_event(app, "pii-1")
    assert row.web is not None
    assert row.web.email_hash == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert row.web.phone_hash == hashlib.sha256(b"15550137788").hexdigest()
    assert row.web.ip_hash is not None
    stored = database_bytes(db_path).lower()
    for raw in (b"jane.doe@example.com", b"15550137788", b"555) 013", b"user_secret_42", b"203.0.113.77"):
        assert raw not in stored


async def test_track_scores_match_quality_and_auto_extracts_ip_and_user_agent(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    body = {"event_name": "Lead", "event_id": "emq-1", "user": {"email": "a@example.com", "fbp": "fb.1.1.1"}}
    response = await http.post("/track", json=body, headers={**GATEWAY, "User-Agent": CHROME_UA})
    assert response.status_code == 200
    web = (await stored_event(app, "emq-1")).web
    assert web is not None
    assert web.emq == 2.5 + 1.5 + 0.5 + 0.3  # email, fbp, and the request's IP and user agent
    assert web.ip_hash is not None
    assert (web.device_type, web.browser, web.os) == ("desktop", "Chrome", "Windows")


async def test_v1_track_fills_attribution_and_device_columns(http: httpx.AsyncClient, app: Starlette) -> None:
    key = await create_key(http, kind="sk")
    body = {
        "event": "signup",
        "event_id": "attr-1",
        "url": "https://yoursite.com/?utm_source=facebook&utm_medium=cpc&utm_campaign=spring",
        "path": "/",
        "referrer": "https://l.facebook.com/",
        "user_id": "user_42",
    }
    headers = {"Authorization": f"Bearer {key}", "User-Agent": CHROME_UA}
    response = await http.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 202, response.text
    row = await stored_event(app, "attr-1")
    assert row.web is not None
    assert (row.web.traffic_source, row.web.traffic_medium, row.web.traffic_campaign) == ("facebook", "cpc", "spring")
    assert row.web.traffic_rule is not None
    assert (row.web.device_type, row.web.browser, row.web.os) == ("desktop", "Chrome", "Windows")
    assert (row.web.url, row.web.path) == (body["url"], "/")
    assert row.web.user_id_hash == hashlib.sha256(b"user_42").hexdigest()


# -- POST /track/batch -------------------------------------------------------------------------------


async def test_batch_confirms_valid_events_and_reports_invalid_ones_by_index(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    events = [
        {"event_name": "A", "event_id": "b-1"},
        {"event_id": "b-2"},
        {"event_name": "C", "event_id": "b-3", "custom_data": {"x": "y" * 9000}},
        {"event_name": "D", "event_id": "b-4", "timestamp": 1704067200},
    ]
    response = await http.post("/track/batch", json={"events": events}, headers=GATEWAY)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["confirmed", "error", "error", "confirmed"]
    assert (results[1]["field"], results[2]["field"]) == ("event_name", "custom_data")
    assert results[3]["receipt"]["data"] == {"id": "b-4", "ts": 1704067200000, "owner": DEMO}
    assert (await stored_event(app, "b-1")).name == "A"
    assert await app.state.services.store.get_event(DEMO, "b-2") is None
    single = await http.post("/track", json={"event_name": "D", "event_id": "b-4"}, headers=GATEWAY)
    assert {k: single.json()[k] for k in ("receipt", "tx_id")} == {k: results[3][k] for k in ("receipt", "tx_id")}


async def test_batch_with_a_repeated_event_id_stores_it_once(http: httpx.AsyncClient, app: Starlette) -> None:
    before = await count_events(app)
    events = [{"event_name": "A", "event_id": "same"}, {"event_name": "A", "event_id": "same"}]
    results = (await http.post("/track/batch", json={"events": events}, headers=GATEWAY)).json()["results"]
    assert results[0]["receipt"] == results[1]["receipt"]
    assert await count_events(app) == before + 1


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": [{"event_name": "A"}] * 101}, {"events": "A"}])
async def test_batch_with_a_bad_envelope_is_400_naming_events(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post("/track/batch", json=body, headers=GATEWAY)
    assert response.status_code == 400
    assert response.json()["field"].startswith("events")


async def test_batch_counts_each_event_against_the_rate_limit(limited: httpx.AsyncClient) -> None:
    two = await limited.post("/track/batch", json={"events": [{"event_name": "A"}] * 2}, headers=GATEWAY)
    assert two.status_code == 200
    assert two.headers["X-RateLimit-Remaining"] == "1"
    refused = await limited.post("/track/batch", json={"events": [{"event_name": "A"}] * 2}, headers=GATEWAY)
    assert refused.status_code == 429
    assert "retry_after" in refused.json()


async def test_batch_for_an_unknown_gateway_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/track/batch?gid=nope", json={"events": [{"event_name": "A"}]})
    assert response.status_code == 404
    assert response.json() == {"error": "Gateway Not Configured"}


# -- POST /v1/track ----------------------------------------------------------------------------------


async def test_v1_track_with_a_secret_key_accepts_a_server_event(http: httpx.AsyncClient, app: Starlette) -> None:
    key = await create_key(http, kind="sk")
    body = {"event": "purchase", "event_id": "evt_abc123", "timestamp": "2026-05-16T19:00:00.000Z"}
    response = await http.post("/v1/track", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["ok"], answer["event_id"]) == (True, "evt_abc123")
    assert response.headers["X-RateLimit-Remaining"] == "199"
    row = await stored_event(app, "evt_abc123")
    assert (row.name, row.source, row.ts_ms) == ("purchase", "server", 1778958000000)


async def test_v1_track_generates_an_event_id_when_none_is_sent(http: httpx.AsyncClient, app: Starlette) -> None:
    key = await create_key(http, kind="sk")
    response = await http.post("/v1/track", json={"event": "$pageview"}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert (await stored_event(app, event_id)).name == "$pageview"


async def test_v1_track_with_a_publishable_key_needs_an_allowed_origin(http: httpx.AsyncClient, app: Starlette) -> None:
    await create_shop(http)
    key = await create_key(http, "shop", kind="pk")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"event": "signup", "event_id": "web-1"}
    allowed = await http.post("/v1/track", json=body, headers={**auth, "Origin": SHOP_ORIGIN})
    assert allowed.status_code == 202, allowed.text
    assert (await stored_event(app, "web-1", "shop")).source == "web"
    for headers in ({**auth, "Origin": "https://evil.example"}, auth):
        refused = await http.post("/v1/track", json={"event": "signup"}, headers=headers)
        assert refused.status_code == 403
        assert refused.json() == {"error": "origin_not_allowed"}
        assert refused.headers["Access-Control-Allow-Origin"] == "*"


async def test_v1_track_with_a_secret_key_skips_the_origin_check(http: httpx.AsyncClient) -> None:
    key = await create_key(http, kind="sk")
    headers = {"Authorization": f"Bearer {key}", "Origin": "https://evil.example"}
    response = await http.post("/v1/track", json={"event": "signup"}, headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize("kind", ["missing", "unknown", "org", "read", "revoked"])
async def test_v1_track_without_a_live_tracking_key_is_401(http: httpx.AsyncClient, kind: str) -> None:
    headers: dict[str, str] = {}
    if kind == "unknown":
        headers["Authorization"] = "Bearer sk_not-a-real-key"
    elif kind in ("org", "read"):
        headers["Authorization"] = f"Bearer {await create_key(http, kind=kind)}"
    elif kind == "revoked":
        created = await admin_json(http, "POST", f"/v1/gateways/{DEMO}/keys", {"kind": "sk"})
        await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")
        headers["Authorization"] = f"Bearer {created['key']}"
    response = await http.post("/v1/track", json={"event": "signup"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "event"),
        ({"event": ""}, "event"),
        ({"event": "x" * 129}, "event"),
        ({"event": "a", "event_id": "x" * 129}, "event_id"),
        ({"event": "a", "timestamp": "last tuesday"}, "timestamp"),
        ({"event": "a", "timestamp": 1704067200}, "timestamp"),
        ({"event": "a", "properties": {"blob": "x" * 8200}}, "properties"),
        ({"event": "a", "properties": "plan=free"}, "properties"),
        ({"event": "a", "url": 5}, "url"),
        ("signup", "body"),
    ],
)
async def test_v1_track_with_a_bad_body_is_400_invalid_payload(http: httpx.AsyncClient, body: Any, field: str) -> None:
    key = await create_key(http, kind="sk")
    response = await http.post("/v1/track", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert (answer["error"], answer["field"]) == ("invalid_payload", field)
    assert answer["message"]


async def test_v1_track_with_invalid_json_is_400_invalid_payload(http: httpx.AsyncClient) -> None:
    key = await create_key(http, kind="sk")
    response = await http.post("/v1/track", content=b"{nope", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"


async def test_v1_track_the_same_event_id_twice_stores_one_row(http: httpx.AsyncClient, app: Starlette) -> None:
    key = await create_key(http, kind="sk")
    before = await count_events(app)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [
        (await http.post("/v1/track", json={"event": "signup", "event_id": "idem-1"}, headers=headers)).json()
        for _ in range(2)
    ]
    assert answers[0] == answers[1]
    assert (answers[0]["ok"], answers[0]["event_id"]) == (True, "idem-1")
    assert await count_events(app) == before + 1


async def test_v1_track_over_the_rate_limit_is_429_rate_limited_per_key(limited: httpx.AsyncClient) -> None:
    first, second = await create_key(limited, kind="sk"), await create_key(limited, kind="sk")
    for _ in range(3):
        ok = await limited.post("/v1/track", json={"event": "a"}, headers={"Authorization": f"Bearer {first}"})
        assert ok.status_code == 202
    refused = await limited.post("/v1/track", json={"event": "a"}, headers={"Authorization": f"Bearer {first}"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1
    other = await limited.post("/v1/track", json={"event": "a"}, headers={"Authorization": f"Bearer {second}"})
    assert other.status_code == 202


async def test_v1_track_limits_a_publishable_key_per_client_ip(settings: Settings) -> None:
    """A `pk_` key is public in its site's pages: one client using up its window leaves other visitors theirs."""
    app = create_app(settings.model_copy(update={"v1_track_rate_limit": 3}))
    async with lifespan_running(app):
        abuser, visitor = (
            httpx.AsyncClient(transport=BoundedASGITransport(app=app, client=(ip, 40000)), base_url="http://127.0.0.1")
            for ip in ("127.0.0.2", "127.0.0.3")
        )
        async with abuser, visitor:
            await create_shop(abuser)
            headers = {"Authorization": f"Bearer {await create_key(abuser, 'shop', kind='pk')}", "Origin": SHOP_ORIGIN}
            answers = [await abuser.post("/v1/track", json={"event": "a"}, headers=headers) for _ in range(4)]
            assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
            assert answers[-1].json()["error"] == "rate_limited"
            assert (await visitor.post("/v1/track", json={"event": "a"}, headers=headers)).status_code == 202


# -- CORS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/track", "/track/batch", "/v1/track"])
async def test_tracking_routes_answer_cors_preflights(http: httpx.AsyncClient, path: str) -> None:
    headers = {
        "Origin": SHOP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization, x-gateway-id",
    }
    response = await http.options(path, headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "X-Gateway-ID" in response.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("path", ["/track", "/track/batch", "/v1/track"])
async def test_tracking_errors_carry_cors_headers(http: httpx.AsyncClient, path: str) -> None:
    response = await http.post(path, json={}, headers={"Origin": SHOP_ORIGIN})
    assert response.status_code in (400, 401)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
