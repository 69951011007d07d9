"""`HttpSink`: delivers captured items to an Agnost-compatible backend over HTTP.

Batches go to `POST {endpoint}/api/v1/capture-batch` as one `CaptureBatch` (sessions first,
then events). A backend that answers that route with 404 or 405 (a plain Agnost backend) is
sent the seed's single-item routes, `/api/v1/capture-session` and `/api/v1/capture-event`, for the
rest of the sink's life. Every request carries `X-Org-Id`.

Per request: 2xx is delivered; a network error, a timeout, 408 or 5xx is retried after
`retry_delay * 2**n` seconds (±50 % jitter, at most `MAX_BACKOFF`); 429 (and a 503 that says so)
is retried after its `Retry-After`; an event answered 404 on the single route (its session not
known yet) is retried the same way and dropped as `session_unknown` once retries run out. Any
other 4xx drops the items (`http_<status>`), logged. Items still undelivered after `max_retries`
retries go to the on-disk spool (`spool.py`), and so does everything after them until the spool
is drained again, which keeps the order sessions-before-events: the worker retries the spool
every `spool_retry_interval` seconds, on `flush()`, and when a new sink starts on the same
directory. Items still queued when `aclose()` times out, or when the interpreter exits, are
spooled too. `max_spool_bytes=0` turns the spool off (undeliverable items are then dropped as
`retries_exhausted`).

The sink's own requests are not logged by httpx (which logs every request at INFO on its `httpx` logger)
nor httpcore (DEBUG): a filter on their loggers drops the records made while the sink's client works, so
a wrapped server's log is not a line per delivery, and the host's own httpx requests are logged as before.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import email.utils
import functools
import hashlib
import logging
import random
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ._logging import sdk_logger
from .sinks import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_QUEUE,
    BatchingSink,
    Entry,
    split_batch,
)
from .spool import DEFAULT_MAX_SPOOL_BYTES, Spool, default_spool_dir
from .wire import CaptureBatch, CaptureSession

logger = sdk_logger(__name__)

_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_gateway_tracking_sending", default=False)
"""True in the task of a sink while its HTTP client works: httpx and httpcore log in that task."""

HTTP_CLIENT_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
"""Where httpx (a line per request, INFO) and httpcore (each step, DEBUG) log."""


class QuietSinkRequests(logging.Filter):
    """On httpx's and httpcore's loggers: drops the records of the sink's own requests, passes every other."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending.get()


def _quiet_http_client_logs() -> None:
    """Install `QuietSinkRequests` on `HTTP_CLIENT_LOGGERS` once per process."""
    for name in HTTP_CLIENT_LOGGERS:
        client_logger = logging.getLogger(name)
        if not any(isinstance(existing, QuietSinkRequests) for existing in client_logger.filters):
            client_logger.addFilter(QuietSinkRequests())


@contextlib.contextmanager
def _unlogged() -> Iterator[None]:
    """While the block runs (in this task), the HTTP client's log records are the sink's: dropped."""
    sending = _sending.set(True)
    try:
        yield
    finally:
        _sending.reset(sending)


DEFAULT_ENDPOINT: Final = "https://api.agnost.ai"
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_RETRY_DELAY: Final = 1.0
"""Seconds before the first retry; each further retry waits twice as long."""

DEFAULT_TIMEOUT: Final = 3.0
"""Seconds one HTTP request to the backend may take (connecting: at most 2)."""

DEFAULT_SPOOL_RETRY_INTERVAL: Final = 30.0
"""Seconds between two attempts to deliver the spool while the backend is failing."""

MAX_BACKOFF: Final = 30.0
"""Longest wait between two retries of one request."""

MAX_RETRY_AFTER: Final = 60.0
"""Longest `Retry-After` honoured in place; a longer one is cut to this."""

SPOOL_CHUNK: Final = 100
"""Items per request when the spool is drained."""

MAX_REQUEST_CHARS: Final = 1_000_000
"""Largest batch body sent at once (about 1 MB); a longer run of items is sent as several batches."""

SESSION_PATH: Final = "/api/v1/capture-session"
EVENT_PATH: Final = "/api/v1/capture-event"
BATCH_PATH: Final = "/api/v1/capture-batch"


class HttpSinkSettings(BaseModel):
    """`HttpSink`'s options, validated."""

    model_config = ConfigDict(frozen=True)

    endpoint: str = Field(default=DEFAULT_ENDPOINT, pattern=r"^https?://\S+$")
    org_id: str = Field(min_length=1, max_length=256)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=20)
    retry_delay: float = Field(default=DEFAULT_RETRY_DELAY, ge=0, le=MAX_BACKOFF)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=120)
    max_spool_bytes: int = Field(default=DEFAULT_MAX_SPOOL_BYTES, ge=0)
    spool_retry_interval: float = Field(default=DEFAULT_SPOOL_RETRY_INTERVAL, gt=0)
    use_batch_endpoint: bool = True


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["ok", "retry", "fallback", "reject"]
    status: int | None = None
    retry_after: float | None = None
    reason: str = ""


