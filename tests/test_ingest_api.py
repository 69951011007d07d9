"""The Agnost-compatible ingestion API: /api/v1/capture-session, /capture-event and /capture-batch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_gateway_tracking.privacy import hash_text
from starlette.applications import Starlette

from mcp_gateway.store import EventRow, SessionRow, Store

from .support import ADMIN_HEADERS, DEMO, admin_json, create_key, database_bytes

SESSION_PATH = "/api/v1/capture-session"
EVENT_PATH = "/api/v1/capture-event"
BATCH_PATH = "/api/v1/capture-batch"


@pytest.fixture
async def org_key(http: httpx.AsyncClient) -> str:
    return await create_key(http, DEMO, "org")


def store_of(app: Starlette) -> Store:
    store: Store = app.state.services.store
    return store


async def sessions(app: Starlette, gateway_id: str | None = DEMO) -> list[SessionRow]:
    return await store_of(app).sessions_after(0, gateway_id=gateway_id)


async def events(app: Starlette, gateway_id: str | None = DEMO) -> list[EventRow]:
    return await store_of(app).events_after(0, gateway_id=gateway_id)


def session_body(session_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """A capture-session body exactly as the seed shows it."""
    body: dict[str, Any] = {
        "session_id": session_id or str(uuid.uuid4()),
        "client_config": "claude-desktop",
        "connection_type": "",
        "ip": "",
        "tools": ["get_weather", "search_web", "calculate"],
        "user_data": {"userId": "user123", "role": "admin"},
    }
    return body | changes


def event_body(session_id: str, **changes: Any) -> dict[str, Any]:
    """A capture-event body exactly as the seed shows it."""
    body: dict[str, Any] = {
        "session_id": session_id,
        "primitive_type": "tool",
        "primitive_name": "get_weather",
        "latency": 342,
        "success": True,
        "args": '{"location":"San Francisco","units":"celsius"}',
        "result": '{"temperature":18,"conditions":"partly cloudy"}',
    }
    return body | changes


def headers(org_key: str | None) -> dict[str, str]:
    sent = {"Content-Type": "application/json"}
    if org_key is not None:
        sent["X-Org-Id"] = org_key
    return sent


async def post(http: httpx.AsyncClient, path: str, org_key: str | None, body: Any) -> httpx.Response:
    return await http.post(path, content=json.dumps(body), headers=headers(org_key))


async def open_session(http: httpx.AsyncClient, org_key: str, **changes: Any) -> str:
    body = session_body(**changes)
    response = await post(http, SESSION_PATH, org_key, body)
    assert response.status_code == 200, response.text
    session_id: str = body["session_id"]
    return session_id


def error_field(response: httpx.Response, status: int) -> str:
    """The field an error response names, after checking its status and JSON shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    field: str = body["field"]
    return field


# -- the seed's requests -----------------------------------------------------------------------------


