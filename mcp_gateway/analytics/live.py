"""What is happening now: `GET /live`, a snapshot of the last minutes, and `GET /stream`, every event as it is stored.

`GET /live` (an ordinary `Question`) reads the events of the last `window` seconds (default 5 minutes, up to
now): a session, web or MCP, is active when it has an event in the window. It answers the active visitors
(distinct web visitor ids), the active web and MCP sessions (most recent first, each with its visitor or MCP
client, current page or last tool, and last seen), the events in the window, events per minute over the last
30 minutes (zero-filled, oldest first, the current minute last) and the busiest pages and tools of the window.

`GET /stream` is Server-Sent Events. One `LiveFeed` per process polls `store.events_after(seq)` every 250 ms
while anyone listens (and not at all otherwise), serialises each new event once and offers it to the bounded
queue of every subscriber of its gateway whose filters (`event`, `primitive`, `source`) match. Polling the
database rather than the writer keeps it right when several processes write to one database. Each event is one
SSE message: `id:` its insertion sequence, `data:` a `StreamedEvent` as JSON. `Last-Event-ID` (or
`?last_event_id=`) resumes after that id: up to `MAX_REPLAY` stored events of the gateway are replayed, and past
that a `gap` event says what was skipped. A subscriber whose queue is full (a client slower than its events) is
not waited for: its stream ends with an `overflow` event, and the EventSource reconnects with `Last-Event-ID`
and catches up by replay, so nothing is lost silently and nobody else is slowed. Comment pings keep idle
connections open; at most `MAX_STREAMS_PER_KEY` streams per read key (429 past that). On shutdown the feed ends
every stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio
from pydantic import Field
from pydantic_core import to_json
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..accounts.access import presented_key
from ..keys import hash_key
from ..openapi import Operation
from ..store import EventRow, Store
from ..web import CLIENT_ERRORS, CORS_HEADERS, ApiError, ConnectionLimiter, client_error
from .api import Asked, Question, read_gateway, request_args
from .sql import bucket
from .window import Args

logger = logging.getLogger(__name__)

MINUTE_MS: Final = 60_000
SERIES_MINUTES: Final = 30
"""Minutes in `/live`'s events-per-minute series."""
TOP_ITEMS: Final = 10
"""Pages and tools listed by `/live`."""

POLL_INTERVAL_SECONDS: Final = 0.25
"""How often the feed asks the store for new events while anyone listens."""
POLL_PAGE: Final = 500
"""Events read per poll; a full page is followed by the next one at once."""
POLL_ERROR_BACKOFF_SECONDS: Final = 2.0
"""How long the feed waits after the store failed before it polls again."""
SUBSCRIBER_QUEUE: Final = 1000
"""Events waiting for one subscriber; one more ends that subscriber's stream with `overflow`."""
MAX_REPLAY: Final = 1000
"""Stored events read to resume after a `Last-Event-ID`; the rest of a longer gap is skipped, with a `gap` event."""
MAX_STREAMS_PER_KEY: Final = 10
"""Concurrent streams one read key may hold."""
STREAM_RETRY_AFTER_SECONDS: Final = 10
PING_SECONDS: Final = 15
"""Seconds between keep-alive comments on a stream."""
SEND_TIMEOUT_SECONDS: Final = 30
"""A client that takes longer than this to accept one message is disconnected."""
RECONNECT_MS: Final = 2000
"""The reconnection delay a stream asks EventSource clients to use (`retry:`)."""
MAX_INLINE_PAYLOAD: Final = 1024
"""An event's stored `args` or `result` (JSON text, redacted at capture) rides along when at most this long."""

PrimitiveType = Literal["tool", "resource", "prompt"]
Source = Literal["mcp", "web", "server"]


# -- GET /live ---------------------------------------------------------------------------------------


class LiveArgs(Args):
    window: int = Field(
        default=300, ge=10, le=3600, description="Seconds that count as now: activity since then is live (default 300)"
    )
    limit: int = Field(default=50, ge=1, le=500, description="Active sessions listed, most recently seen first")


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: int
    """Start of the minute, ms since the epoch (UTC)."""
    events: int


@dataclass(frozen=True, slots=True)
class PageNow:
    path: str
    visitors: int
    events: int


@dataclass(frozen=True, slots=True)
class ToolNow:
    primitive_type: str
    name: str
    calls: int
    errors: int
    avg_latency_ms: float


