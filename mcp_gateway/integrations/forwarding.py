"""Everything forwarding needs in one app, built once: the integrations, the dispatcher and its HTTP client, the
delivery worker (run in the app's lifespan), synchronous forwarding for `/track`, the admin routes and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Final

import anyio
import httpx
from prometheus_client import Counter, Gauge, Histogram

from ..admin import AdminAuth
from ..config import Settings
from ..gateways import GatewayDirectory
from ..metrics import PREFIX, Metrics
from ..openapi import Operation
from ..ratelimit import RateLimiter
from ..store import Store
from .api import IntegrationsApi
from .crypto import SecretBox
from .dispatch import Dispatcher, RetryPolicy
from .platforms import PLATFORMS, Platform
from .registry import IntegrationService
from .sync import SyncForwarder
from .worker import DeliveryWorker

USER_AGENT: Final = "mcp-gateway-forwarding"

STOP_GRACE_SECONDS: Final = 5.0
"""How long stopping the app waits for the delivery round in progress (its platform requests) to settle."""

DELIVERY_LATENCY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""Seconds from an event's commit to the platform accepting it."""


class Forwarding:
    def __init__(
        self,
        store: Store,
        directory: GatewayDirectory,
        settings: Settings,
        auth: AdminAuth,
        *,
        limiter: RateLimiter | None = None,
        platforms: Mapping[str, Platform] = PLATFORMS,
    ) -> None:
        box = SecretBox.from_settings(settings.integrations_key, settings.db_path.parent)
        self.integrations = IntegrationService(store, box, platforms, cache_seconds=settings.gateway_cache_seconds)
        self._client = httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, follow_redirects=False)
        policy = RetryPolicy(
            settings.forward_max_attempts, settings.forward_retry_base_seconds, settings.forward_retry_max_seconds
        )
        self.dispatcher = Dispatcher(self._client, policy, timeout_s=settings.forward_timeout_seconds)
        self.worker = DeliveryWorker(
            store,
            self.integrations,
            self.dispatcher,
            poll_seconds=settings.forward_poll_seconds,
            lease_ms=int(settings.forward_lease_seconds * 1000),
        )
        self.sync = SyncForwarder(store, self.integrations, self.dispatcher)
        self.api = IntegrationsApi(
            auth,
            directory,
            store,
            self.integrations,
            self.dispatcher,
            max_body_bytes=settings.max_body_bytes,
            limiter=limiter,
            wake=self.worker.wake,
        )
        self._store = store

    def operations(self) -> list[Operation]:
        return self.api.operations()

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run the delivery worker while the app runs: at the end it finishes its round (for at most
        `STOP_GRACE_SECONDS`, then it is cancelled); the HTTP client is closed after."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.worker.run)
                try:
                    yield
                finally:
                    self.worker.stop()
                    tg.cancel_scope.deadline = anyio.current_time() + STOP_GRACE_SECONDS
        finally:
            await self._client.aclose()

    def instrument(self, metrics: Metrics) -> None:
        """Deliveries in `/metrics`:

        mcp_gateway_deliveries_total{kind,outcome}         tries settled by this process: sent, retry, failed, dead
        mcp_gateway_delivery_latency_seconds{kind}         event commit to platform acceptance (histogram)
        mcp_gateway_deliveries_pending                     deliveries waiting in the outbox (all processes)
        """
        outcomes = Counter(
            f"{PREFIX}_deliveries",
            "Deliveries to integrations settled, by platform kind and outcome",
            ["kind", "outcome"],
            registry=metrics.registry,
        )
        latency = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "From an event's commit to the platform accepting it, by platform kind",
            ["kind"],
            buckets=DELIVERY_LATENCY_BUCKETS,
            registry=metrics.registry,
        )
        pending = Gauge(
            f"{PREFIX}_deliveries_pending",
            "Deliveries waiting in the outbox (due or retrying)",
            registry=metrics.registry,
            multiprocess_mode="mostrecent",
        )

        def heard(kind: str, outcome: str, count: int, latencies_ms: Sequence[int]) -> None:
            outcomes.labels(kind, outcome).inc(count)
            if latencies_ms:
                histogram = latency.labels(kind)
                for latency_ms in latencies_ms:
                    histogram.observe(latency_ms / 1000)

        async def count_pending() -> None:
            rows = await self._store.fetch("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
            pending.set(int(rows[0][0]))

        self.dispatcher.stats.listeners.append(heard)
        metrics.before_scrape.append(count_pending)
