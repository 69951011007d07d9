"""Synchronous forwarding: `POST /track` sends a new event to the gateway's `sync` integrations itself.

The event and its deliveries are committed first, as always (the outbox holds a synchronous integration's new
delivery back for `store.outbox.SYNC_HOLD_MS`); then the request claims them, sends them with the IP and user
agent of the request in flight (which are never stored) and records the outcome. A delivery that failed with a
retryable error stays pending for the worker (without the IP and user agent); if the request dies, the worker
takes over when the hold ends. `/track` answers 502 `All Providers Failed` (seed 000) when every synchronous
integration failed; the event is stored all the same.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import anyio

from ..store import Store
from ..store.outbox import Delivery, Settlement, pending_for, settle
from .dispatch import Dispatcher
from .forwarded import with_client
from .platforms import ForwardedEvent
from .registry import Integration, IntegrationService

logger = logging.getLogger(__name__)


class SyncForwarder:
    def __init__(self, store: Store, integrations: IntegrationService, dispatcher: Dispatcher) -> None:
        self._store = store
        self._integrations = integrations
        self._dispatcher = dispatcher

    async def forward(
        self, gateway_id: str, event_id: str, *, client_ip: str | None, user_agent: str | None
    ) -> bool | None:
        """Send the stored event `event_id`'s pending deliveries to the gateway's synchronous integrations: None when
        none wanted it, True when at least one took it (or its filter dropped it), False when all failed.

        The event is committed already: a failure of our own here (the database) is logged and answered None, and
        the worker sends the deliveries when their hold ends."""
        try:
            return await self._forward(gateway_id, event_id, client_ip=client_ip, user_agent=user_agent)
        except Exception:
            logger.exception("synchronous forwarding of %s failed; the delivery worker takes over", event_id)
            return None

    async def _forward(
        self, gateway_id: str, event_id: str, *, client_ip: str | None, user_agent: str | None
    ) -> bool | None:
        sync_ids = await self._integrations.sync_ids(gateway_id)
        if not sync_ids:
            return None
        claimed = await self._store.write(lambda conn: pending_for(conn, gateway_id, event_id, sync_ids))
        if not claimed:
            return None
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in claimed:
            groups[delivery.integration_id].append(delivery)
        integrations = await self._integrations.load(list(groups))

        def adapt(event: ForwardedEvent) -> ForwardedEvent:
            return with_client(event, client_ip, user_agent)

        settlements: list[Settlement] = []

        async def one(integration_id: str, deliveries: list[Delivery]) -> None:
            integration = integrations.get(integration_id)
            platforms = self._integrations.platforms
            platform = platforms.get(integration.kind) if isinstance(integration, Integration) else None
            settlements.extend(await self._dispatcher.deliver(integration, platform, deliveries, adapt=adapt))

        async with anyio.create_task_group() as tg:
            for integration_id, deliveries in groups.items():
                tg.start_soon(one, integration_id, deliveries)
        await self._store.write(lambda conn: settle(conn, settlements, int(time.time() * 1000)))
        if any(s.status in ("sent", "skipped") for s in settlements):
            return True
        return False