async def test_capture_session_as_the_seed_sends_it_echoes_the_id_and_stores_the_session(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    body = session_body("550e8400-e29b-41d4-a716-446655440000")
    response = await post(http, SESSION_PATH, org_key, body)

    assert response.status_code == 200
    assert response.json() == {"session_id": "550e8400-e29b-41d4-a716-446655440000"}
    [stored] = await sessions(app)
    assert stored.id == "550e8400-e29b-41d4-a716-446655440000"
    assert stored.gateway_id == DEMO
    assert stored.client_config == "claude-desktop"
    assert stored.tools == ("get_weather", "search_web", "calculate")
    assert stored.user_data == {"userId": "user123", "role": "admin"}
    assert stored.ip_hash is None


async def test_capture_event_as_the_seed_sends_it_answers_success_and_an_event_id_and_stores_it(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = await open_session(http, org_key)
    response = await post(http, EVENT_PATH, org_key, event_body(session_id))

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"success", "event_id"}
    assert answer["success"] is True
    assert isinstance(answer["event_id"], str) and answer["event_id"]
    [stored] = await events(app)
    assert stored.id == answer["event_id"]
    assert (stored.session_id, stored.primitive_type, stored.name) == (session_id, "tool", "get_weather")
    assert (stored.latency_ms, stored.success, stored.operation, stored.source) == (342, True, "call", "mcp")
    assert json.loads(stored.args or "") == {"location": "San Francisco", "units": "celsius"}
    assert json.loads(stored.result or "") == {"temperature": 18, "conditions": "partly cloudy"}


async def test_bodies_existing_sdks_send_are_accepted(app: Starlette, http: httpx.AsyncClient, org_key: str) -> None:
    session_id = await open_session(http, org_key, org_id=org_key, sdk="agnost-python/0.3", timestamp=None)
    sdk_event = event_body(
        session_id,
        latency=17,  # an integer, no timestamp
        org_id=org_key,  # an extra field some SDKs add
        args={"location": "Paris", "options": {"units": "metric", "days": [1, 2]}},  # an object, not a string
        result={"temperature": 21},
        client_version="1.2.3",  # other extra keys
        metadata={"retry": 0},
    )
    response = await post(http, EVENT_PATH, org_key, sdk_event)

    assert response.status_code == 200, response.text
    [stored] = await events(app)
    assert stored.id == response.json()["event_id"]
    assert stored.latency_ms == 17
    assert json.loads(stored.args or "") == {"location": "Paris", "options": {"units": "metric", "days": [1, 2]}}
    assert json.loads(stored.result or "") == {"temperature": 21}
    assert abs(stored.ts_ms - stored.received_at_ms) < 5_000  # no timestamp: the time it arrived


async def test_event_timestamp_in_seconds_or_milliseconds_is_stored_as_milliseconds(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = await open_session(http, org_key)
    for event_id, timestamp in (("evt_seconds", 1_700_000_000.25), ("evt_millis", 1_700_000_000_250)):
        body = event_body(session_id, event_id=event_id, timestamp=timestamp)
        assert (await post(http, EVENT_PATH, org_key, body)).status_code == 200

    assert {row.id: row.ts_ms for row in await events(app)} == {
        "evt_seconds": 1_700_000_000_250,
        "evt_millis": 1_700_000_000_250,
    }


# -- bad bodies --------------------------------------------------------------------------------------


BAD_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("bad-uuid", {"session_id": "not-a-uuid"}, "session_id"),
    ("missing-primitive-type", {"primitive_type": None}, "primitive_type"),
    ("unknown-primitive-type", {"primitive_type": "widget"}, "primitive_type"),
    ("latency-not-a-number", {"latency": "fast"}, "latency"),
    ("success-not-a-bool", {"success": "maybe"}, "success"),
    ("name-not-a-string", {"primitive_name": 42}, "primitive_name"),
    ("negative-latency", {"latency": -1}, "latency"),
    ("missing-success", {"success": None}, "success"),
    ("infinite-latency", {"latency": float("inf")}, "latency"),
    ("nan-latency", {"latency": float("nan")}, "latency"),
    ("infinite-timestamp", {"timestamp": float("inf")}, "timestamp"),
    ("timestamp-past-year-9999", {"timestamp": 1e300}, "timestamp"),
    ("args-lone-surrogate", {"args": "\ud800"}, "args"),
    ("result-lone-surrogate", {"result": "ok \udfff"}, "result"),
]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS])
async def test_bad_event_body_is_400_naming_the_field_and_stores_nothing(
    app: Starlette, http: httpx.AsyncClient, org_key: str, changes: dict[str, Any], field: str
) -> None:
    session_id = await open_session(http, org_key)
    body = event_body(session_id) | changes
    body = {key: value for key, value in body.items() if value is not None}  # None: leave the field out
    response = await post(http, EVENT_PATH, org_key, body)

    assert error_field(response, 400) == field
    assert await events(app) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"session_id": "123"}, "session_id"),
        ({"client_config": None}, "client_config"),
        ({"tools": "a"}, "tools"),
        ({"timestamp": float("inf")}, "timestamp"),
    ],
    ids=["bad-uuid", "missing-client-config", "tools-not-a-list", "infinite-timestamp"],
)
async def test_bad_session_body_is_400_naming_the_field_and_stores_nothing(
    app: Starlette, http: httpx.AsyncClient, org_key: str, changes: dict[str, Any], field: str
) -> None:
    body = {key: value for key, value in (session_body() | changes).items() if value is not None}
    response = await post(http, SESSION_PATH, org_key, body)

    assert error_field(response, 400) == field
    assert await sessions(app) == []


