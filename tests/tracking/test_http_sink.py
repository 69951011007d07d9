"""`HttpSink` against a fake backend on a real socket: batching, fallback, retries, the spool, fail-safety."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
import pytest
from mcp import Client
from mcp_gateway_tracking import CaptureEvent, CaptureItem, CaptureSession, HttpSink, Spool, track_mcp
from mcp_gateway_tracking.http_sink import BATCH_PATH, EVENT_PATH, SESSION_PATH, parse_retry_after

from .backend import FakeBackend
from .demo_server import build_demo_server

ORG = "org-http"


def session_with_events(count: int) -> list[CaptureItem]:
    session_id = str(uuid.uuid4())
    items: list[CaptureItem] = [CaptureSession(session_id=session_id, client_config="tests 1.0")]
    for n in range(count):
        items.append(
            CaptureEvent(
                session_id=session_id,
                primitive_type="tool",
                primitive_name=f"tool-{n}",
                latency=1.5,
                success=True,
                event_id=str(uuid.uuid4()),
            )
        )
    return items


def event_ids(items: list[CaptureItem]) -> set[str]:
    return {item.event_id for item in items if isinstance(item, CaptureEvent) and item.event_id}


def quick_sink(
    url: str, spool_dir: Path, *, max_retries: int = 3, retry_delay: float = 0.01, timeout: float = 3.0
) -> HttpSink:
    """A sink with batches of three, a long flush interval (tests flush) and short retries."""
    return HttpSink(
        url,
        ORG,
        batch_size=3,
        flush_interval=5,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        spool_dir=spool_dir,
    )


async def test_batches_go_to_the_batch_route_with_the_org_header(backend: FakeBackend, tmp_path: Path) -> None:
    items = session_with_events(5)
    sink = quick_sink(backend.url, tmp_path)
    assert all(sink.submit(item) for item in items)
    assert await sink.flush(5)
    await sink.aclose()
    assert set(backend.events) == event_ids(items) and len(backend.sessions) == 1
    assert backend.orphans == 0
    assert [(hit.path, hit.status, hit.org) for hit in backend.hits] == [(BATCH_PATH, 200, ORG)]
    assert (sink.stats.sent, sink.stats.retried, sink.stats.dropped) == (6, 0, {})


async def test_httpx_logs_the_hosts_requests_but_not_the_sinks_own(
    backend: FakeBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs every request at INFO (httpcore each step at DEBUG); a wrapped server's log must not get a line
    per delivery."""
    caplog.set_level(logging.DEBUG)
    sink = quick_sink(backend.url, tmp_path)
    assert all(sink.submit(item) for item in session_with_events(5))
    assert await sink.flush(5)
    await sink.aclose()
    assert [hit.path for hit in backend.hits] == [BATCH_PATH]
    async with httpx.AsyncClient() as host_client:  # the host application's own client
        await host_client.get(backend.url + "/the-hosts-own-request")
    logged = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert len(logged) == 1 and "/the-hosts-own-request" in logged[0], logged
    steps = [record.getMessage() for record in caplog.records if record.name.startswith("httpcore")]
    assert any("b'GET'" in step for step in steps), steps  # the host's request, step by step
    assert not any("b'POST'" in step for step in steps), steps  # none of the sink's


async def test_a_plain_agnost_backend_is_sent_single_items_after_one_404(tmp_path: Path) -> None:
    backend = FakeBackend(batch_route=False)
    await backend.start()
    try:
        first, second = session_with_events(2), session_with_events(2)
        sink = quick_sink(backend.url, tmp_path)
        for item in first:
            sink.submit(item)
        assert await sink.flush(5)
        for item in second:
            sink.submit(item)
        assert await sink.flush(5)
        await sink.aclose()
    finally:
        await backend.stop()
    assert not sink.uses_batch_endpoint
    assert set(backend.events) == event_ids(first + second)
    assert [hit.status for hit in backend.hits_on(BATCH_PATH)] == [404]
    assert len(backend.hits_on(SESSION_PATH)) == 2 and len(backend.hits_on(EVENT_PATH)) == 4
    assert sink.stats.dropped == {}


async def test_a_rejected_batch_is_dropped_and_counted_without_retrying(backend: FakeBackend, tmp_path: Path) -> None:
    backend.mode = "reject"
    sink = quick_sink(backend.url, tmp_path)
    for item in session_with_events(2):
        sink.submit(item)
    assert await sink.flush(5)
    await sink.aclose()
    assert len(backend.hits) == 1
    assert (sink.stats.retried, sink.stats.dropped) == (0, {"http_400": 3})
    assert not Spool(tmp_path).has_data


