"""How many events each gateway ever stored (`project_usage`), for seed 002's `max_events_lifetime`.

The writer adds each transaction's stored events before it commits (`SQLStore.fold_batch`), so the count is
exact, is one statement per gateway per transaction, and is not lowered when retention deletes old events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .base import Connection, EventRow

_ADD: str = (
    "INSERT INTO project_usage (gateway_id, events_total) VALUES (?, ?) ON CONFLICT (gateway_id)"
    " DO UPDATE SET events_total = project_usage.events_total + excluded.events_total"
)


def add_to_usage(conn: Connection, events: Sequence[EventRow]) -> None:
    """Count newly stored events into their gateways' lifetime totals, in the caller's transaction."""
    counts = Counter(event.gateway_id for event in events)
    for gateway_id, count in sorted(counts.items()):  # one order for every writer: no lock-order deadlock
        conn.execute(_ADD, (gateway_id, count))