_OK: Final = _Outcome("ok")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def _spool_at_exit(ref: weakref.ReferenceType[HttpSink]) -> None:
    sink = ref()
    if sink is not None:
        sink._spool_leftovers_sync()


class HttpSink(BatchingSink):
    """Sends batches to an Agnost-compatible backend, retrying and spooling; never raises."""

    def __init__(
        self,
        endpoint: str,
        org_id: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        timeout: float = DEFAULT_TIMEOUT,
        spool_dir: str | PathLike[str] | None = None,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        spool_retry_interval: float = DEFAULT_SPOOL_RETRY_INTERVAL,
        use_batch_endpoint: bool = True,
    ) -> None:
        settings = HttpSinkSettings(
            endpoint=endpoint,
            org_id=org_id,
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
            max_spool_bytes=max_spool_bytes,
            spool_retry_interval=spool_retry_interval,
            use_batch_endpoint=use_batch_endpoint,
        )
        super().__init__(
            org_id=settings.org_id, batch_size=batch_size, flush_interval=flush_interval, max_queue=max_queue
        )
        self.settings = settings
        self._base = settings.endpoint.rstrip("/")
        self._batch_mode = settings.use_batch_endpoint
        if spool_dir is None:
            key = hashlib.sha256(f"{self._base}\n{settings.org_id}".encode()).hexdigest()[:16]
            spool_dir = default_spool_dir(key)
        self.spool: Spool | None = (
            Spool(Path(spool_dir), settings.max_spool_bytes) if settings.max_spool_bytes else None
        )
        self._spool_due_at = 0.0
        self._client: httpx.AsyncClient | None = None
        self._atexit = functools.partial(_spool_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        _quiet_http_client_logs()

    @property
    def uses_batch_endpoint(self) -> bool:
        """False once the backend said it has no batch route."""
        return self._batch_mode

    async def aclose(self, timeout: float = 5.0) -> None:
        try:
            await super().aclose(timeout)
        finally:
            atexit.unregister(self._atexit)

    # -- worker hooks ---------------------------------------------------------------------------------

    async def _on_start(self) -> None:
        timeout = httpx.Timeout(self.settings.timeout, connect=min(self.settings.timeout, 2.0))
        self._client = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "mcp-gateway-tracking"})
        if self.spool is not None and await asyncio.to_thread(lambda: self.spool is not None and self.spool.has_data):
            await self._drain_spool()

    async def _on_stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with _unlogged():
                await client.aclose()

    async def _on_flush(self) -> None:
        if self._stopping and not self._spool_due():
            return
        await self._drain_spool()

    async def _on_idle(self) -> None:
        await self._drain_spool()

    def _idle_timeout(self) -> float | None:
        if self.spool is None or not self.spool.has_data:
            return None
        return max(0.01, self._spool_due_at - time.monotonic())

    async def _deliver(self, batch: list[Entry]) -> None:
        if self.spool is not None and self.spool.has_data:
            # Older items wait in the spool: these go behind them, so sessions stay ahead of events.
            await self._set_aside(batch)
            if self._spool_due():
                await self._drain_spool()
            return
        left = await self._send(batch)
        if left:
            await self._set_aside(left)

    async def _abandon(self, entries: list[Entry]) -> None:
        if self.spool is None:
            self._stats.drop("shutdown_timeout", len(entries))
            return
        if not await asyncio.to_thread(self.spool.append, entries):
            self._stats.drop("spool_full", len(entries))

    def _spool_leftovers_sync(self) -> None:
        """At interpreter exit: whatever is still in memory goes to the spool."""
        with self._lock:
            leftovers = list(self._in_flight) + list(self._queue)
            self._in_flight = []
            self._queue.clear()
        if not leftovers:
            return
        try:
            if self.spool is None or not self.spool.append(leftovers):
                self._stats.drop("shutdown", len(leftovers))
        except Exception:
            logger.exception("tracking could not spool its leftovers at exit")

    # -- the spool ------------------------------------------------------------------------------------------

    def _spool_due(self) -> bool:
        return time.monotonic() >= self._spool_due_at

    def _defer_spool(self) -> None:
        self._spool_due_at = time.monotonic() + self.settings.spool_retry_interval

    async def _set_aside(self, entries: list[Entry]) -> None:
        """Put undelivered entries in the spool (or count them dropped when there is none or it is full)."""
        if self.spool is None:
            self._stats.drop("retries_exhausted", len(entries))
            return
        was_empty = not self.spool.has_data
        if await asyncio.to_thread(self.spool.append, entries):
            if was_empty:
                self._defer_spool()
                logger.warning("tracking backend unavailable: %d item(s) spooled for later", len(entries))
        else:
            self._stats.drop("spool_full", len(entries))

    async def _drain_spool(self) -> bool:
        """Deliver spooled segments, oldest first; False if one could not be delivered."""
        spool = self.spool
        if spool is None:
            return True
        for segment in await asyncio.to_thread(spool.segments):
            entries = await asyncio.to_thread(spool.read, segment)
            left: list[Entry] = []
            for start in range(0, len(entries), SPOOL_CHUNK):
                left = await self._send(entries[start : start + SPOOL_CHUNK])
                if left:
                    left = left + entries[start + SPOOL_CHUNK :]
                    break
            if left:
                await asyncio.to_thread(spool.replace, segment, left)
                self._defer_spool()
                return False
            await asyncio.to_thread(spool.remove, segment)
        return True

    # -- HTTP -------------------------------------------------------------------------------------------------

    async def _send(self, entries: list[Entry]) -> list[Entry]:
        """Deliver `entries` in order; what is left when the backend keeps failing."""
        if self._batch_mode:
            groups = split_batch(entries, MAX_REQUEST_CHARS)
            for index, (org, batch) in enumerate(groups):
                count = len(batch.sessions) + len(batch.events)
                body = batch.model_dump(mode="json", exclude_none=True)
                outcome = await self._with_retries(BATCH_PATH, org, body)
                if outcome.kind == "ok":
                    self._stats.add_sent(count)
                    continue
                rest = [entry for group in groups[index:] for entry in _entries_of(*group)]
                if outcome.kind == "fallback":
                    logger.info(
                        "tracking backend has no batch route (HTTP %s): sending items one by one", outcome.status
                    )
                    self._batch_mode = False
                    return await self._send_one_by_one(rest)
                if outcome.kind == "reject":
                    self._stats.drop(f"http_{outcome.status}", count, f" from {BATCH_PATH}")
                    continue
                return rest
            return []
        return await self._send_one_by_one(entries)

    async def _send_one_by_one(self, entries: list[Entry]) -> list[Entry]:
        for index, (org, item) in enumerate(entries):
            path = SESSION_PATH if isinstance(item, CaptureSession) else EVENT_PATH
            outcome = await self._with_retries(path, org, item.model_dump(mode="json", exclude_none=True))
            if outcome.kind == "ok":
                self._stats.add_sent(1)
            elif outcome.kind == "reject":
                self._stats.drop(f"http_{outcome.status}", 1, f" from {path}")
            elif path == EVENT_PATH and outcome.status == 404:
                self._stats.drop("session_unknown", 1)
            else:
                return entries[index:]
        return []

    async def _with_retries(self, path: str, org: str, body: dict[str, Any]) -> _Outcome:
        attempt = 0
        while True:
            outcome = await self._post(path, org, body)
            if outcome.kind != "retry" or attempt >= self.settings.max_retries:
                return outcome
            self._stats.add_retry()
            delay = self._backoff(attempt, outcome.retry_after)
            logger.debug("tracking %s failed (%s); retry %d in %.2fs", path, outcome.reason, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        delay = self.settings.retry_delay * (2**attempt)
        jittered: float = delay * random.uniform(0.5, 1.5)
        return min(jittered, MAX_BACKOFF)

    async def _post(self, path: str, org: str, body: dict[str, Any]) -> _Outcome:
        client = self._client
        assert client is not None
        try:
            with _unlogged():
                response = await client.post(self._base + path, json=body, headers={"X-Org-Id": org})
        except httpx.HTTPError as exc:
            return _Outcome("retry", reason=type(exc).__name__)
        status = response.status_code
        logger.debug("tracking POST %s: HTTP %d", path, status)  # the seed's troubleshooting aid, at DEBUG
        if 200 <= status < 300:
            return _OK
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in (408, 429) or status >= 500:
            return _Outcome("retry", status, retry_after if status in (429, 503) else None, f"HTTP {status}")
        if path == BATCH_PATH and status in (404, 405):
            return _Outcome("fallback", status)
        if path == EVENT_PATH and status == 404:
            return _Outcome("retry", status, None, "session not known yet")
        return _Outcome("reject", status, reason=f"HTTP {status}")


def _entries_of(org: str, batch: CaptureBatch) -> list[Entry]:
    return [(org, s) for s in batch.sessions] + [(org, e) for e in batch.events]
