"""The shared batching queue, through `LocalSink`: batch sizes, intervals, failures, orgs, loops, closing."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from mcp_gateway_tracking import CaptureBatch, CaptureEvent, CaptureItem, CaptureSession, CaptureSink, LocalSink
from mcp_gateway_tracking.sinks import split_batch
from mcp_gateway_tracking.wire import MAX_BATCH_SESSIONS

from .helpers import Recorder


def session() -> CaptureSession:
    return CaptureSession(session_id=str(uuid.uuid4()), client_config="tests")


def event(session_id: str, name: str = "t") -> CaptureEvent:
    return CaptureEvent(session_id=session_id, primitive_type="tool", primitive_name=name, latency=1, success=True)


def items(count: int) -> list[CaptureItem]:
    first = session()
    return [first, *(event(first.session_id, f"t{n}") for n in range(count - 1))]


def test_local_sink_is_a_capture_sink() -> None:
    assert isinstance(LocalSink(Recorder()), CaptureSink)


async def test_full_batches_leave_at_once_and_the_rest_on_flush() -> None:
    recorder = Recorder()
    sink = LocalSink(recorder, org_id="org", batch_size=3, flush_interval=60)
    for item in items(7):
        assert sink.submit(item)
    await recorder.wait_for_calls(1)
    assert recorder.sizes == [6] and sink.pending == 1
    assert await sink.flush(5)
    assert recorder.sizes == [6, 1]
    await sink.aclose()
    assert sink.stats.sent == 7 and sink.stats.dropped == {}
    assert {org for org, _ in recorder.batches} == {"org"}


async def test_a_partial_batch_leaves_after_the_flush_interval() -> None:
    recorder = Recorder()
    sink = LocalSink(recorder, batch_size=10, flush_interval=0.05)
    sink.submit(session())
    await recorder.wait_for_calls(1)
    assert recorder.sizes == [1]
    await sink.aclose()


async def test_a_failing_deliver_is_counted_and_never_raised() -> None:
    recorder = Recorder(failing=True)
    sink = LocalSink(recorder, batch_size=2, flush_interval=60)
    for item in items(2):
        sink.submit(item)
    assert await sink.flush(5)
    assert sink.stats.dropped == {"deliver_failed": 2} and sink.stats.sent == 0
    recorder.failing = False
    sink.submit(session())
    await sink.aclose()
    assert sink.stats.sent == 1


async def test_items_are_delivered_per_org_with_sessions_first() -> None:
    recorder = Recorder()
    sink = LocalSink(recorder, org_id="default", batch_size=10, flush_interval=60)
    a, b = session(), session()
    sink.submit(a, org_id="org-a")
    sink.submit(b)
    sink.submit(event(a.session_id), org_id="org-a")
    sink.submit(event(b.session_id))
    await sink.aclose()
    assert [(org, len(batch.sessions), len(batch.events)) for org, batch in recorder.batches] == [
        ("org-a", 1, 1),
        ("default", 1, 1),
    ]


def test_batches_are_split_at_the_wire_limits() -> None:
    many = [("org", session()) for _ in range(MAX_BATCH_SESSIONS + 1)]
    batches = split_batch(many)
    assert [len(batch.sessions) for _, batch in batches] == [MAX_BATCH_SESSIONS, 1]
    assert all(isinstance(batch, CaptureBatch) for _, batch in batches)


async def test_a_worker_whose_loop_ended_is_replaced_and_nothing_is_lost() -> None:
    recorder = Recorder()
    sink = LocalSink(recorder, batch_size=100, flush_interval=60)

    async def submit_and_leave() -> None:
        for item in items(3):
            sink.submit(item)
        await asyncio.sleep(0)  # the worker starts, then its loop ends under it

    thread = threading.Thread(target=asyncio.run, args=(submit_and_leave(),))
    thread.start()
    thread.join(5)
    assert recorder.calls == 0 and sink.pending == 3
    assert await sink.flush(5)
    assert recorder.sizes == [3]
    await sink.aclose()


async def test_close_drains_the_queue_and_then_refuses_items() -> None:
    recorder = Recorder()
    sink = LocalSink(recorder, batch_size=100, flush_interval=60)
    for item in items(4):
        sink.submit(item)
    await sink.aclose()
    assert recorder.sizes == [4]
    assert not sink.submit(session())
    assert sink.stats.dropped == {"closed": 1}
    assert await sink.flush(1)


async def test_a_close_that_times_out_counts_what_was_left() -> None:
    never = asyncio.Event()

    async def stuck(org_id: str, batch: CaptureBatch) -> None:
        await never.wait()

    sink = LocalSink(stuck, batch_size=2, flush_interval=60)
    for item in items(5):
        sink.submit(item)
    await sink.aclose(timeout=0.1)
    assert sink.stats.dropped == {"shutdown_timeout": 5}


async def test_a_full_queue_refuses_and_counts() -> None:
    sink = LocalSink(Recorder(), max_queue=2)
    assert [sink.submit(item) for item in items(3)] == [True, True, False]
    assert sink.stats.dropped == {"queue_full": 1}
    await sink.aclose()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        LocalSink(Recorder(), batch_size=0)
    with pytest.raises(ValueError):
        LocalSink(Recorder(), flush_interval=0)


def test_batches_are_split_before_they_pass_a_size() -> None:
    many = [("org", item) for item in items(10)]
    one_size = len(many[1][1].model_dump_json(exclude_none=True))
    batches = split_batch(many, max_chars=one_size * 4)
    assert [len(b.sessions) + len(b.events) for _, b in batches] == [4, 4, 2]
    assert [item for _, b in batches for item in (*b.sessions, *b.events)] == [item for _, item in many]