@dataclass(frozen=True, slots=True)
class ActiveSession:
    session_id: str
    source: Literal["web", "mcp"]
    visitor_id: str | None
    """The web visitor (anonymous id); None for MCP sessions."""
    client: str | None
    """The MCP client (`client_config`, e.g. "claude-desktop 1.0"); None for web sessions."""
    current_page: str | None
    """The path of the web session's latest event that has one."""
    last_tool: str | None
    """The name of the MCP session's latest call (tool, resource or prompt)."""
    events: int
    last_seen: int
    country: str | None


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    gateway_id: str
    now: int
    window_seconds: int
    active_visitors: int
    active_sessions: int
    active_web_sessions: int
    active_mcp_sessions: int
    events: int
    """Events in the window."""
    events_per_minute: list[MinuteCount]
    top_pages: list[PageNow]
    top_tools: list[ToolNow]
    sessions: list[ActiveSession]


_WINDOW = "gateway_id = ? AND ts_ms >= ? AND ts_ms <= ?"
_SESSION_KIND = "CASE WHEN source = 'mcp' THEN 'mcp' ELSE 'web' END"

_TOTALS_SQL = f"""
SELECT COUNT(*),
       COUNT(DISTINCT CASE WHEN source <> 'mcp' THEN anonymous_id END),
       COUNT(DISTINCT CASE WHEN source <> 'mcp' THEN session_id END),
       COUNT(DISTINCT CASE WHEN source = 'mcp' THEN session_id END)
FROM events WHERE {_WINDOW}
"""

_MINUTES_SQL = f"""
SELECT {bucket("ts_ms", MINUTE_MS)}, COUNT(*) FROM events WHERE {_WINDOW} GROUP BY {bucket("ts_ms", MINUTE_MS)}
"""

_PAGES_SQL = f"""
SELECT path, COUNT(DISTINCT anonymous_id), COUNT(*)
FROM events WHERE {_WINDOW} AND source <> 'mcp' AND path IS NOT NULL
GROUP BY path ORDER BY COUNT(DISTINCT anonymous_id) DESC, COUNT(*) DESC, path LIMIT ?
"""

_TOOLS_SQL = f"""
SELECT primitive_type, name, COUNT(*), SUM(CASE WHEN success = 0 THEN 1 ELSE 0 END), AVG(latency_ms)
FROM events WHERE {_WINDOW} AND source = 'mcp' AND operation = 'call' AND primitive_type IS NOT NULL
GROUP BY primitive_type, name ORDER BY COUNT(*) DESC, primitive_type, name LIMIT ?
"""

_SESSIONS_SQL = f"""
SELECT s.kind, s.session_id, s.events, s.last_seen, s.visitor, COALESCE(m.country, s.country), m.client_config,
       (SELECT p.path FROM events p
        WHERE p.gateway_id = ? AND p.session_id = s.session_id AND p.ts_ms >= ? AND p.ts_ms <= ?
          AND p.source <> 'mcp' AND p.path IS NOT NULL
        ORDER BY p.ts_ms DESC, p.seq DESC LIMIT 1),
       (SELECT t.name FROM events t
        WHERE t.gateway_id = ? AND t.session_id = s.session_id AND t.ts_ms >= ? AND t.ts_ms <= ?
          AND t.source = 'mcp' AND t.operation = 'call'
        ORDER BY t.ts_ms DESC, t.seq DESC LIMIT 1)
FROM (SELECT {_SESSION_KIND} AS kind, session_id, COUNT(*) AS events, MAX(ts_ms) AS last_seen,
             MAX(anonymous_id) AS visitor, MAX(country) AS country
      FROM events WHERE {_WINDOW} AND session_id IS NOT NULL
      GROUP BY {_SESSION_KIND}, session_id) s
LEFT JOIN mcp_sessions m ON m.gateway_id = ? AND m.id = s.session_id AND s.kind = 'mcp'
ORDER BY s.last_seen DESC, s.session_id LIMIT ?
"""


