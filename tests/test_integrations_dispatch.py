"""The dispatcher on its own: deliveries as claimed from the outbox, sent to the fake Meta over a real socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from mcp_gateway.integrations.dispatch import Dispatcher, RetryPolicy
from mcp_gateway.integrations.platforms import PLATFORMS
from mcp_gateway.integrations.registry import Integration
from mcp_gateway.store.outbox import Delivery

from .fake_platforms import FakePlatforms, serve_fake_platforms


@pytest.fixture
def fakes() -> Iterator[FakePlatforms]:
    with serve_fake_platforms() as fakes:
        yield fakes


def delivery(seq: int, event_id: str, payload: str) -> Delivery:
    return Delivery(seq, "int_1", "demo", event_id, payload, attempts=1, created_at_ms=int(time.time() * 1000))


async def test_an_unreadable_payload_fails_alone_and_the_rest_of_the_batch_is_delivered(fakes: FakePlatforms) -> None:
    meta = PLATFORMS["meta"]
    config = meta.check_config(fakes.configs()["meta"])
    integration = Integration("int_1", "demo", "meta", "", True, False, config, 0, 0)
    good = {
        "event_id": "evt-good",
        "event_name": "Purchase",
        "event_time_ms": int(time.time() * 1000),
        "action_source": "website",
        "event_source_url": "https://shop.example/",
        "user": {"em": "a" * 64, "client_user_agent": "Browser/1"},
        "custom_data": {},
        "gateway_id": "demo",
    }
    deliveries = [delivery(1, "evt-bad", "{not json"), delivery(2, "evt-good", json.dumps(good))]
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(client, RetryPolicy(3, 1.0, 10.0), timeout_s=5.0)
        settlements = await dispatcher.deliver(integration, meta, deliveries)
    assert sorted((s.seq, s.status) for s in settlements) == [(1, "failed"), (2, "sent")]
    assert [event["event_id"] for event in fakes.meta.accepted_events()] == ["evt-good"]
    assert fakes.meta.accepted_events()[0]["user_data"]["client_user_agent"] == "Browser/1"
    assert dispatcher.stats.outcomes == {("meta", "failed"): 1, ("meta", "sent"): 1}
