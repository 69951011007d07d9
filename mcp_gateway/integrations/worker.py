"""The delivery worker: sends the outbox's due deliveries, in the app's lifespan, until the app stops.

Each round it asks (a cheap read) whether any delivery is due; if so it claims up to `CLAIM_LIMIT` of them in one
write transaction under a lease (`Settings.forward_lease_seconds`, far longer than a round; `store.outbox.claim`),
groups them by integration, sends each group in the platform's batches (`Dispatcher`), and records what became of
each (`store.outbox.settle`). On PostgreSQL the claim skips rows others hold (`FOR UPDATE SKIP LOCKED`) and every
write holds the store's advisory lock, so several processes never claim the same delivery. A process killed in
between leaves its claimed deliveries pending: they are due again when their lease ends and are sent again (at
least once; the platforms deduplicate on `event_id`). Unless a round claimed all it could (a backlog), the next
one waits `poll_seconds` (or `wake()`): deliveries gather into bigger batches, and a steady trickle of events
costs two write transactions per poll, not two per event.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Final

import anyio

from ..store import Store
from ..store.outbox import DUE, Delivery, Settlement, claim, settle
from .dispatch import Dispatcher
from .platforms import Platform
from .registry import Integration, IntegrationService

logger = logging.getLogger(__name__)

CLAIM_LIMIT: Final = 2000
"""Most deliveries one round claims (two Meta requests' worth)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        integrations: IntegrationService,
        dispatcher: Dispatcher,
        *,
        poll_seconds: float,
        claim_limit: int = CLAIM_LIMIT,
        lease_ms: int,
    ) -> None:
        self._store = store
        self._integrations = integrations
        self._dispatcher = dispatcher
        self._poll_seconds = poll_seconds
        self._claim_limit = claim_limit
        self._lease_ms = lease_ms
        self._wake = anyio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now, not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Return from `run` once the round in progress is settled (a round cut off mid-query would leave a
        PostgreSQL connection broken; its deliveries would only wait for their lease)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped (or cancelled); a failing round is logged and the next one tries again."""
        while not self._stopping:
            try:
                backlog = await self.run_once() >= self._claim_limit
            except Exception:
                logger.exception("delivery round failed")
                backlog = False
            if backlog:  # more is due: go on at once
                await anyio.sleep(0)
                continue
            with anyio.move_on_after(self._poll_seconds):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def run_once(self) -> int:
        """One round: claim what is due, send it, settle it; how many deliveries it claimed."""
        now = _now_ms()
        due = await self._store.fetch(f"SELECT 1 FROM deliveries WHERE {DUE} LIMIT 1", (now,))
        if not due:
            return 0
        skip_locked = self._store.dialect == "postgresql"
        claimed = await self._store.write(
            lambda conn: claim(
                conn, now_ms=now, limit=self._claim_limit, lease_ms=self._lease_ms, skip_locked=skip_locked
            )
        )
        if not claimed:
            return 0
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in claimed:
            groups[delivery.integration_id].append(delivery)
        integrations = await self._integrations.load(list(groups))
        platforms: Mapping[str, Platform] = self._integrations.platforms
        settlements: list[Settlement] = []

        async def one(integration_id: str, deliveries: list[Delivery]) -> None:
            integration = integrations.get(integration_id)
            platform = None if not isinstance(integration, Integration) else platforms.get(integration.kind)
            settlements.extend(await self._dispatcher.deliver(integration, platform, deliveries))

        async with anyio.create_task_group() as tg:
            for integration_id, deliveries in groups.items():
                tg.start_soon(one, integration_id, deliveries)
        await self._store.write(lambda conn: settle(conn, settlements, _now_ms()))
        return len(claimed)
