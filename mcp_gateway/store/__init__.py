"""Persistence: the `Store` protocol and its implementations."""

from pathlib import Path

from .base import (
    BATCH_SIZE_BUCKETS,
    CaptureStatus,
    Dialect,
    EventRow,
    GatewayRecord,
    KeyKind,
    KeyRecord,
    LeadRecord,
    RollupRow,
    SessionRow,
    Store,
    WebFields,
    WriterStats,
)
from .outbox import ForwardHints
from .postgres import PostgresStore
from .sqlite import SQLiteStore


def store_for(database_url: str | None, db_path: Path) -> Store:
    """The store settings ask for: PostgreSQL at `database_url` when one is given, else the SQLite file `db_path`."""
    if database_url:
        return PostgresStore(database_url)
    return SQLiteStore(db_path)


__all__ = [
    "BATCH_SIZE_BUCKETS",
    "CaptureStatus",
    "Dialect",
    "EventRow",
    "ForwardHints",
    "GatewayRecord",
    "KeyKind",
    "KeyRecord",
    "LeadRecord",
    "PostgresStore",
    "RollupRow",
    "SQLiteStore",
    "SessionRow",
    "Store",
    "WebFields",
    "WriterStats",
    "store_for",
]
