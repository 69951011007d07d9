"""Persistence: the `Store` protocol and its implementations."""

from .base import (
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
)
from .sqlite import SQLiteStore

__all__ = [
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
]
