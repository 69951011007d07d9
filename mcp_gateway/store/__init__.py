"""Persistence: the `Store` protocol and its implementations."""

from .base import GatewayRecord, LeadRecord, Store
from .sqlite import SQLiteStore

__all__ = ["GatewayRecord", "LeadRecord", "SQLiteStore", "Store"]
