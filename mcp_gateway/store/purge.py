"""Deleting one gateway and everything stored about it (`DELETE /projects/{id}`), the way retention deletes.

    1. its timed tables (`retention.TIMED_TABLES`: events, rollups, sketches, web sessions, session counts), an
       hour (or a day) per writer job from the oldest row to the newest, so no transaction grows with the data
       and other writes keep flowing between them, as `retention.prune` does;
    2. every other table with a `gateway_id` column, found in the database's catalogue (so tables other parts
       add later are included): MCP sessions, leads, API keys, identities, usage counts, ...;
    3. the settings that are its (the `/track` receipt secret), then, with a last sweep of every table for rows
       that arrived meanwhile, the gateway's row: one transaction, so the gateway is gone only once its data is.

The caller stops new data first (keys revoked, MCP and tracking disabled); a purge that failed half-way leaves the
gateway in place and can be run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

from .base import Connection, Store
from .retention import TIMED_TABLES, delete_span

logger = logging.getLogger(__name__)

_CATALOGUE: Final = {
    "sqlite": "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p"
    " WHERE m.type = 'table' AND p.name = 'gateway_id' ORDER BY m.name",
    "postgresql": "SELECT table_name FROM information_schema.columns WHERE column_name = 'gateway_id'"
    " AND table_schema = current_schema() ORDER BY table_name",
}


async def gateway_tables(store: Store) -> list[str]:
    """Every table with a `gateway_id` column."""
    return [str(row[0]) for row in await store.fetch(_CATALOGUE[store.dialect])]


async def purge_gateway(store: Store, gateway_id: str, *, settings: Sequence[str] = ()) -> dict[str, int]:
    """Delete the gateway, every row about it and the `settings` (keys) that are its; how many rows of each table
    went."""
    deleted: dict[str, int] = {}
    timed = {table for table, *_ in TIMED_TABLES}
    for table, column, span, _kind in TIMED_TABLES:
        bounds = await store.fetch(
            f"SELECT MIN({column}), MAX({column}) FROM {table} WHERE gateway_id = ?", (gateway_id,)
        )
        if not bounds or bounds[0][0] is None:
            continue
        start, newest = int(bounds[0][0]), int(bounds[0][1])
        start -= start % span
        while start <= newest:
            count = await store.write(delete_span(table, column, gateway_id, start, start + span))
            deleted[table] = deleted.get(table, 0) + count
            start += span
    tables = await gateway_tables(store)
    for table in tables:
        if table not in timed:
            count = await store.write(_delete_all(table, gateway_id))
            deleted[table] = deleted.get(table, 0) + count

    def last(conn: Connection) -> int:
        for table in tables:  # what arrived while the spans were deleted
            deleted[table] = deleted.get(table, 0) + _delete_all(table, gateway_id)(conn)
        for key in settings:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        return max(conn.execute("DELETE FROM gateways WHERE id = ?", (gateway_id,)).rowcount, 0)

    deleted["gateways"] = await store.write(last)
    logger.info("deleted gateway %s: %s", gateway_id, ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
    return {table: n for table, n in deleted.items() if n}


def _delete_all(table: str, gateway_id: str) -> Callable[[Connection], int]:
    def job(conn: Connection) -> int:
        return max(conn.execute(f"DELETE FROM {table} WHERE gateway_id = ?", (gateway_id,)).rowcount, 0)

    return job
