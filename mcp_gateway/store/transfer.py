"""Copy a SQLite database into an empty PostgreSQL one (`mcp-gateway migrate-db`): every row of every table.

Both stores apply the same migrations, so the tables and columns match. The copy takes the rollups as they are
rather than rebuilding them, streams each table with PostgreSQL's COPY in one transaction (all or nothing), and
moves the `seq` sequences past the copied rows so new rows follow them in insertion order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread
import psycopg

from ..errors import StorageError
from .postgres import ADAPTERS, WRITE_LOCK, PostgresStore, redacted
from .sqlite import SQLiteStore

FIRST_TABLES: Final = ("gateways",)
"""Tables copied before all others: the ones other tables' foreign keys point at."""

SEEDED: Final = ("accounts",)
"""Tables whose rows a migration inserts (the `default` account, migration 21): emptied in the target before the
copy, which brings the source's."""

SEQUENCED: Final = ("mcp_sessions", "events", "deliveries")
"""Tables whose `seq` is insertion order, drawn from a sequence in PostgreSQL."""


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


def _tables(source: sqlite3.Connection) -> list[str]:
    names = [
        row[0]
        for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_migrations' ORDER BY name"
        )
    ]
    return [*(name for name in FIRST_TABLES if name in names), *(name for name in names if name not in FIRST_TABLES)]


def _columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]


async def copy_sqlite_to_postgres(
    db_path: Path, database_url: str, on_table: Callable[[Copied], None] = lambda copied: None
) -> list[Copied]:
    """Copy the SQLite file `db_path` into the PostgreSQL database at `database_url`, which must hold no gateway
    yet. Both are migrated to the current schema first. `on_table` hears of each table once copied."""
    if not db_path.is_file():
        raise StorageError(f"{db_path} is not a SQLite database file")
    for store in (SQLiteStore(db_path), PostgresStore(database_url)):  # the current schema on both sides
        await store.open()
        await store.close()
    return await anyio.to_thread.run_sync(_copy, db_path, database_url, on_table)


def _copy(db_path: Path, database_url: str, on_table: Callable[[Copied], None]) -> list[Copied]:
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        with psycopg.connect(database_url, autocommit=True, context=ADAPTERS) as target:
            return _copy_tables(source, target, on_table)
    except psycopg.Error as exc:
        raise StorageError(f"copying into {redacted(database_url)} failed: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"reading {db_path} failed: {exc}") from exc
    finally:
        source.close()


def _copy_tables(
    source: sqlite3.Connection, target: psycopg.Connection[tuple[object, ...]], on_table: Callable[[Copied], None]
) -> list[Copied]:
    copied: list[Copied] = []
    with target.transaction():
        target.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))  # no gateway process writes meanwhile
        if target.execute("SELECT 1 FROM gateways LIMIT 1").fetchone() is not None:
            raise StorageError("the PostgreSQL database already has gateways: copy into an empty database")
        for table in SEEDED:
            target.execute(f'DELETE FROM "{table}"')
        for table in _tables(source):
            columns = ", ".join(f'"{column}"' for column in _columns(source, table))
            rows = 0
            with target.cursor().copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
                for row in source.execute(f'SELECT {columns} FROM "{table}"'):
                    copy.write_row(row)
                    rows += 1
            copied.append(Copied(table, rows))
            on_table(copied[-1])
        for table in SEQUENCED:
            sequence = f"pg_get_serial_sequence('{table}', 'seq')"
            target.execute(f"SELECT setval({sequence}, COALESCE(MAX(seq), 0) + 1, false) FROM {table}")
    target.execute("ANALYZE")
    return copied