async def test_429_retry_after_is_waited_out_before_retrying(backend: FakeBackend, tmp_path: Path) -> None:
    backend.mode, backend.retry_after = "rate_limited", "1"
    sink = quick_sink(backend.url, tmp_path, retry_delay=0.001)
    sink.submit(session_with_events(0)[0])
    assert await sink.flush(10)
    await sink.aclose()
    assert [hit.status for hit in backend.hits] == [429, 200]
    assert backend.hits[1].at - backend.hits[0].at >= 0.95
    assert sink.stats.retried == 1 and len(backend.sessions) == 1


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0.5 ") == 0.5
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_undeliverable_items_are_spooled_and_follow_in_order_once_the_backend_is_up(
    down_backend: FakeBackend, tmp_path: Path
) -> None:
    first, second = session_with_events(4), session_with_events(1)
    sink = quick_sink(down_backend.url, tmp_path, max_retries=1)
    for item in first:
        sink.submit(item)
    assert await sink.flush(5)
    for item in second:  # they queue up behind the spooled ones
        sink.submit(item)
    assert await sink.flush(5)
    assert sink.spool is not None and sink.spool.has_data
    assert sink.stats.sent == 0 and sink.stats.retried > 0 and sink.stats.dropped == {}

    await down_backend.start()
    assert await sink.flush(5)
    await sink.aclose()
    assert set(down_backend.events) == event_ids(first + second)
    assert down_backend.orphans == 0
    assert not sink.spool.has_data and not list(tmp_path.iterdir())


async def test_the_spool_survives_a_restart_and_is_drained_by_the_next_sink(
    down_backend: FakeBackend, tmp_path: Path
) -> None:
    items = session_with_events(3)
    before = quick_sink(down_backend.url, tmp_path, max_retries=0)
    for item in items:
        before.submit(item)
    await before.aclose(timeout=5)
    assert list(tmp_path.glob("*.jsonl"))
    assert down_backend.hits == []

    await down_backend.start()
    after = quick_sink(down_backend.url, tmp_path)
    after.start()
    assert await after.flush(5)
    await after.aclose()
    assert set(down_backend.events) == event_ids(items)
    assert not list(tmp_path.iterdir())


async def test_items_still_queued_when_close_times_out_are_spooled(backend: FakeBackend, tmp_path: Path) -> None:
    backend.mode = "slow"
    items = session_with_events(2)
    sink = quick_sink(backend.url, tmp_path, timeout=30)
    for item in items:
        sink.submit(item)
    started = time.monotonic()
    await sink.aclose(timeout=0.3)
    assert time.monotonic() - started < 2
    spool = Spool(tmp_path)
    spooled = [item for segment in spool.segments() for _, item in spool.read(segment)]
    assert event_ids(spooled) == event_ids(items) and len(spooled) == 3


async def test_a_full_queue_refuses_items_and_a_closed_sink_refuses_all(tmp_path: Path) -> None:
    sink = HttpSink("http://127.0.0.1:9", ORG, max_queue=2, spool_dir=tmp_path, max_spool_bytes=0, max_retries=0)
    items = session_with_events(2)
    assert [sink.submit(item) for item in items] == [True, True, False]
    await sink.aclose(timeout=5)
    assert not sink.submit(items[0])
    assert sink.stats.dropped == {"queue_full": 1, "retries_exhausted": 2, "closed": 1}


Failure = Literal["down", "slow", "error"]


@pytest.mark.parametrize("failure", ["down", "slow", "error"])
async def test_a_failing_backend_changes_no_answer_nor_latency_and_events_arrive_after_recovery(
    failure: Failure, tmp_path: Path
) -> None:
    backend = FakeBackend()
    if failure != "down":
        backend.mode = failure
        await backend.start()
    server = build_demo_server()
    tracker = track_mcp(
        server,
        ORG,
        endpoint=backend.url,
        spool_dir=tmp_path,
        batch_size=1,
        flush_interval=0.01,
        retry_delay=0.01,
        max_retries=2,
        timeout=0.3,
    )
    try:
        async with Client(server, mode="legacy") as client:
            for n in range(5):
                started = time.perf_counter()
                result = await client.call_tool("add", {"a": n, "b": 1})
                assert time.perf_counter() - started < 0.25
                assert result.structured_content == {"result": n + 1}
        if failure == "down":
            await backend.start()
        else:
            backend.mode = "up"
        assert await tracker.flush(15)
        await backend.wait_for(lambda: len(backend.events_named("add")) == 5)
        assert backend.orphans == 0
        assert all(event.latency < 250 for event in backend.events_named("add"))
        assert tracker.retried > 0 and tracker.dropped == {}
    finally:
        await tracker.aclose()
        await backend.stop()


async def test_an_event_whose_session_never_arrives_is_retried_then_dropped(tmp_path: Path) -> None:
    backend = FakeBackend(batch_route=False)
    await backend.start()
    try:
        orphan = session_with_events(1)[1]
        sink = quick_sink(backend.url, tmp_path, max_retries=2)
        sink.submit(orphan)
        assert await sink.flush(5)
        await sink.aclose()
    finally:
        await backend.stop()
    assert [hit.status for hit in backend.hits_on(EVENT_PATH)] == [404, 404, 404]
    assert (sink.stats.retried, sink.stats.dropped) == (2, {"session_unknown": 1})