async def live(asked: Asked, args: LiveArgs) -> LiveSnapshot:
    """The gateway's activity in the last `args.window` seconds, and per minute over the last 30 minutes."""
    store, now = asked.store, asked.now_ms
    window = (asked.gateway_id, now - args.window * 1000, now)
    series_start = now - now % MINUTE_MS - (SERIES_MINUTES - 1) * MINUTE_MS
    [(events, visitors, web_sessions, mcp_sessions)] = await store.fetch(_TOTALS_SQL, window)
    per_minute = {
        minute: count for minute, count in await store.fetch(_MINUTES_SQL, (asked.gateway_id, series_start, now))
    }
    pages = await store.fetch(_PAGES_SQL, (*window, TOP_ITEMS))
    tools = await store.fetch(_TOOLS_SQL, (*window, TOP_ITEMS))
    sessions = await store.fetch(_SESSIONS_SQL, (*window, *window, *window, asked.gateway_id, args.limit))
    return LiveSnapshot(
        gateway_id=asked.gateway_id,
        now=now,
        window_seconds=args.window,
        active_visitors=visitors,
        active_sessions=web_sessions + mcp_sessions,
        active_web_sessions=web_sessions,
        active_mcp_sessions=mcp_sessions,
        events=events,
        events_per_minute=[
            MinuteCount(minute, per_minute.get(minute, 0))
            for minute in range(series_start, series_start + SERIES_MINUTES * MINUTE_MS, MINUTE_MS)
        ],
        top_pages=[PageNow(path, visitors, count) for path, visitors, count in pages],
        top_tools=[
            ToolNow(kind, name, calls, errors, float(latency or 0)) for kind, name, calls, errors, latency in tools
        ],
        sessions=[
            ActiveSession(
                session_id=session_id,
                source=kind,
                visitor_id=visitor if kind == "web" else None,
                client=client,
                current_page=page,
                last_tool=tool,
                events=count,
                last_seen=last_seen,
                country=country,
            )
            for kind, session_id, count, last_seen, visitor, country, client, page, tool in sessions
        ],
    )


QUESTIONS: list[Question[Any]] = [
    Question(
        "/live",
        "Live snapshot: active visitors and sessions (web and MCP) with their current page or last tool, "
        "events now and per minute over 30 minutes, top pages and tools",
        LiveArgs,
        live,
        LiveSnapshot,
    )
]


# -- the feed ----------------------------------------------------------------------------------------


class StreamArgs(Args):
    event: str | None = Field(default=None, min_length=1, max_length=200, description="Only events of this name")
    primitive: PrimitiveType | None = Field(default=None, description="Only MCP events of this primitive type")
    source: Source | None = Field(default=None, description="Only events of this source")
    last_event_id: int | None = Field(
        default=None, ge=0, description="Resume after this event id, as the Last-Event-ID header does"
    )


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    """One event as `/stream` sends it. Hashed identities (IP, email, phone, user) never leave the store here."""

    id: str
    seq: int
    name: str
    source: str
    session_id: str | None
    ts: int
    received_at: int
    primitive_type: str | None
    operation: str | None
    latency_ms: float | None
    success: bool | None
    error_type: str | None
    args: Any
    """The call's arguments (redacted at capture) when their JSON is at most 1 KiB, else None."""
    result: Any
    """The call's result (redacted at capture) when its JSON is at most 1 KiB, else None."""
    properties: dict[str, Any] | None
    visitor_id: str | None
    path: str | None
    url: str | None
    referrer: str | None
    traffic_source: str | None
    traffic_medium: str | None
    traffic_campaign: str | None
    device_type: str | None
    browser: str | None
    os: str | None
    country: str | None
    source_confidence: str | None
    """How sure the attribution is: high, medium or low (seed 004)."""
    source_rule_id: str | None
    """The attribution rule that fired."""


