"""Turns Agnost wire records into stored sessions and events, for the REST API and the local sink alike.

The server applies its own privacy rules whatever the sender did: the store redacts every row
(`store/redaction.py`: values under sensitive keys in `args`, `result` and `user_data`, emails and
phones anywhere, resource URIs), and the client IP is kept only as a daily-salted HMAC.
Event ids come from the sender when given (so retries deduplicate) and are generated otherwise; a
timestamp below 10^11 is taken as seconds, anything else as milliseconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Final

from mcp_gateway_tracking.wire import CaptureBatch, CaptureEvent, CaptureSession

from ..privacy import IpHasher
from ..store import CaptureStatus, EventRow, SessionRow, Store
from .geo import country_of
from .ipkind import ip_kind_of
from .web import Admission, timestamp_ms

MCP_SOURCE: Final = "mcp"


def _ms(timestamp: float | None, default: int) -> int:
    ms = timestamp_ms(timestamp)
    return default if ms is None else ms


@dataclass(frozen=True, slots=True)
class CaptureOutcome:
    sessions: list[tuple[str, CaptureStatus]]
    events: list[tuple[str, CaptureStatus]]


class Ingestor:
    def __init__(self, store: Store, hash_ip: IpHasher, *, admit: Admission | None = None) -> None:
        self._store = store
        self._hash_ip = hash_ip
        self._admit = admit
        """Asked before events of a gateway are stored; raises to refuse them (an account's event limit)."""

    def _session(self, gateway_id: str, session: CaptureSession, now_ms: int) -> SessionRow:
        return SessionRow(
            gateway_id=gateway_id,
            id=session.session_id,
            client_config=session.client_config,
            connection_type=session.connection_type,
            transport=session.transport,
            ip_hash=self._hash_ip(session.ip),
            country=country_of(session.ip),
            ip_kind=ip_kind_of(session.ip),
            tools=tuple(session.tools),
            user_data=session.user_data,
            started_at_ms=_ms(session.timestamp, now_ms),
            received_at_ms=now_ms,
        )

    def _event(self, gateway_id: str, event: CaptureEvent, now_ms: int) -> EventRow:
        return EventRow(
            gateway_id=gateway_id,
            id=event.event_id or "evt_" + uuid.uuid4().hex,
            source=MCP_SOURCE,
            session_id=event.session_id,
            name=event.primitive_name,
            primitive_type=event.primitive_type,
            operation=event.operation,
            latency_ms=event.latency,
            success=event.success,
            error_type=event.error_type,
            args=event.args,
            result=event.result,
            properties=None,
            ts_ms=_ms(event.timestamp, now_ms),
            received_at_ms=now_ms,
        )

    async def capture(self, gateway_id: str, batch: CaptureBatch, *, background: bool = False) -> CaptureOutcome:
        """Store a batch (sessions first) in one transaction; each item's id and status, in order. `background`: the
        gateway's own tracking, which lets other writes (a lead, a client's capture) commit first."""
        if self._admit is not None and batch.events:
            await self._admit(gateway_id)
        now_ms = int(time.time() * 1000)
        sessions = [self._session(gateway_id, session, now_ms) for session in batch.sessions]
        events = [self._event(gateway_id, event, now_ms) for event in batch.events]
        session_status, event_status = await self._store.capture(sessions, events, background=background)
        return CaptureOutcome(
            sessions=[(row.id, status) for row, status in zip(sessions, session_status, strict=True)],
            events=[(row.id, status) for row, status in zip(events, event_status, strict=True)],
        )
