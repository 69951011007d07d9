"""Deleting a project: at once in the request, the purge of its data in the background.

`DELETE /projects/{id}` stops the project in the request (its keys revoked, MCP and tracking off), counts its rows
(reads, not the writer) and records a purge order, a row `project_purge:<id>` of the `settings` table.
From that commit on the project is gone for every reader: lists, `GET /projects/{id}`, the analytics, the
account's project count and names (`LIVE_PROJECT` filters it out). `ProjectPurger`, a task of the app's
lifespan, carries out the orders (`store.purge.purge_gateway`: the data in bounded writer jobs, then the gateway's
row and the order itself in one transaction), on every start too, so a purge a restart interrupted goes on where
it stopped. Every process of a PostgreSQL deployment runs one; two purging one project only delete twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Final

import anyio

from ..ingest.track import RECEIPT_SECRET_SETTING
from ..store import Store
from ..store.base import Connection
from ..store.purge import gateway_tables, purge_gateway

logger = logging.getLogger(__name__)

PURGE_SETTING_PREFIX: Final = "project_purge:"
LIVE_PROJECT: Final = f"NOT EXISTS (SELECT 1 FROM settings s WHERE s.key = '{PURGE_SETTING_PREFIX}' || g.id)"
"""SQL true of a gateway `g` that is not being deleted."""
RETRY_SECONDS: Final = 60.0
"""How long a purge that failed (the database away) waits before the next try, unless a new order wakes it."""


def purge_setting(gateway_id: str) -> str:
    return PURGE_SETTING_PREFIX + gateway_id


async def order_purge(store: Store, gateway_id: str, *, now_ms: int) -> dict[str, int] | None:
    """Record the order to purge `gateway_id` and count its rows by table (what will be removed; read before the
    order, outside the writer, so counting a big project never holds up other writes); None if it is being deleted
    already."""
    counts: dict[str, int] = {}
    for table in await gateway_tables(store):  # table names from the database's catalogue, not input
        rows = await store.fetch(f"SELECT COUNT(*) FROM {table} WHERE gateway_id = ?", (gateway_id,))
        if rows and int(rows[0][0]):
            counts[table] = int(rows[0][0])

    def job(conn: Connection) -> bool:
        cursor = conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (purge_setting(gateway_id), json.dumps({"requested_at_ms": now_ms})),
        )
        return cursor.rowcount > 0

    return counts if await store.write(job) else None


async def ordered_purges(store: Store) -> list[str]:
    """The projects ordered purged and not purged yet."""
    upper = PURGE_SETTING_PREFIX[:-1] + chr(ord(PURGE_SETTING_PREFIX[-1]) + 1)  # the keys' range: an index seek
    rows = await store.fetch(
        "SELECT key FROM settings WHERE key >= ? AND key < ? ORDER BY key", (PURGE_SETTING_PREFIX, upper)
    )
    return [str(row[0])[len(PURGE_SETTING_PREFIX) :] for row in rows]


STOP_GRACE_SECONDS: Final = 5.0
"""How long a stopping app waits for the purge round under way (a purge resumes at the next start anyway)."""


class ProjectPurger:
    """Carries out the purge orders while the app runs: at start, when `wake()`n, and after a failure."""

    def __init__(self, store: Store, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self._store = store
        self._retry_seconds = retry_seconds
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._stopping = False

    def wake(self) -> None:
        """A new order: purge now."""
        self._idle = anyio.Event()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until a round found no order left (bound it with a timeout)."""
        await self._idle.wait()

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Purge while the app runs. At the end the round under way finishes (for at most `STOP_GRACE_SECONDS`,
        then it is cancelled): cancelling a query mid-flight makes the PostgreSQL driver close its connection and
        log about it after the app is gone."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._loop)
            try:
                yield
            finally:
                self._stopping = True
                self._wake.set()
                tg.cancel_scope.deadline = anyio.current_time() + STOP_GRACE_SECONDS

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake = anyio.Event()
            idle = self._idle
            try:
                done = await self._round()
            except Exception:  # whatever the driver raised: the app goes on, the order stays, the next round retries
                logger.exception("project purge failed; trying again in %.0f s", self._retry_seconds)
                done = False
            if done and idle is self._idle:  # no order came while this round ran
                idle.set()
            with anyio.move_on_after(None if done else self._retry_seconds):
                await self._wake.wait()

    async def _round(self) -> bool:
        """Purge every ordered project; whether none is left."""
        for gateway_id in await ordered_purges(self._store):
            settings = (RECEIPT_SECRET_SETTING.format(gateway_id=gateway_id), purge_setting(gateway_id))
            await purge_gateway(self._store, gateway_id, settings=settings)
        return not await ordered_purges(self._store)
