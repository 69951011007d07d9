"""Where captured sessions and events go: the `CaptureSink` protocol, its shared batching queue,
and `LocalSink`, which hands batches to a function in the same process.

Every sink is fail-safe by construction: `submit` only appends to a bounded in-memory queue
(returning False when it is full) and never awaits, raises or does I/O; one background task,
started lazily by the first `submit` made inside a running asyncio loop (or by `start()`), takes
batches off the queue and delivers them. The queue keeps submission order and delivery is one
batch at a time, so a session submitted before its events is delivered before them. Failures are
counted by reason in `SinkStats` and logged, at most once a minute per reason.

`flush()` and `aclose()` may be awaited from another event loop (a test driving a server that
runs in a uvicorn thread): they run on the worker's loop and the caller waits for them. If the
worker's loop has gone away, the next call starts a new worker on the caller's loop, taking over
what was left in the queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._logging import sdk_logger
from .wire import MAX_BATCH_EVENTS, MAX_BATCH_SESSIONS, CaptureBatch, CaptureEvent, CaptureSession

logger = sdk_logger(__name__)

CaptureItem: TypeAlias = CaptureSession | CaptureEvent
Deliver: TypeAlias = Callable[[str, CaptureBatch], Awaitable[object]]
"""`LocalSink`'s target: `(org_id, batch) -> anything`; raising counts the batch as failed."""

DEFAULT_BATCH_SIZE: Final = 5
"""Items that make a batch worth sending at once (the seed's SDK default)."""

DEFAULT_FLUSH_INTERVAL: Final = 2.0
"""Seconds a partial batch waits for company before it is sent anyway."""

DEFAULT_MAX_QUEUE: Final = 10_000
"""Items held in memory awaiting delivery; `submit` refuses more."""

MAX_DELIVERY_ITEMS: Final = 500
"""Most items one delivery takes off the queue (`batch_size` is the least): a sink behind catches up in big batches."""

DEFAULT_CLOSE_TIMEOUT: Final = 5.0
"""Seconds `aclose()` waits for the queue to drain by default."""

DROP_LOG_INTERVAL: Final = 60.0
"""Seconds between two log lines about drops of the same reason."""

DEFAULT_ORG: Final = ""


