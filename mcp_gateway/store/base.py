"""The `Store` protocol: everything the gateway persists, independent of the database behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A tenant as stored: the manifest is the JSON object the gateways layer validates."""

    id: str
    name: str
    allowed_origins: tuple[str, ...]
    manifest: dict[str, Any]
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A demo request captured by `book_demo`: business data, stored as given."""

    id: str
    gateway_id: str
    name: str
    email: str
    company: str | None
    message: str | None
    source: str
    created_at_ms: int


class Store(Protocol):
    """Persistence for gateways, leads and settings. Every write is committed before it returns."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release connections."""
        ...

    async def get_gateway(self, gateway_id: str) -> GatewayRecord | None: ...

    async def list_gateways(self) -> list[GatewayRecord]: ...

    async def create_gateway(self, record: GatewayRecord) -> None:
        """Insert a gateway; `ConflictError` if the id is taken."""
        ...

    async def update_gateway(
        self,
        gateway_id: str,
        *,
        name: str | None = None,
        allowed_origins: tuple[str, ...] | None = None,
        manifest: dict[str, Any] | None = None,
        now_ms: int,
    ) -> GatewayRecord:
        """Change the given fields; `NotFoundError` if there is no such gateway."""
        ...

    async def book_lead(self, lead: LeadRecord, *, dedupe_window_ms: int) -> tuple[LeadRecord, bool]:
        """Store `lead` unless the same gateway got a lead from the same email within the window.

        Returns the stored lead and True, or the earlier lead and False. Check and insert are one
        transaction, so two concurrent bookings cannot both win.
        """
        ...

    async def get_lead(self, lead_id: str) -> LeadRecord | None: ...

    async def list_leads(self, gateway_id: str, *, limit: int = 100) -> list[LeadRecord]: ...

    async def get_setting(self, key: str) -> str | None: ...

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value exists; return the value that is stored."""
        ...