async def test_json_args_escaping_a_lone_surrogate_are_stored_escaped(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = await open_session(http, org_key, user_data={"nick": "\ud83d"})
    args = json.dumps({"note": "half \ud800 a pair", "email": "ada@example.com"})  # valid JSON text, odd content
    response = await post(http, EVENT_PATH, org_key, event_body(session_id, args=args, result=json.dumps(["\udc00"])))

    assert response.status_code == 200, response.text
    [stored] = await events(app)
    assert json.loads(stored.args or "") == {"note": "half \ud800 a pair", "email": hash_text("ada@example.com")}
    assert json.loads(stored.result or "") == ["\udc00"]
    assert [row.user_data for row in await sessions(app)] == [{"nick": "\ud83d"}]


@pytest.mark.parametrize("path", [SESSION_PATH, EVENT_PATH, BATCH_PATH])
@pytest.mark.parametrize("content", [b"{not json", b"", b'{"session_id": "x",}'], ids=["garbage", "empty", "comma"])
async def test_body_that_is_not_json_is_400_naming_the_body(
    http: httpx.AsyncClient, org_key: str, path: str, content: bytes
) -> None:
    response = await http.post(path, content=content, headers=headers(org_key))

    assert error_field(response, 400) == "body"


@pytest.mark.parametrize("path", [SESSION_PATH, EVENT_PATH, BATCH_PATH])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_body_declared_as_something_other_than_json_is_415(
    app: Starlette, http: httpx.AsyncClient, org_key: str, path: str, content_type: str
) -> None:
    body = json.dumps(session_body())
    response = await http.post(path, content=body, headers={"Content-Type": content_type, "X-Org-Id": org_key})

    assert response.status_code == 415
    assert isinstance(response.json()["error"], str)
    assert await sessions(app) == []


async def test_event_of_a_session_never_captured_is_404_naming_the_session(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    response = await post(http, EVENT_PATH, org_key, event_body(str(uuid.uuid4())))

    assert error_field(response, 404) == "session_id"
    assert await events(app) == []


# -- who may write -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SESSION_PATH, EVENT_PATH, BATCH_PATH])
@pytest.mark.parametrize(
    "org_id",
    [None, "", "   ", "org_unknown-key-0123456789", "x" * 500],
    ids=["missing", "empty", "blank", "unknown", "long"],
)
async def test_missing_or_unknown_org_id_is_401_and_stores_nothing(
    app: Starlette, http: httpx.AsyncClient, path: str, org_id: str | None
) -> None:
    body: Any = session_body() if path != BATCH_PATH else {"sessions": [session_body()]}
    response = await post(http, path, org_id, body)

    assert error_field(response, 401) == "X-Org-Id"
    assert await sessions(app) == []


async def test_org_id_is_checked_before_the_body(http: httpx.AsyncClient) -> None:
    response = await http.post(EVENT_PATH, content=b"{not json", headers=headers("org_nope"))

    assert error_field(response, 401) == "X-Org-Id"


async def test_revoked_org_key_is_401(app: Starlette, http: httpx.AsyncClient, org_key: str) -> None:
    session_id = await open_session(http, org_key)
    [key] = (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys"))["keys"]
    await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{key['id']}")

    after_session = await post(http, SESSION_PATH, org_key, session_body())
    after_event = await post(http, EVENT_PATH, org_key, event_body(session_id))

    assert error_field(after_session, 401) == "X-Org-Id"
    assert error_field(after_event, 401) == "X-Org-Id"
    assert [row.id for row in await sessions(app)] == [session_id]
    assert await events(app) == []


@pytest.mark.parametrize("kind", ["pk", "sk", "read"])
async def test_key_of_another_kind_is_401(app: Starlette, http: httpx.AsyncClient, kind: str) -> None:
    other_key = await create_key(http, DEMO, kind)
    response = await post(http, SESSION_PATH, other_key, session_body())

    assert error_field(response, 401) == "X-Org-Id"
    assert await sessions(app) == []


async def test_org_key_of_one_gateway_writes_into_that_gateway_only(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    response = await http.post("/v1/gateways", headers=ADMIN_HEADERS, json={"id": "acme", "name": "Acme"})
    assert response.status_code == 201, response.text
    acme_key = await create_key(http, "acme", "org")

    acme_session = await open_session(http, acme_key)
    acme_event = await post(http, EVENT_PATH, acme_key, event_body(acme_session, event_id="evt_acme"))
    # The demo key cannot attach events to acme's session: sessions are per gateway.
    cross = await post(http, EVENT_PATH, org_key, event_body(acme_session, event_id="evt_cross"))
    # The same session and event ids under demo are demo's own rows.
    same_ids = await post(http, SESSION_PATH, org_key, session_body(acme_session))
    demo_event = await post(http, EVENT_PATH, org_key, event_body(acme_session, event_id="evt_acme"))

    assert acme_event.status_code == 200
    assert error_field(cross, 404) == "session_id"
    assert same_ids.status_code == 200
    assert demo_event.status_code == 200
    assert [(row.gateway_id, row.id) for row in await sessions(app, "acme")] == [("acme", acme_session)]
    assert [(row.gateway_id, row.id) for row in await events(app, "acme")] == [("acme", "evt_acme")]
    assert [(row.gateway_id, row.id) for row in await sessions(app, DEMO)] == [(DEMO, acme_session)]
    assert [(row.gateway_id, row.id) for row in await events(app, DEMO)] == [(DEMO, "evt_acme")]


# -- dedupe and batches ------------------------------------------------------------------------------


async def test_same_event_id_twice_stores_one_event_and_answers_the_same_id(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = await open_session(http, org_key)
    body = event_body(session_id, event_id="evt_retry-1")
    first = await post(http, EVENT_PATH, org_key, body)
    second = await post(http, EVENT_PATH, org_key, body | {"latency": 999})  # a retry never overwrites

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"success": True, "event_id": "evt_retry-1"}
    stored = await events(app)
    assert [(row.id, row.latency_ms) for row in stored] == [("evt_retry-1", 342)]


async def test_events_without_an_event_id_get_distinct_ids(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = await open_session(http, org_key)
    ids = [(await post(http, EVENT_PATH, org_key, event_body(session_id))).json()["event_id"] for _ in range(3)]

    assert len(set(ids)) == 3
    assert sorted(row.id for row in await events(app)) == sorted(ids)


async def test_same_session_twice_is_answered_both_times_and_stored_once(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    body = session_body()
    first = await post(http, SESSION_PATH, org_key, body)
    second = await post(http, SESSION_PATH, org_key, body | {"client_config": "other"})

    assert first.json() == second.json() == {"session_id": body["session_id"]}
    assert [(row.id, row.client_config) for row in await sessions(app)] == [(body["session_id"], "claude-desktop")]


async def test_batch_stores_sessions_then_events_with_a_status_per_item(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    known = await open_session(http, org_key)
    new = str(uuid.uuid4())
    missing = str(uuid.uuid4())
    batch = {
        "sessions": [session_body(new), session_body(known)],
        "events": [
            event_body(new, event_id="evt_1"),  # its session is in this very batch
            event_body(known, event_id="evt_2", primitive_type="resource", primitive_name="file://readme.txt"),
            event_body(new, event_id="evt_1"),  # a duplicate within the batch
            event_body(missing, event_id="evt_3"),
            event_body(known, event_id="evt_4", primitive_type="prompt", success=False),
        ],
    }
    response = await post(http, BATCH_PATH, org_key, batch)
    again = await post(http, BATCH_PATH, org_key, {"events": [event_body(known, event_id="evt_2")]})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "sessions": [{"session_id": new, "status": "stored"}, {"session_id": known, "status": "duplicate"}],
        "events": [
            {"event_id": "evt_1", "status": "stored"},
            {"event_id": "evt_2", "status": "stored"},
            {"event_id": "evt_1", "status": "duplicate"},
            {"event_id": "evt_3", "status": "unknown_session"},
            {"event_id": "evt_4", "status": "stored"},
        ],
    }
    assert again.json()["events"] == [{"event_id": "evt_2", "status": "duplicate"}]
    assert sorted(row.id for row in await sessions(app)) == sorted([known, new])
    stored = {row.id: (row.session_id, row.primitive_type, row.name, row.success) for row in await events(app)}
    assert stored == {
        "evt_1": (new, "tool", "get_weather", True),
        "evt_2": (known, "resource", "file://readme.txt", True),
        "evt_4": (known, "prompt", "get_weather", False),
    }


async def test_batch_with_one_bad_item_is_400_naming_it_and_stores_nothing(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    session_id = str(uuid.uuid4())
    batch = {
        "sessions": [session_body(session_id)],
        "events": [event_body(session_id), event_body(session_id, latency=-5)],
    }
    response = await post(http, BATCH_PATH, org_key, batch)

    assert error_field(response, 400) == "events.1.latency"
    assert await sessions(app) == []
    assert await events(app) == []


# -- privacy -----------------------------------------------------------------------------------------


async def test_emails_and_client_ip_are_stored_only_as_hashes(
    app: Starlette, http: httpx.AsyncClient, org_key: str, db_path: Path
) -> None:
    args_email = "Grace.Hopper@Navy.example.com"
    user_email = "ada.lovelace@engines.example.org"
    text_email = "charles.babbage@difference.example.net"
    ip = "203.0.113.77"
    session_id = await open_session(
        http, org_key, ip=ip, user_data={"userId": "user123", "email": user_email, "role": "admin"}
    )
    result = {"content": [{"type": "text", "text": f"Booked. We will write to {text_email} tomorrow."}]}
    event = event_body(
        session_id,
        event_id="evt_private",
        args=json.dumps({"name": "Grace", "email": args_email}),
        result=json.dumps(result),
    )
    assert (await post(http, EVENT_PATH, org_key, event)).status_code == 200

    [stored_session] = await sessions(app)
    [stored_event] = await events(app)
    assert stored_session.user_data == {"userId": "user123", "email": hash_text(user_email), "role": "admin"}
    assert stored_session.ip_hash is not None and len(stored_session.ip_hash) >= 32
    assert ip not in stored_session.ip_hash
    assert json.loads(stored_event.args or "") == {"name": "Grace", "email": hash_text(args_email.lower())}
    stored_text = json.loads(stored_event.result or "")["content"][0]["text"]
    assert stored_text == f"Booked. We will write to {hash_text(text_email)} tomorrow."
    on_disk = database_bytes(db_path).lower()
    for secret in (args_email, user_email, text_email, ip):
        assert secret.lower().encode() not in on_disk, secret


async def test_the_same_ip_hashes_the_same_within_a_day_and_no_ip_is_no_hash(
    app: Starlette, http: httpx.AsyncClient, org_key: str
) -> None:
    first = await open_session(http, org_key, ip="198.51.100.7")
    second = await open_session(http, org_key, ip="198.51.100.7")
    other = await open_session(http, org_key, ip="198.51.100.8")
    none = await open_session(http, org_key, ip="")

    hashes = {row.id: row.ip_hash for row in await sessions(app)}
    assert hashes[first] == hashes[second]
    assert hashes[first] != hashes[other]
    assert hashes[none] is None
