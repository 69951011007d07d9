"""Persistence: the `Store` protocol and its implementations."""

from .base import (
    CaptureStatus,
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
