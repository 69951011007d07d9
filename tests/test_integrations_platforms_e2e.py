"""One tracked event through the outbox to every platform's fake (`fake_platforms`: each checks the request
against the platform's documented schema), and a Meta throttling answer retried by the worker until Meta
recovers."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import create_app

from .fake_platforms import FakePlatforms, serve_fake_platforms
from .integrations_support import create_integration, integration_status, wait_until
from .support import ADMIN_HEADERS, DEMO, BoundedASGITransport, jsonrpc_request, lifespan_running
from .test_integrations_outbox import settings_for

EMAIL = "Buyer@Example.com"
PURCHASE = {
    "event_name": "Purchase",
    "event_id": "evt-e2e-1",
    "url": "https://shop.example/checkout",
    "anonymous_id": "visitor-42",
    "user": {"email": EMAIL, "fbp": "fb.1.1700000000.7"},
    "custom_data": {"value": 12.5, "currency": "EUR"},
}


@pytest.fixture
def fakes() -> Iterator[FakePlatforms]:
    with serve_fake_platforms() as fakes:
        yield fakes


@pytest.fixture
def app(db_path: Path, database_url: str | None) -> Starlette:
    return create_app(settings_for(db_path, database_url))


@pytest.fixture
async def gateway(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def test_one_event_reaches_every_platform_in_its_documented_shape(
    gateway: httpx.AsyncClient, fakes: FakePlatforms
) -> None:
    for kind, config in fakes.configs().items():
        await create_integration(gateway, {"kind": kind, "name": kind, "config": config})
    answer = await gateway.post("/track", json=PURCHASE, headers={"X-Gateway-ID": DEMO, "User-Agent": "Browser/1"})
    assert answer.status_code == 200, answer.text
    endpoints = (fakes.meta, fakes.ga4, fakes.tiktok, fakes.webhook)
    await wait_until(lambda: all(endpoint.accepted_events() for endpoint in endpoints))
    for endpoint in endpoints:
        assert [problem for received in endpoint.requests for problem in received.problems] == []
    [meta] = fakes.meta.accepted_events()
    assert meta["event_id"] == "evt-e2e-1" and meta["event_name"] == "Purchase"
    assert meta["user_data"]["em"] == [hashlib.sha256(EMAIL.lower().encode()).hexdigest()]
    assert meta["user_data"]["fbp"] == "fb.1.1700000000.7"
    assert meta["event_source_url"] == "https://shop.example/checkout"
    assert meta["custom_data"] == {"value": 12.5, "currency": "EUR"}
    [ga4] = fakes.ga4.accepted_events()
    assert ga4["client_id"] == "visitor-42"


async def test_the_worker_sends_meta_the_browser_user_agent_kept_with_the_delivery(
    gateway: httpx.AsyncClient, fakes: FakePlatforms
) -> None:
    await create_integration(gateway, {"kind": "meta", "config": fakes.configs()["meta"]})
    answer = await gateway.post("/track", json=PURCHASE, headers={"X-Gateway-ID": DEMO, "User-Agent": "Browser/1"})
    assert answer.status_code == 200, answer.text
    await wait_until(fakes.meta.accepted_events)
    [meta] = fakes.meta.accepted_events()
    assert meta["user_data"]["client_user_agent"] == "Browser/1"
    assert "client_ip_address" not in meta["user_data"]  # the worker has no request in flight; no IP is stored


async def test_a_server_event_without_a_visitor_reaches_ga4_with_a_client_id_derived_from_its_user(
    gateway: httpx.AsyncClient, fakes: FakePlatforms
) -> None:
    await create_integration(gateway, {"kind": "ga4", "config": fakes.configs()["ga4"]})
    for event_id in ("srv-1", "srv-2"):
        body = {"event_name": "Purchase", "event_id": event_id, "user": {"external_id": "customer-7"}}
        answer = await gateway.post("/track", json=body, headers={"X-Gateway-ID": DEMO})
        assert answer.status_code == 200, answer.text
    await wait_until(lambda: len(fakes.ga4.accepted_events()) == 2)
    assert [problem for received in fakes.ga4.requests for problem in received.problems] == []
    bodies = [received.json for received in fakes.ga4.requests]
    assert {body["user_id"] for body in bodies} == {hashlib.sha256(b"customer-7").hexdigest()}
    [client_id] = {body["client_id"] for body in bodies}  # the same for both events: one user, one GA4 client
    assert client_id and client_id != bodies[0]["user_id"]


async def test_meta_throttling_is_retried_until_meta_recovers(gateway: httpx.AsyncClient, fakes: FakePlatforms) -> None:
    fakes.meta.fail(2, mode="throttle")
    integration_id = await create_integration(gateway, {"kind": "meta", "config": fakes.configs()["meta"]})
    await gateway.post("/track", json=PURCHASE, headers={"X-Gateway-ID": DEMO})

    async def sent() -> bool:
        return bool((await integration_status(gateway, integration_id))["deliveries"]["sent"] == 1)

    await wait_until(sent)
    assert len(fakes.meta.requests) == 3
    assert [event["event_id"] for event in fakes.meta.accepted_events()] == ["evt-e2e-1"]
    status = await integration_status(gateway, integration_id)
    assert status["last_error"] is not None and "17" in status["last_error"]


async def test_the_test_endpoint_sends_meta_an_event_it_accepts(
    gateway: httpx.AsyncClient, fakes: FakePlatforms
) -> None:
    config = {**fakes.configs()["meta"], "test_event_code": "TEST123"}
    integration_id = await create_integration(gateway, {"kind": "meta", "config": config})
    answer = await gateway.post(f"/v1/gateways/{DEMO}/integrations/{integration_id}/test", headers=ADMIN_HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True and answer.json()["outcome"] == "delivered"
    [received] = fakes.meta.requests
    assert received.problems == [] and received.json["test_event_code"] == "TEST123"


async def test_a_demo_an_agent_books_reaches_meta_as_a_lead_and_only_a_new_booking_does(
    app: Starlette, gateway: httpx.AsyncClient, fakes: FakePlatforms
) -> None:
    configs = fakes.configs()
    await create_integration(gateway, {"kind": "meta", "config": configs["meta"]})
    await create_integration(gateway, {"kind": "ga4", "config": configs["ga4"]})
    webhook = {"kind": "webhook", "config": {**configs["webhook"], "events": ["Purchase"]}}
    purchases_only = await create_integration(gateway, webhook)
    booking = {"name": "book_demo", "arguments": {"name": "Kay", "email": " Kay@Example.com"}}
    for _ in range(2):  # the second call finds the lead already booked: not a new conversion
        answer = await gateway.post("/v1/mcp/sse?gid=demo", json=jsonrpc_request("tools/call", booking))
        assert answer.status_code == 200 and "error" not in answer.json(), answer.text
    answer = await gateway.post("/v1/mcp/sse?gid=demo", json=jsonrpc_request("tools/list"))
    assert answer.status_code == 200, answer.text
    assert await app.state.services.tracking_sink.flush(5.0)

    await wait_until(lambda: fakes.meta.accepted_events() and fakes.ga4.accepted_events())
    assert [problem for received in fakes.meta.requests + fakes.ga4.requests for problem in received.problems] == []
    [lead] = fakes.meta.accepted_events()
    assert (lead["event_name"], lead["action_source"]) == ("Lead", "chat")
    assert lead["user_data"]["em"] == [hashlib.sha256(b"kay@example.com").hexdigest()]
    [ga4] = fakes.ga4.accepted_events()
    assert ga4["name"] == "generate_lead" and ga4["client_id"]
    status = await integration_status(gateway, purchases_only)
    assert sum(status["deliveries"].values()) == 0 and fakes.webhook.requests == []