class BatchSettings(BaseModel):
    """The batching queue's tunables, validated."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SESSIONS)
    flush_interval: float = Field(default=DEFAULT_FLUSH_INTERVAL, gt=0, le=3600)
    max_queue: int = Field(default=DEFAULT_MAX_QUEUE, ge=1)


class SinkListener(Protocol):
    """Hears of items a sink delivered or dropped, as it happens."""

    def sent(self, count: int) -> None: ...

    def dropped(self, reason: str, count: int) -> None: ...


class SinkStats:
    """Delivery counters of one sink: sent, retried, and dropped by reason. Thread-safe. `listeners` hear of
    deliveries and drops as they happen."""

    def __init__(self) -> None:
        self.listeners: list[SinkListener] = []
        self._lock = threading.Lock()
        self._sent = 0
        self._retried = 0
        self._dropped: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def retried(self) -> int:
        return self._retried

    @property
    def dropped(self) -> dict[str, int]:
        """Items dropped so far, by reason (`queue_full`, `closed`, `http_400`, ...)."""
        with self._lock:
            return dict(self._dropped)

    def add_sent(self, count: int) -> None:
        with self._lock:
            self._sent += count
        for listener in self.listeners:
            listener.sent(count)

    def add_retry(self) -> None:
        with self._lock:
            self._retried += 1

    def drop(self, reason: str, count: int = 1, detail: str = "") -> None:
        """Count `count` items dropped for `reason`; log it unless the reason was logged lately."""
        if count <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._dropped[reason] += count
            total = self._dropped[reason]
            last = self._last_logged.get(reason)
            should_log = last is None or now - last >= DROP_LOG_INTERVAL
            if should_log:
                self._last_logged[reason] = now
        for listener in self.listeners:
            listener.dropped(reason, count)
        if should_log:
            logger.warning("tracking dropped %d item(s): %s%s (%d so far)", count, reason, detail, total)


@runtime_checkable
class CaptureSink(Protocol):
    """Takes captured items and delivers them in the background, never failing the caller."""

    @property
    def stats(self) -> SinkStats: ...

    def submit(self, item: CaptureItem, *, org_id: str | None = None) -> bool:
        """Queue `item` for `org_id` (the sink's own org when None); False when it cannot be queued."""
        ...

    def start(self) -> None:
        """Start background delivery on the running loop (it also starts on the first submit)."""
        ...

    async def flush(self, timeout: float | None = None) -> bool:
        """Deliver (or set aside) everything queued so far; False if `timeout` ran out first."""
        ...

    async def aclose(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Refuse new items, drain the queue for at most `timeout` seconds, release resources."""
        ...


Entry: TypeAlias = tuple[str, CaptureItem]


def split_batch(entries: Iterable[Entry], max_chars: int | None = None) -> list[tuple[str, CaptureBatch]]:
    """Group entries by org, keeping their order, as batches within the wire's limits.

    Sessions come first in a batch, so one batch never carries an event before its session.
    With `max_chars`, a batch is also closed before its items' JSON would pass that size.
    """
    out: list[tuple[str, CaptureBatch]] = []
    current: dict[str, tuple[CaptureBatch, int]] = {}
    for org, item in entries:
        size = len(item.model_dump_json(exclude_none=True)) if max_chars is not None else 0
        batch, used = current.get(org, (None, 0))
        if (
            batch is None
            or (max_chars is not None and used + size > max_chars and (batch.sessions or batch.events))
            or (
                len(batch.sessions) >= MAX_BATCH_SESSIONS
                if isinstance(item, CaptureSession)
                else len(batch.events) >= MAX_BATCH_EVENTS
            )
        ):
            batch, used = CaptureBatch(), 0
            out.append((org, batch))
        if isinstance(item, CaptureSession):
            batch.sessions.append(item)
        else:
            batch.events.append(item)
        current[org] = (batch, used + size)
    return out


class BatchingSink(ABC):
    """The shared bounded queue and its worker task; subclasses say how a batch is delivered."""

    def __init__(
        self,
        *,
        org_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        settings = BatchSettings(batch_size=batch_size, flush_interval=flush_interval, max_queue=max_queue)
        self._org = org_id if org_id is not None else DEFAULT_ORG
        self._batch_size = settings.batch_size
        self._flush_interval = settings.flush_interval
        self._max_queue = settings.max_queue
        self._stats = SinkStats()
        self._queue: deque[Entry] = deque()
        self._in_flight: list[Entry] = []
        self._lock = threading.Lock()
        self._closed = False
        # Worker state, owned by the worker's loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._stopping = False
        self._send_partial = False

    # -- the caller's side ------------------------------------------------------------------

    @property
    def stats(self) -> SinkStats:
        return self._stats

    @property
    def pending(self) -> int:
        """Items queued or being delivered."""
        with self._lock:
            return len(self._queue) + len(self._in_flight)

    def submit(self, item: CaptureItem, *, org_id: str | None = None) -> bool:
        if self._closed:
            self._stats.drop("closed")
            return False
        with self._lock:
            if len(self._queue) >= self._max_queue:
                full = True
            else:
                full = False
                self._queue.append((org_id if org_id is not None else self._org, item))
                size = len(self._queue)
        if full:
            self._stats.drop("queue_full")
            return False
        try:
            self._ensure_worker()
            if size == 1 or size >= self._batch_size:
                self._signal()
        except Exception:  # instrumentation never breaks the app
            logger.exception("tracking sink could not schedule delivery")
        return True

    def start(self) -> None:
        self._ensure_worker()

    async def flush(self, timeout: float | None = None) -> bool:
        if self._closed and not self._worker_alive():
            return self.pending == 0
        try:
            return await self._on_worker(self._flush_on_loop, timeout)
        except Exception:
            logger.exception("tracking sink flush failed")
            return False

    async def aclose(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        self._closed = True
        if not self._worker_alive() and self.pending == 0:
            return  # never started, or already closed: nothing to drain
        try:
            drained = await self._on_worker(self._close_on_loop, timeout)
        except Exception:
            logger.exception("tracking sink close failed")
            drained = False
        if not drained:
            await self._abandon_leftovers()

    # -- worker management --------------------------------------------------------------------

    def _worker_alive(self) -> bool:
        return (
            self._task is not None and not self._task.done() and self._loop is not None and not self._loop.is_closed()
        )

    def _ensure_worker(self) -> None:
        """Start the worker on the running loop unless one is alive somewhere."""
        if self._worker_alive():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: items wait for a submit or start() inside one
        with self._lock:
            if self._in_flight:  # the previous worker's loop died mid-delivery
                self._queue.extendleft(reversed(self._in_flight))
                self._in_flight = []
        self._loop = loop
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = loop.create_task(self._run(), name=f"{type(self).__name__}-worker")

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    async def _on_worker(self, job: Callable[[], Coroutine[Any, Any, None]], timeout: float | None) -> bool:
        """Run `job` on the worker's loop (starting a worker here if none is alive); False on timeout."""
        self._ensure_worker()
        loop = self._loop
        if loop is None:
            return False
        running = asyncio.get_running_loop()
        if loop is running:
            task: asyncio.Future[None] = asyncio.ensure_future(job())
        elif loop.is_running():
            task = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(job(), loop))
        else:
            return False  # the worker's loop is paused: nothing can run there until it resumes
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            return False
        task.result()
        return True

    async def _flush_on_loop(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        self._signal()
        try:
            await waiter
        finally:
            if waiter in self._flush_waiters:
                self._flush_waiters.remove(waiter)

    async def _close_on_loop(self) -> None:
        self._stopping = True
        self._signal()
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def _abandon_leftovers(self) -> None:
        """After a close that timed out: stop the worker and hand what is left to `_abandon`."""
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not loop.is_closed() and not task.done():
            loop.call_soon_threadsafe(task.cancel)
        with self._lock:
            leftovers = list(self._in_flight) + list(self._queue)
            self._in_flight = []
            self._queue.clear()
        if leftovers:
            try:
                await self._abandon(leftovers)
            except Exception:
                logger.exception("tracking sink could not set aside its leftovers")
                self._stats.drop("shutdown", len(leftovers))

    # -- the worker -----------------------------------------------------------------------------

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for a signal; False when `timeout` passed without one."""
        wake = self._wake
        assert wake is not None
        try:
            # Not `asyncio.wait_for`: on 3.11 it can swallow a cancellation that races the wake-up.
            async with asyncio.timeout(timeout):
                await wake.wait()
        except TimeoutError:
            return False
        finally:
            wake.clear()
        return True

    def _urgent(self) -> bool:
        return self._stopping or self._send_partial or bool(self._flush_waiters)

    async def _run(self) -> None:
        await self._guarded(self._on_start())
        try:
            while True:
                with self._lock:
                    size = len(self._queue)
                if size == 0:
                    if self._flush_waiters or self._stopping:
                        await self._guarded(self._on_flush())
                        self._release_flush_waiters()
                    if self._stopping:
                        return
                    if not await self._wait(self._idle_timeout()):
                        await self._guarded(self._on_idle())
                    continue
                if size < self._batch_size and not self._urgent():
                    if not await self._wait(self._flush_interval):
                        self._send_partial = True
                    continue
                urgent = self._urgent()
                self._send_partial = False
                with self._lock:
                    count = min(max(self._batch_size, MAX_DELIVERY_ITEMS), len(self._queue))
                    if not urgent:
                        count -= count % self._batch_size  # whole batches: a partial one waits for company
                    self._in_flight = [self._queue.popleft() for _ in range(count)]
                    batch = list(self._in_flight)
                await self._guarded(self._deliver(batch), batch)
                with self._lock:
                    self._in_flight = []
        finally:
            await self._guarded(self._on_stop())

    def _release_flush_waiters(self) -> None:
        for waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._flush_waiters.clear()

    async def _guarded(self, work: Awaitable[None], batch: list[Entry] | None = None) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracking sink failed")
            if batch:
                self._stats.drop("sink_error", len(batch))

    # -- what subclasses provide ------------------------------------------------------------------

    @abstractmethod
    async def _deliver(self, batch: list[Entry]) -> None:
        """Deliver `batch` (in order), counting what was sent and what was dropped; never raises."""

    async def _on_start(self) -> None:
        """Runs first on a new worker."""
        return None

    async def _on_stop(self) -> None:
        """Runs when a worker ends (closed, or cancelled)."""
        return None

    async def _on_flush(self) -> None:
        """Runs once the queue is empty, for each flush or close."""
        return None

    async def _on_idle(self) -> None:
        """Runs when `_idle_timeout()` passes with nothing queued."""
        return None

    def _idle_timeout(self) -> float | None:
        return None

    async def _abandon(self, entries: list[Entry]) -> None:
        """Take items a close could not deliver in time; by default they are dropped."""
        self._stats.drop("shutdown_timeout", len(entries))


class LocalSink(BatchingSink):
    """Hands each batch to `deliver(org_id, batch)` in the process, e.g. a function writing a store.

    No spool: the target is local. A failing `deliver` is logged and its items counted as
    dropped (`deliver_failed`), never raised.
    """

    def __init__(
        self,
        deliver: Deliver,
        *,
        org_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__(org_id=org_id, batch_size=batch_size, flush_interval=flush_interval, max_queue=max_queue)
        self._target = deliver

    async def _deliver(self, batch: list[Entry]) -> None:
        for org, capture in split_batch(batch):
            count = len(capture.sessions) + len(capture.events)
            try:
                await self._target(org, capture)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("local tracking delivery failed", exc_info=True)
                self._stats.drop("deliver_failed", count, f" ({type(exc).__name__})")
            else:
                self._stats.add_sent(count)