def _inline(payload: str | None) -> Any:
    if payload is None or len(payload) > MAX_INLINE_PAYLOAD:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def streamed_event(row: EventRow) -> StreamedEvent:
    web = row.web
    return StreamedEvent(
        id=row.id,
        seq=row.seq or 0,
        name=row.name,
        source=row.source,
        session_id=row.session_id,
        ts=row.ts_ms,
        received_at=row.received_at_ms,
        primitive_type=row.primitive_type,
        operation=row.operation,
        latency_ms=row.latency_ms,
        success=row.success,
        error_type=row.error_type,
        args=_inline(row.args),
        result=_inline(row.result),
        properties=row.properties,
        visitor_id=web.anonymous_id if web else None,
        path=web.path if web else None,
        url=web.url if web else None,
        referrer=web.referrer if web else None,
        traffic_source=web.traffic_source if web else None,
        traffic_medium=web.traffic_medium if web else None,
        traffic_campaign=web.traffic_campaign if web else None,
        device_type=web.device_type if web else None,
        browser=web.browser if web else None,
        os=web.os if web else None,
        country=web.country if web else None,
        source_confidence=web.traffic_confidence if web else None,
        source_rule_id=web.traffic_rule if web else None,
    )


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A stored event, serialised once for every subscriber, with what the filters look at."""

    seq: int
    gateway_id: str
    name: str
    source: str
    primitive_type: str | None
    data: str

    @classmethod
    def of(cls, row: EventRow) -> FeedItem:
        data = to_json(streamed_event(row)).decode()
        return cls(row.seq or 0, row.gateway_id, row.name, row.source, row.primitive_type, data)

    def sse(self) -> ServerSentEvent:
        return ServerSentEvent(data=self.data, id=str(self.seq))


class Subscription:
    """One listener: its gateway, its filters, where the live part starts, and its bounded queue."""

    def __init__(self, gateway_id: str, filters: StreamArgs, start_seq: int, queue_size: int) -> None:
        self.gateway_id = gateway_id
        self.filters = filters
        self.start_seq = start_seq
        """Events after this come through the queue; a resume replays those up to it."""
        self.overflowed = False
        self._send, self.receive = anyio.create_memory_object_stream[FeedItem](queue_size)

    def wants(self, item: FeedItem) -> bool:
        f = self.filters
        return (
            item.gateway_id == self.gateway_id
            and (f.event is None or item.name == f.event)
            and (f.primitive is None or item.primitive_type == f.primitive)
            and (f.source is None or item.source == f.source)
        )

    def offer(self, item: FeedItem) -> None:
        """Queue `item` if wanted, never waiting: a full queue closes it, flagged `overflowed`."""
        if not self.wants(item):
            return
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            self.overflowed = True
            self._send.close()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def close(self) -> None:
        """No more events: the stream ends once the queued ones are read."""
        self._send.close()


class LiveFeed:
    """The one poller of a process: reads new events while anyone listens and fans them out."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = POLL_INTERVAL_SECONDS,
        page: int = POLL_PAGE,
        queue_size: int = SUBSCRIBER_QUEUE,
    ) -> None:
        self._store = store
        self._interval = interval
        self._page = page
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._position = 0
        self._synced = False
        """Whether `_position` is current: it is read afresh when the first listener arrives."""
        self._wanted = anyio.Event()
        self._lock = anyio.Lock()
        self._running = False

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Poll in the background while the block runs; on exit every stream ends."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._poll)
            self._running = True
            try:
                yield
            finally:
                self._running = False
                for subscription in self._subscribers:
                    subscription.close()
                self._subscribers.clear()
                tg.cancel_scope.cancel()

    async def subscribe(self, gateway_id: str, filters: StreamArgs) -> Subscription:
        if not self._running:
            raise ApiError(503, "The live stream is not running")
        async with self._lock:
            if not self._synced:
                _, self._position = await self._store.last_seq()
                self._synced = True
            subscription = Subscription(gateway_id, filters, self._position, self._queue_size)
            self._subscribers.add(subscription)
        self._wanted.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        subscription.close()
        subscription.receive.close()

    async def replay(self, subscription: Subscription, after: int) -> AsyncIterator[ServerSentEvent]:
        """The subscriber's stored events after `after` up to where its live part starts; `gap` past `MAX_REPLAY`."""
        position, read = after, 0
        while position < subscription.start_seq:
            if read >= MAX_REPLAY:
                gap = {"after": position, "resumed_after": subscription.start_seq}
                yield ServerSentEvent(data=json.dumps(gap), event="gap", id=str(subscription.start_seq))
                return
            limit = min(self._page, MAX_REPLAY - read)
            rows = await self._store.events_after(position, gateway_id=subscription.gateway_id, limit=limit)
            for row in rows:
                item = FeedItem.of(row)
                if item.seq > subscription.start_seq:
                    return
                position = item.seq
                if subscription.wants(item):
                    yield item.sse()
            if len(rows) < limit:
                return
            read += len(rows)

    async def _poll(self) -> None:
        while True:
            if not self._subscribers:
                self._synced = False
                self._wanted = anyio.Event()
                await self._wanted.wait()
                continue
            try:
                rows = await self._store.events_after(self._position, limit=self._page)
            except Exception:
                logger.exception("live feed: reading new events failed")
                await anyio.sleep(POLL_ERROR_BACKOFF_SECONDS)
                continue
            self._fan_out(rows)
            if rows:
                self._position = max(self._position, rows[-1].seq or 0)
            if len(rows) < self._page:
                await anyio.sleep(self._interval)

    def _fan_out(self, rows: Sequence[EventRow]) -> None:
        """Offer each row to every subscriber, serialised once, and only if some subscriber is of its gateway."""
        subscribers = tuple(self._subscribers)
        gateways = {subscription.gateway_id for subscription in subscribers}
        for row in rows:
            if row.gateway_id in gateways:
                item = FeedItem.of(row)
                for subscription in subscribers:
                    subscription.offer(item)


