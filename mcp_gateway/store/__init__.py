"""Persistence: the `Store` protocol and its implementations."""

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
from .sqlite import SQLiteStore

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "CaptureStatus",
    "Dialect",
    "EventRow",
    "GatewayRecord",
    "KeyKind",
    "KeyRecord",
    "LeadRecord",
    "RollupRow",
    "SQLiteStore",
    "SessionRow",
    "Store",
    "WebFields",
    "WriterStats",
]
