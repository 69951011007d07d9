"""Retention: deleting tracked data older than a number of days (`MCP_GATEWAY_RETENTION_DAYS`), off by default.

The seed's data-retention table (event logs 100 entries / 24 h, analytics 30 days, health stats 60 days) is
the edge product's: there, analytics are kept as aggregates and raw logs briefly. Here the raw events answer
windows of up to 90 days and the rollups are derived from them, so one period applies to everything tracked:
events, MCP sessions, web sessions and every rollup, by the time each row is about. Gateways, keys and leads
(business data) are never deleted by it. `MCP_GATEWAY_RETENTION_DAYS=30` keeps what the seed's analytics keep.

Deletes go through the writer, an hour (or a day, for daily tables) of one gateway per job, so no transaction
grows with the database and writes keep flowing between them. Several processes may prune at once: each job
deletes what is still there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import anyio

from ..errors import StorageError
from .base import HOUR_MS, Connection, Store

logger = logging.getLogger(__name__)

DAY_MS: Final = 24 * HOUR_MS

TIMED_TABLES: Final = (
    ("events", "ts_ms", HOUR_MS),
    ("event_rollups", "hour_ms", HOUR_MS),
    ("activity_rollups", "hour_ms", HOUR_MS),
    ("mcp_rollups", "hour_ms", HOUR_MS),
    ("distinct_sketches", "bucket_ms", DAY_MS),
    ("event_rollups_daily", "day_ms", DAY_MS),
    ("mcp_rollups_daily", "day_ms", DAY_MS),
    ("session_counts", "day_ms", DAY_MS),
    ("visitor_sketches", "day_ms", DAY_MS),
    ("sessions", "last_ms", DAY_MS),
)
"""Each table, the column saying when its row happened, and the span one delete job takes."""

ORPHAN_MCP_SESSIONS: Final = (
    "DELETE FROM mcp_sessions WHERE gateway_id = ? AND started_at_ms < ? AND NOT EXISTS"
    " (SELECT 1 FROM events WHERE events.gateway_id = mcp_sessions.gateway_id AND events.session_id = mcp_sessions.id)"
)
"""MCP sessions that started before the cutoff and have no event left (a session still in use keeps its row)."""


def _delete_span(table: str, column: str, gateway_id: str, start_ms: int, end_ms: int) -> Callable[[Connection], int]:
    def job(conn: Connection) -> int:
        cursor = conn.execute(
            f"DELETE FROM {table} WHERE gateway_id = ? AND {column} >= ? AND {column} < ?",
            (gateway_id, start_ms, end_ms),
        )
        return max(cursor.rowcount, 0)

    return job


async def prune(store: Store, cutoff_ms: int) -> dict[str, int]:
    """Delete every tracked row about a time before `cutoff_ms`; how many rows of each table went."""
    deleted: dict[str, int] = {}
    gateways = [str(row[0]) for row in await store.fetch("SELECT id FROM gateways ORDER BY id")]
    for table, column, span in TIMED_TABLES:
        for gateway_id in gateways:
            oldest = await store.fetch(f"SELECT MIN({column}) FROM {table} WHERE gateway_id = ?", (gateway_id,))
            if not oldest or oldest[0][0] is None or int(oldest[0][0]) >= cutoff_ms:
                continue
            start = int(oldest[0][0]) - int(oldest[0][0]) % span
            while start < cutoff_ms:
                end = min(start + span, cutoff_ms)
                count = await store.write(_delete_span(table, column, gateway_id, start, end))
                deleted[table] = deleted.get(table, 0) + count
                start = end
    for gateway_id in gateways:

        def orphans(conn: Connection, gateway_id: str = gateway_id) -> int:
            return max(conn.execute(ORPHAN_MCP_SESSIONS, (gateway_id, cutoff_ms)).rowcount, 0)

        deleted["mcp_sessions"] = deleted.get("mcp_sessions", 0) + await store.write(orphans)
    if any(deleted.values()):
        logger.info("retention: deleted %s", ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
    return deleted


PRUNE_EVERY_SECONDS: Final = 3600.0


async def keep_pruning(store: Store, days: int, *, every_seconds: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune what is older than `days` now and then every `every_seconds`, until cancelled; a failed round is
    logged and the next one tries again."""
    while True:
        try:
            await prune(store, int(time.time() * 1000) - days * DAY_MS)
        except StorageError:
            logger.exception("retention: pruning failed; trying again in %.0f s", every_seconds)
        await anyio.sleep(every_seconds)
