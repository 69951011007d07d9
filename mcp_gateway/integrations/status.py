"""How each integration's deliveries are doing: counts by status, its latest error, p95 delivery latency."""

from __future__ import annotations

import math
from typing import Final

from typing_extensions import TypedDict

from ..store import Store
from ..store.outbox import DELIVERY_STATUSES
from .registry import Integration

LATENCY_SAMPLE: Final = 1000
"""The p95 delivery latency is over the integration's latest this many sent deliveries."""


class DeliveryCounts(TypedDict):
    pending: int
    sent: int
    failed: int
    dead: int
    skipped: int


class DeliveryStatusView(TypedDict):
    deliveries: DeliveryCounts
    last_error: str | None
    last_error_at_ms: int | None
    p95_latency_ms: int | None
    """From the event's commit to the platform's acceptance, over the latest sent deliveries."""


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def delivery_status(store: Store, integration: Integration) -> DeliveryStatusView:
    return await status_of(store, integration.id, integration.last_error, integration.last_error_at_ms)


async def status_of(
    store: Store, integration_id: str, last_error: str | None, last_error_at_ms: int | None
) -> DeliveryStatusView:
    rows = await store.fetch(
        "SELECT status, COUNT(*) FROM deliveries WHERE integration_id = ? GROUP BY status", (integration_id,)
    )
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    counts.update({row[0]: int(row[1]) for row in rows if row[0] in counts})
    latencies = await store.fetch(
        "SELECT latency_ms FROM deliveries WHERE integration_id = ? AND status = 'sent'"
        " ORDER BY updated_at_ms DESC LIMIT ?",
        (integration_id, LATENCY_SAMPLE),
    )
    return DeliveryStatusView(
        deliveries=DeliveryCounts(
            pending=counts["pending"],
            sent=counts["sent"],
            failed=counts["failed"],
            dead=counts["dead"],
            skipped=counts["skipped"],
        ),
        last_error=last_error,
        last_error_at_ms=last_error_at_ms,
        p95_latency_ms=percentile([int(row[0]) for row in latencies if row[0] is not None], 0.95),
    )


class IntegrationSummary(TypedDict):
    """An integration as a read key sees it: what it is and how its deliveries do; never its config."""

    id: str
    kind: str
    name: str
    enabled: bool
    sync: bool
    status: DeliveryStatusView


class IntegrationSummaries(TypedDict):
    integrations: list[IntegrationSummary]


async def summaries(store: Store, gateway_id: str) -> IntegrationSummaries:
    """Every integration of the gateway with its delivery status, no config: the dashboard's card."""
    rows = await store.fetch(
        "SELECT id, kind, name, enabled, sync, last_error, last_error_at_ms FROM integrations WHERE gateway_id = ?"
        " ORDER BY created_at_ms, id",
        (gateway_id,),
    )
    return IntegrationSummaries(
        integrations=[
            IntegrationSummary(
                id=row[0],
                kind=row[1],
                name=row[2],
                enabled=bool(row[3]),
                sync=bool(row[4]),
                status=await status_of(store, row[0], row[5], None if row[6] is None else int(row[6])),
            )
            for row in rows
        ]
    )
