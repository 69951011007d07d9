"""GET /metrics: what the gateway is doing, in Prometheus' text format.

    mcp_gateway_http_requests_total{route,method,status}        requests answered
    mcp_gateway_http_request_duration_seconds{route,method}     request to end of response (histogram)
    mcp_gateway_events_stored_total{source}                     new events committed (mcp, web, server)
    mcp_gateway_writer_transactions_total                       write transactions (group commits)
    mcp_gateway_writer_failed_transactions_total
    mcp_gateway_writer_busy_seconds_total                       time the writer spent in transactions
    mcp_gateway_writer_batch_jobs                               jobs per write transaction (histogram)
    mcp_gateway_writer_queue_depth                              jobs waiting for the writer
    mcp_gateway_tracking_sent_total                             self-tracking items delivered to the store
    mcp_gateway_tracking_dropped_total{reason}                  self-tracking items dropped (queue_full, ...)
    process_*                                                   memory, CPU, open files (Linux)

`route` is the matched route's template (`/analytics/leads/{lead_id}`; `unmatched` for none), a
request whose client closed the connection before the answer began has status 499 (as nginx
counts it; not a 5xx, whatever the app made of it), and an unknown method is `OTHER`, so the
label sets stay few whatever paths and methods clients send. The store's and self-tracking's
counters are read when Prometheus scrapes, not pushed on every write.
With `MCP_GATEWAY_METRICS_TOKEN` set, a scrape must send it as `Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Awaitable, Callable
from typing import Final

from mcp_gateway_tracking.sinks import SinkStats
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .store import BATCH_SIZE_BUCKETS, Store
from .web import CLIENT_CLOSED_REQUEST, ApiError

PREFIX: Final = "mcp_gateway"
UNMATCHED: Final = "unmatched"
BEARER_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "OTHER"
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a tools/call answers in about a millisecond, an analytics question in tens."""


MULTIPROCESS_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by `serve --workers N`, or by you): every process keeps its metrics in files there, and a scrape of any
one of them answers the sums over all (prometheus-client's multiprocess mode)."""


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


class Metrics:
    """One app's metrics, in a registry of its own (several apps in one process, as in the tests, never mix).

    The writer's and self-tracking's counters arrive as they happen (`WriterListener`, `SinkListener`), so in
    multiprocess mode they too are summed over the processes."""

    def __init__(self, store: Store, tracking: SinkStats, *, token: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._token = token
        self.before_scrape: list[Callable[[], Awaitable[None]]] = []
        """Run before each scrape: gauges read from the database (`integrations.forwarding`)."""
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from a request to the end of its response, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._events_stored = Counter(
            f"{PREFIX}_events_stored", "New events committed, by source", ["source"], registry=self.registry
        )
        self._transactions = Counter(
            f"{PREFIX}_writer_transactions", "Write transactions (group commits)", registry=self.registry
        )
        self._failed = Counter(
            f"{PREFIX}_writer_failed_transactions", "Write transactions rolled back", registry=self.registry
        )
        self._busy = Counter(
            f"{PREFIX}_writer_busy_seconds", "Time the writer spent in transactions", registry=self.registry
        )
        self._batch_jobs = Histogram(
            f"{PREFIX}_writer_batch_jobs",
            "Jobs per write transaction",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self._queue = Gauge(
            f"{PREFIX}_writer_queue_depth",
            "Write jobs waiting for the writer",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._sent = Counter(
            f"{PREFIX}_tracking_sent", "Self-tracking items delivered to the store", registry=self.registry
        )
        self._dropped = Counter(
            f"{PREFIX}_tracking_dropped", "Self-tracking items dropped, by reason", ["reason"], registry=self.registry
        )
        store.writer_stats.listeners.append(self)
        tracking.listeners.append(self)
        if not multiprocess():
            self._queue.set_function(store.writer_queue_depth)  # exact at scrape time
            ProcessCollector(registry=self.registry)

    async def serve(self, request: Request) -> Response:
        if self._token is not None:
            sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), self._token.encode()):
                raise ApiError(
                    401, "Send the metrics token as Authorization: Bearer", headers={"WWW-Authenticate": "Bearer"}
                )
        for refresh in self.before_scrape:
            await refresh()
        registry = self.registry
        if multiprocess():  # every process's files, summed
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus-client: not annotated
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def close(self) -> None:
        """This process is stopping: its live gauges leave the multiprocess sums (its counters stay in them)."""
        if multiprocess():
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # prometheus-client: not annotated

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = OTHER_METHOD  # a client's made-up method must not mint label values
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # labels() validates and locks: once per label set, not per request
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    # -- WriterListener and SinkListener: called on the writer's and the sink's threads

    def batch(self, jobs: int, seconds: float, *, failed: bool, queue_depth: int) -> None:
        self._transactions.inc()
        if failed:
            self._failed.inc()
        self._busy.inc(seconds)
        self._batch_jobs.observe(jobs)
        if multiprocess():
            self._queue.set(queue_depth)

    def stored(self, source: str, count: int) -> None:
        self._events_stored.labels(source).inc(count)

    def sent(self, count: int) -> None:
        self._sent.inc(count)

    def dropped(self, reason: str, count: int) -> None:
        self._dropped.labels(reason).inc(count)


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before it answers
        answered = closed_first = False  # closed_first: the client went away before the answer began

        async def send_status(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        async def receive_noting_close() -> Message:
            nonlocal closed_first
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                closed_first = True
            return message

        try:
            await self.app(scope, receive_noting_close, send_status)
        finally:
            if closed_first:
                status = CLIENT_CLOSED_REQUEST
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - started)
