"""Retention: tracked data older than its period is deleted, hourly; three periods, after seed 000's table.

    events     raw events, MCP sessions, identity links, deliveries  MCP_GATEWAY_EVENT_RETENTION_DAYS   30
    analytics  traffic rollups, sketches, web sessions, counts    MCP_GATEWAY_ANALYTICS_RETENTION_DAYS  30
    health     MCP calls, errors and latency per primitive        MCP_GATEWAY_HEALTH_RETENTION_DAYS     60

The seed keeps analytics 30 days and health stats (success/error counts) 60; its event log keeps 100 entries
for 24 hours because its analytics are aggregates. Here funnels, cohort retention, `/events`, session detail and
the lead list read the raw events themselves, so they are kept as long as the analytics by default (1 gives the
seed's day, at the cost of those answers beyond it). 0 keeps a kind forever; `MCP_GATEWAY_RETENTION_DAYS` (the
one period of earlier versions) is the default of all three. Gateways, keys and leads (business data) are never
deleted.

Deletes go through the writer, an hour (or a day, for daily tables) of one gateway per job, so no transaction
grows with the database and writes keep flowing between them. Several processes may prune at once: each job
deletes what is still there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import anyio

from ..errors import StorageError
from .base import HOUR_MS, Connection, Store

logger = logging.getLogger(__name__)

DAY_MS: Final = 24 * HOUR_MS

Kind = Literal["events", "analytics", "health"]
"""What a table holds, which says how long it is kept."""

TIMED_TABLES: Final[tuple[tuple[str, str, int, Kind], ...]] = (
    ("events", "ts_ms", HOUR_MS, "events"),
    ("deliveries", "event_ts_ms", HOUR_MS, "events"),  # the outbox holds a copy of the event: kept no longer
    ("event_rollups", "hour_ms", HOUR_MS, "analytics"),
    ("activity_rollups", "hour_ms", HOUR_MS, "analytics"),
    ("mcp_rollups", "hour_ms", HOUR_MS, "health"),
    ("distinct_sketches", "bucket_ms", DAY_MS, "analytics"),
    ("event_rollups_daily", "day_ms", DAY_MS, "analytics"),
    ("mcp_rollups_daily", "day_ms", DAY_MS, "health"),
    ("session_counts", "day_ms", DAY_MS, "analytics"),
    ("visitor_sketches", "day_ms", DAY_MS, "analytics"),
    ("sessions", "last_ms", DAY_MS, "analytics"),
)
"""Each table, the column saying when its row happened, the span one delete job takes, and its kind."""


@dataclass(frozen=True, slots=True)
class RetentionPeriods:
    """Days each kind of data is kept; 0 keeps it forever."""

    events: int
    analytics: int
    health: int

    @property
    def enabled(self) -> bool:
        return any((self.events, self.analytics, self.health))

    def cutoffs(self, now_ms: int) -> dict[Kind, int | None]:
        """For each kind, the time before which its rows go (None: kept)."""
        days: dict[Kind, int] = {"events": self.events, "analytics": self.analytics, "health": self.health}
        return {kind: now_ms - n * DAY_MS if n else None for kind, n in days.items()}


ORPHAN_MCP_SESSIONS: Final = (
    "DELETE FROM mcp_sessions WHERE gateway_id = ? AND started_at_ms < ? AND NOT EXISTS"
    " (SELECT 1 FROM events WHERE events.gateway_id = mcp_sessions.gateway_id AND events.session_id = mcp_sessions.id)"
)
"""MCP sessions that started before the cutoff and have no event left (a session still in use keeps its row)."""
ORPHAN_IDENTITIES: Final = (
    "DELETE FROM identities WHERE gateway_id = ? AND identified_at_ms < ? AND NOT EXISTS"
    " (SELECT 1 FROM events WHERE events.gateway_id = identities.gateway_id"
    " AND events.anonymous_id = identities.anonymous_id)"
)
"""Links of a visitor to a user (`/v1/identify`) made before the cutoff whose visitor has no event left: the link
is personal data about events that are gone. A visitor still sending events keeps its link."""
ORPHANS: Final = {"mcp_sessions": ORPHAN_MCP_SESSIONS, "identities": ORPHAN_IDENTITIES}


def delete_span(table: str, column: str, gateway_id: str, start_ms: int, end_ms: int) -> Callable[[Connection], int]:
    def job(conn: Connection) -> int:
        cursor = conn.execute(
            f"DELETE FROM {table} WHERE gateway_id = ? AND {column} >= ? AND {column} < ?",
            (gateway_id, start_ms, end_ms),
        )
        return max(cursor.rowcount, 0)

    return job


async def prune(store: Store, cutoffs: int | Mapping[Kind, int | None]) -> dict[str, int]:
    """Delete every tracked row about a time before its kind's cutoff (one `int`: the same for every kind; None:
    keep that kind); how many rows of each table went."""
    if isinstance(cutoffs, int):
        cutoffs = {"events": cutoffs, "analytics": cutoffs, "health": cutoffs}
    deleted: dict[str, int] = {}
    gateways = [str(row[0]) for row in await store.fetch("SELECT id FROM gateways ORDER BY id")]
    for table, column, span, kind in TIMED_TABLES:
        cutoff_ms = cutoffs.get(kind)
        if cutoff_ms is None:
            continue
        for gateway_id in gateways:
            oldest = await store.fetch(f"SELECT MIN({column}) FROM {table} WHERE gateway_id = ?", (gateway_id,))
            if not oldest or oldest[0][0] is None or int(oldest[0][0]) >= cutoff_ms:
                continue
            start = int(oldest[0][0]) - int(oldest[0][0]) % span
            while start < cutoff_ms:
                end = min(start + span, cutoff_ms)
                count = await store.write(delete_span(table, column, gateway_id, start, end))
                deleted[table] = deleted.get(table, 0) + count
                start = end
    events_cutoff_ms = cutoffs.get("events")
    for gateway_id in gateways if events_cutoff_ms is not None else []:
        for table, statement in ORPHANS.items():

            def orphans(
                conn: Connection, sql: str = statement, params: tuple[str, int | None] = (gateway_id, events_cutoff_ms)
            ) -> int:
                return max(conn.execute(sql, params).rowcount, 0)

            deleted[table] = deleted.get(table, 0) + await store.write(orphans)
    if any(deleted.values()):
        logger.info("retention: deleted %s", ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
    return deleted


PRUNE_EVERY_SECONDS: Final = 3600.0


async def keep_pruning(store: Store, periods: RetentionPeriods, *, every_seconds: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune what is older than its period now and then every `every_seconds`, until cancelled; a failed round
    is logged and the next one tries again."""
    while True:
        try:
            await prune(store, periods.cutoffs(int(time.time() * 1000)))
        except StorageError:
            logger.exception("retention: pruning failed; trying again in %.0f s", every_seconds)
        await anyio.sleep(every_seconds)
