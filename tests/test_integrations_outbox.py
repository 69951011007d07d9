"""Integrations: the outbox commits deliveries with their event, the worker sends them (retrying 5xx, 429 and
timeouts with backoff, giving up on 4xx, dead-lettering after N tries), `/track` answers 502 when every synchronous
integration fails, and secrets are never answered nor stored in clear. The platform is the signed webhook; the
receiver is a real HTTP server on loopback (`integrations_support`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.accounts.access import READ_KEY_COOKIE
from mcp_gateway.cli import run
from mcp_gateway.integrations.crypto import KEY_FILE_NAME
from mcp_gateway.store.retention import prune

from .integrations_support import (
    Answer,
    WebhookReceiver,
    create_integration,
    integration_status,
    wait_until,
    webhook_integration,
    webhook_receiver,
)
from .support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    DEMO,
    BoundedASGITransport,
    create_key,
    database_bytes,
    database_url,
    lifespan_running,
    scrape,
    serve_in_thread,
    stored_rows,
    value,
)

FAST: dict[str, Any] = {
    "forward_poll_seconds": 0.02,
    "forward_retry_base_seconds": 0.02,
    "forward_retry_max_seconds": 0.1,
    "forward_max_attempts": 3,
    "forward_timeout_seconds": 2.0,
}
"""Retry and poll quickly, so the tests wait little."""

EMAIL = "Jane.Doe@Example.com "
TRACK = {"event_name": "Purchase", "user": {"email": EMAIL, "phone": "+1 (234) 567-890"}, "custom_data": {"value": 9}}


def settings_for(db_path: Path, database_url: str | None, **changes: Any) -> Settings:
    return Settings(
        db_path=db_path,
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        retention_days=0,
        track_rate_limit=100_000,
        **{**FAST, **changes},
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    with webhook_receiver(tmp_path) as receiver:
        yield receiver


@pytest.fixture
async def gateway(db_path: Path, database_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process, its lifespan (and delivery worker) running."""
    app: Starlette = create_app(settings_for(db_path, database_url))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def track(http: httpx.AsyncClient, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return await http.post("/track", json=body or TRACK, headers={"X-Gateway-ID": DEMO, **headers})


def deliveries(db_path: Path) -> list[dict[str, Any]]:
    return stored_rows(db_path, "SELECT * FROM deliveries ORDER BY seq")


def execute(db_path: Path, sql: str, *params: Any) -> None:
    """Change the test's database behind the gateway's back (`?` placeholders)."""
    if url := database_url():
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), params)
        return
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute(sql, params)
        conn.commit()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_tracked_event_is_delivered_signed_with_hashed_identifiers_over_a_real_socket(
    receiver: WebhookReceiver, db_path: Path, database_url: str | None
) -> None:
    with serve_in_thread(create_app(settings_for(db_path, database_url)), db_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            integration_id = await create_integration(http, webhook_integration(receiver))
            answer = await track(http, Cookie="_fbp=fb.1.1700000000.42")
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "confirmed"
            await wait_until(lambda: receiver.requests() >= 1)
            await wait_until(lambda: _sent(http, integration_id))
            status = await integration_status(http, integration_id)
            scraped = await scrape(http)

    [message] = receiver.received
    assert message.verified
    [event] = message.body["data"]
    assert event["event_id"] == answer.json()["receipt"]["data"]["id"]
    assert event["event_name"] == "Purchase"
    assert event["user"]["em"] == sha256(EMAIL.strip().lower())
    assert event["user"]["ph"] == sha256("1234567890")
    assert event["user"]["fbp"] == "fb.1.1700000000.42"
    assert "client_ip_address" not in event["user"]  # asynchronous: the IP is gone by the time it is sent
    assert event["custom_data"] == {"value": 9}
    assert status["deliveries"] == {"pending": 0, "sent": 1, "failed": 0, "dead": 0, "skipped": 0}
    assert status["p95_latency_ms"] is not None and status["last_error"] is None
    assert value(scraped, "mcp_gateway_deliveries_total", kind="webhook", outcome="sent") == 1
    [row] = deliveries(db_path)
    assert "Jane" not in row["payload"] and "example.com" not in row["payload"].lower()


async def _sent(http: httpx.AsyncClient, integration_id: str, count: int = 1) -> bool:
    status = await integration_status(http, integration_id)
    return bool(status["deliveries"]["sent"] >= count)


async def test_secrets_are_never_answered_and_not_stored_in_clear(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    body = webhook_integration(receiver)
    created = await gateway.post(f"/v1/gateways/{DEMO}/integrations", headers=ADMIN_HEADERS, json=body)
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    assert created.json()["config"]["has_secret"] is True
    patched = await gateway.patch(
        f"/v1/gateways/{DEMO}/integrations/{integration_id}", headers=ADMIN_HEADERS, json={"name": "renamed"}
    )
    listed = await gateway.get(f"/v1/gateways/{DEMO}/integrations", headers=ADMIN_HEADERS)
    shown = await gateway.get(f"/v1/gateways/{DEMO}/integrations/{integration_id}", headers=ADMIN_HEADERS)
    secret_key = receiver.secret.removeprefix("whsec_")
    for response in (created, patched, listed, shown):
        assert response.is_success, response.text
        assert secret_key not in response.text
    assert patched.json()["name"] == "renamed" and patched.json()["config"]["has_secret"] is True
    assert secret_key.encode() not in database_bytes(db_path)
    key_file = db_path.parent / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # the kept (encrypted) secret still signs: a PATCH without it did not lose it
    await track(gateway)
    await wait_until(lambda: receiver.requests() >= 1)
    assert receiver.received[0].verified


async def test_5xx_answers_are_retried_with_backoff_until_the_platform_recovers(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    receiver.script(Answer(500, b'{"error": "upstream down"}'), Answer(503, b"busy"))
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    answer = await track(gateway)
    assert answer.status_code == 200
    await wait_until(lambda: _sent(gateway, integration_id))
    assert receiver.requests() == 3
    assert len(set(receiver.event_ids())) == 1  # the same event, its id each time
    [row] = deliveries(db_path)
    assert row["status"] == "sent" and row["attempts"] == 3
    status = await integration_status(gateway, integration_id)
    assert status["last_error"] == "busy"


async def test_a_429_retry_after_is_honoured(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    receiver.script(Answer(429, b'{"error": "slow down"}', {"Retry-After": "3600"}))
    await create_integration(gateway, webhook_integration(receiver))
    before_ms = int(time.time() * 1000)
    await track(gateway)
    await wait_until(lambda: deliveries(db_path)[0]["last_error"] is not None)
    [row] = deliveries(db_path)
    assert row["status"] == "pending"
    assert row["due_at_ms"] >= before_ms + 3600 * 1000
    assert receiver.requests() == 1


async def test_a_4xx_fails_for_good_and_keeps_the_platform_error(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    receiver.script(Answer(400, b'{"error": "field value is invalid"}'))
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    await track(gateway)
    await wait_until(lambda: deliveries(db_path)[0]["status"] != "pending")
    [row] = deliveries(db_path)
    assert row["status"] == "failed" and "field value is invalid" in row["last_error"]
    status = await integration_status(gateway, integration_id)
    assert status["deliveries"]["failed"] == 1 and "field value is invalid" in status["last_error"]
    assert receiver.requests() == 1


async def test_timeouts_are_retried_then_dead_lettered_after_the_last_try(
    receiver: WebhookReceiver, db_path: Path, database_url: str | None
) -> None:
    receiver.default = Answer(delay_s=2.0)  # always slower than the timeout
    app = create_app(settings_for(db_path, database_url, forward_timeout_seconds=0.2, forward_max_attempts=2))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            integration_id = await create_integration(http, webhook_integration(receiver))
            await track(http)
            await wait_until(lambda: deliveries(db_path)[0]["status"] == "dead")
            status = await integration_status(http, integration_id)
    [row] = deliveries(db_path)
    assert row["attempts"] == 2 and "timed out" in row["last_error"]
    assert status["deliveries"]["dead"] == 1


async def test_sync_mode_answers_502_when_every_integration_fails_and_keeps_the_event(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    receiver.script(Answer(500, b"down"))
    await create_integration(gateway, webhook_integration(receiver, sync=True))
    answer = await track(gateway, {**TRACK, "event_id": "evt-sync-1"}, **{"User-Agent": "test-browser/1.0"})
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert body["error"] == "All Providers Failed"
    assert body["receipt"]["data"]["id"] == "evt-sync-1"
    assert stored_rows(db_path, "SELECT id FROM events WHERE id = ?", "evt-sync-1") == [{"id": "evt-sync-1"}]
    # sent from the request itself, with the client's IP and user agent, which are never stored
    [event] = receiver.received[0].body["data"]
    assert event["user"]["client_ip_address"] == "203.0.113.9"
    assert event["user"]["client_user_agent"] == "test-browser/1.0"
    # then the worker retries it (without them) once the platform recovers
    await wait_until(lambda: deliveries(db_path)[0]["status"] == "sent")
    assert "203.0.113.9" not in deliveries(db_path)[0]["payload"]
    assert b"203.0.113.9" not in database_bytes(db_path)


async def test_sync_mode_answers_200_when_one_integration_takes_the_event(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    await create_integration(gateway, webhook_integration(receiver, sync=True))
    answer = await track(gateway)
    assert answer.status_code == 200, answer.text
    assert receiver.requests() == 1  # sent before the answer
    assert deliveries(db_path)[0]["status"] == "sent"


async def test_an_integration_gets_only_the_events_its_filter_names(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    await create_integration(gateway, webhook_integration(receiver, config={"events": ["Purchase"]}))
    await track(gateway, {"event_name": "AddToCart"})
    await track(gateway, {"event_name": "Purchase", "event_id": "evt-wanted"})
    await wait_until(lambda: receiver.requests() >= 1)
    assert [row["event_id"] for row in deliveries(db_path)] == ["evt-wanted"]


async def test_replay_sends_a_time_window_again(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    await track(gateway, {**TRACK, "event_id": "evt-old", "timestamp": 1_700_000_000})
    await track(gateway, {**TRACK, "event_id": "evt-new"})
    await wait_until(lambda: _sent(gateway, integration_id, 2))
    replayed = await gateway.post(
        f"/v1/gateways/{DEMO}/integrations/{integration_id}/replay",
        headers=ADMIN_HEADERS,
        json={"since_ms": 1_699_999_000_000, "until_ms": 1_700_001_000_000},
    )
    assert replayed.status_code == 200 and replayed.json() == {"replayed": 1}
    await wait_until(lambda: receiver.event_ids().count("evt-old") == 2)
    assert receiver.event_ids().count("evt-new") == 1


async def test_the_test_endpoint_answers_the_platforms_verdict(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    path = f"/v1/gateways/{DEMO}/integrations/{integration_id}/test"
    ok = await gateway.post(path, headers=ADMIN_HEADERS)
    assert ok.status_code == 200 and ok.json()["ok"] is True and ok.json()["outcome"] == "delivered"
    receiver.script(Answer(401, b'{"error": "bad signature"}'))
    refused = await gateway.post(path, headers=ADMIN_HEADERS, json={"event_name": "Purchase"})
    assert refused.json()["outcome"] == "failed" and "bad signature" in refused.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "myspace", "config": {}}, "kind"),
        ({"kind": "meta", "config": {"pixel_id": "not-a-number", "access_token": "t"}}, "config.pixel_id"),
        ({"kind": "webhook", "config": {"url": "ftp://x", "secret": "whsec_" + "A" * 32}}, "config.url"),
        ({"kind": "webhook", "config": {"url": "http://x", "secret": "whsec_x"}, "extra": 1}, "extra"),
        ({"kind": "meta", "config": {"pixel_id": "1", "access_token": "t", "events": "Purchase"}}, "config.events"),
    ],
)
async def test_a_bad_integration_is_422_naming_the_field(
    gateway: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await gateway.post(f"/v1/gateways/{DEMO}/integrations", headers=ADMIN_HEADERS, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_unknown_gateways_integrations_and_tokens_are_refused(gateway: httpx.AsyncClient) -> None:
    missing = await gateway.get("/v1/gateways/nope/integrations", headers=ADMIN_HEADERS)
    assert missing.status_code == 404
    unknown = await gateway.delete(f"/v1/gateways/{DEMO}/integrations/int_missing", headers=ADMIN_HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]
    anonymous = await gateway.get(f"/v1/gateways/{DEMO}/integrations")
    assert anonymous.status_code == 401
    not_json = await gateway.post(
        f"/v1/gateways/{DEMO}/integrations", headers={**ADMIN_HEADERS, "Content-Type": "application/json"}, content="{"
    )
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    missing_replay = await gateway.post(
        f"/v1/gateways/{DEMO}/integrations/int_missing/replay", headers=ADMIN_HEADERS, json={"since_ms": 5}
    )
    assert missing_replay.status_code == 404


async def test_bad_updates_and_replays_are_422_naming_the_field(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    path = f"/v1/gateways/{DEMO}/integrations/{integration_id}"
    for body, field in (
        ({"config": {"url": "not a url"}}, "config.url"),
        ({"config": {"colour": "blue"}}, "config.colour"),
        ({"enabled": "maybe"}, "enabled"),
        ({"kind": "meta"}, "kind"),
    ):
        response = await gateway.patch(path, headers=ADMIN_HEADERS, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field
    windows: list[tuple[dict[str, int], str]] = [
        ({"since_ms": 10, "until_ms": 5}, "until_ms"),
        ({"since_ms": -1}, "since_ms"),
        ({}, "since_ms"),
    ]
    for window, field in windows:
        response = await gateway.post(path + "/replay", headers=ADMIN_HEADERS, json=window)
        assert response.status_code == 422, (window, response.text)
        assert response.json()["field"] == field
    unchanged = await gateway.get(path, headers=ADMIN_HEADERS)
    assert unchanged.json()["config"]["url"] == receiver.url


async def test_deleting_an_integration_stops_its_deliveries(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    integration_id = await create_integration(gateway, webhook_integration(receiver))
    deleted = await gateway.delete(f"/v1/gateways/{DEMO}/integrations/{integration_id}", headers=ADMIN_HEADERS)
    assert deleted.status_code == 200 and deleted.json() == {"id": integration_id, "deleted": True}
    await track(gateway)
    assert deliveries(db_path) == []


def test_the_cli_adds_lists_and_removes_an_integration_without_printing_its_secret(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "whsec_" + "Q" * 40
    config = tmp_path / "hook.json"
    config.write_text(json.dumps({"url": "http://127.0.0.1:9/hook", "secret": secret}))
    db = ["--db", str(db_path)]
    assert run(["integrations", "add", "--gateway", DEMO, "--kind", "webhook", "--config", f"@{config}", *db]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["config"]["has_secret"] is True and secret not in json.dumps(added)
    assert run(["integrations", "list", "--gateway", DEMO, *db]) == 0
    listed = capsys.readouterr().out
    assert added["id"] in listed and "pending=0" in listed and secret not in listed
    bad = ["integrations", "add", "--gateway", DEMO, "--kind", "webhook", "--config", '{"url": "x"}', *db]
    assert run(bad) == 1
    assert "error: secret" in capsys.readouterr().err  # the field at fault
    assert run(["integrations", "remove", "--gateway", DEMO, added["id"], *db]) == 0
    assert capsys.readouterr().out.split() == [added["id"], "deleted"]
    assert run(["integrations", "list", "--gateway", DEMO, *db]) == 0
    assert capsys.readouterr().out == ""


async def test_a_read_key_sees_delivery_status_in_the_analytics_and_the_dashboard_but_no_config(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await create_integration(gateway, webhook_integration(receiver, name="Orders hook"))
    key = await create_key(gateway, kind="read")
    read = {"Authorization": f"Bearer {key}"}

    async def settled(count: int) -> bool:
        answer = (await gateway.get("/analytics/integrations", headers=read)).json()
        counts = answer["integrations"][0]["status"]["deliveries"]
        return bool(counts["sent"] + counts["failed"] == count)

    receiver.script(Answer(400, b'{"error": "unknown event"}'))
    await track(gateway)
    await wait_until(lambda: settled(1))
    await track(gateway)  # after the refusal, so in a request of its own
    await wait_until(lambda: settled(2))
    answer = (await gateway.get("/analytics/integrations", headers=read)).json()
    [integration] = answer["integrations"]
    assert integration["name"] == "Orders hook" and integration["kind"] == "webhook"
    assert "config" not in integration
    assert integration["status"]["deliveries"]["failed"] == 1
    assert "unknown event" in integration["status"]["last_error"]
    card = await gateway.get("/dashboard/sections/integrations", headers={"Cookie": f"{READ_KEY_COOKIE}={key}"})
    assert card.status_code == 200, card.text
    assert "Orders hook" in card.text and "unknown event" in card.text
    assert receiver.secret.removeprefix("whsec_") not in card.text + json.dumps(answer)


async def test_deliveries_are_pruned_with_the_events_they_carry(
    receiver: WebhookReceiver, db_path: Path, database_url: str | None
) -> None:
    app = create_app(settings_for(db_path, database_url))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            await create_integration(http, webhook_integration(receiver))
            await track(http, {**TRACK, "event_id": "evt-2023", "timestamp": 1_700_000_000})
            await track(http, {**TRACK, "event_id": "evt-now"})
            deleted = await prune(app.state.services.store, 1_750_000_000_000)
    assert deleted["deliveries"] == 1
    assert [row["event_id"] for row in deliveries(db_path)] == ["evt-now"]


async def test_a_huge_error_answer_is_read_only_in_part_and_kept_short(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    receiver.default = Answer(500, b"e" * 2_000_000)
    await create_integration(gateway, webhook_integration(receiver))
    await track(gateway)
    await wait_until(lambda: deliveries(db_path)[0]["status"] == "dead")
    [row] = deliveries(db_path)
    assert row["attempts"] == FAST["forward_max_attempts"]
    assert row["last_error"].startswith("gave up after 3 tries: eeee") and len(row["last_error"]) <= 1000


async def test_a_sync_integration_whose_secret_cannot_be_opened_fails_and_the_event_is_kept(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    integration_id = await create_integration(gateway, webhook_integration(receiver, sync=True))
    execute(db_path, "UPDATE integrations SET secrets = 'not-a-token' WHERE id = ?", integration_id)  # a wrong key
    answer = await track(gateway)
    assert answer.status_code == 502, answer.text  # seed 000: "check integrations config"
    assert answer.json()["error"] == "All Providers Failed" and answer.json()["status"] == "confirmed"
    [row] = deliveries(db_path)
    assert row["status"] in ("pending", "dead") and "decrypt" in row["last_error"]  # retried, then dead-lettered
    assert receiver.requests() == 0


async def test_an_integration_with_an_unreadable_secret_is_retried_without_holding_up_the_others(
    gateway: httpx.AsyncClient, receiver: WebhookReceiver, db_path: Path
) -> None:
    broken = await create_integration(gateway, webhook_integration(receiver, name="broken"))
    working = await create_integration(gateway, webhook_integration(receiver, name="working"))
    execute(db_path, "UPDATE integrations SET secrets = 'not-a-token' WHERE id = ?", broken)
    await track(gateway)
    await wait_until(lambda: _sent(gateway, working))
    await wait_until(lambda: stored_rows(db_path, "SELECT 1 FROM deliveries WHERE status = 'dead'"))
    [dead] = stored_rows(db_path, "SELECT integration_id, last_error FROM deliveries WHERE status = 'dead'")
    assert dead["integration_id"] == broken and "decrypt" in dead["last_error"]