# -- GET /stream -------------------------------------------------------------------------------------


def _resume_after(request: Request, args: StreamArgs) -> int | None:
    """Where the client resumes: the Last-Event-ID header, else `?last_event_id=`; 400 naming a bad one."""
    header = request.headers.get("last-event-id")
    if header is None:
        return args.last_event_id
    if not header.strip().isdecimal() or len(header.strip()) > 18:
        raise ApiError(400, "Last-Event-ID must be an event id this stream sent", field="Last-Event-ID")
    return int(header)


class LiveStream:
    """`GET /stream`: a read key's events as Server-Sent Events, from the process's `LiveFeed`."""

    PATH: Final = "/stream"

    def __init__(self, feed: LiveFeed, *, max_streams_per_key: int = MAX_STREAMS_PER_KEY) -> None:
        self._feed = feed
        self._limiter = ConnectionLimiter(max_streams_per_key)

    def routes(self) -> list[BaseRoute]:
        return [Route(self.PATH, self, methods=["GET", "OPTIONS"])]

    def operation(self) -> Operation:
        return Operation(
            "GET",
            self.PATH,
            "Live event stream (Server-Sent Events): each new event as JSON, `id:` its sequence; Last-Event-ID resumes",
            "analytics",
            security="read",
            query=StreamArgs,
            response=StreamedEvent,
            content_type="text/event-stream",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "OPTIONS":
            await Response(status_code=204, headers=CORS_HEADERS)(scope, receive, send)
            return
        limiter_key = hash_key(presented_key(request))
        acquired = False
        try:
            gateway_id = await read_gateway(request)
            args = await request_args(request, StreamArgs)
            after = _resume_after(request, args)
            if not self._limiter.acquire(limiter_key):
                raise ApiError(
                    429,
                    f"Too many streams: at most {self._limiter.maximum} per key",
                    headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
                    retry_after=STREAM_RETRY_AFTER_SECONDS,
                )
            acquired = True
            subscription = await self._feed.subscribe(gateway_id, args)
        except CLIENT_ERRORS as exc:
            if acquired:
                self._limiter.release(limiter_key)
            error = client_error(exc).response()
            error.headers.update(CORS_HEADERS)
            await error(scope, receive, send)
            return
        try:
            response = EventSourceResponse(
                self._messages(subscription, after),
                headers={**CORS_HEADERS, "X-Accel-Buffering": "no"},
                ping=PING_SECONDS,
                send_timeout=SEND_TIMEOUT_SECONDS,
            )
            await response(scope, receive, send)
        finally:
            self._feed.unsubscribe(subscription)
            self._limiter.release(limiter_key)

    async def _messages(self, subscription: Subscription, after: int | None) -> AsyncIterator[ServerSentEvent]:
        """Stored events after `after` (a resume), then live ones: the queue holds only events after `start_seq`.

        An `after` beyond `start_seq` was not sent by this process (another one, or another database): the
        stream starts live rather than staying silent until the sequence catches up.
        """
        yield ServerSentEvent(comment="stream open", retry=RECONNECT_MS)
        if after is not None and after < subscription.start_seq:
            async for message in self._feed.replay(subscription, after):
                yield message
        async for item in subscription.receive:
            yield item.sse()
        if subscription.overflowed:
            notice = {"error": "This client fell behind; reconnect with Last-Event-ID to catch up"}
            yield ServerSentEvent(data=json.dumps(notice), event="overflow")
