"""Web and server events, from any of the tracking endpoints to a stored row.

Every tracking endpoint turns its own body into a `WebEvent`; `WebIngestor.capture` enriches it
(`enrich.py`: hashed identities, match quality, device, attribution, hashed IP) and stores it
through the store's writer, so a 2xx is only sent for committed events. Raw email, phone,
external id and IP never reach the store.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..privacy import IpHasher
from ..store import CaptureStatus, EventRow, Store, WebFields
from .enrich import classify_traffic, hash_email, hash_external_id, hash_phone, match_quality, parse_user_agent
from .geo import country_of

SECONDS_CUTOFF: Final = 100_000_000_000
"""Numeric timestamps below this are seconds (year 5138 in ms), above it milliseconds."""
MAX_TIMESTAMP: Final = 10**14
"""Largest numeric timestamp an ingest body may carry (milliseconds: around the year 5000)."""


@dataclass(slots=True)
class WebEvent:
    """One event as any tracking endpoint received it, before enrichment."""

    name: str
    source: Literal["web", "server"] = "web"
    event_id: str | None = None
    ts_ms: int | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    url: str | None = None
    path: str | None = None
    referrer: str | None = None
    properties: dict[str, Any] | None = None
    email: str | None = None
    phone: str | None = None
    external_id: str | None = None
    identifiers: set[str] = field(default_factory=set)
    """Names of the seed's user identifiers present (fbp, fbc, client_ip_address, ...), for match quality."""
    client_ip: str | None = None
    user_agent: str | None = None


def timestamp_ms(value: float | None) -> int | None:
    if value is None:
        return None
    return int(value * 1000) if value < SECONDS_CUTOFF else int(value)


class WebIngestor:
    def __init__(self, store: Store, hash_ip: IpHasher) -> None:
        self._store = store
        self._hash_ip = hash_ip

    def row(self, gateway_id: str, event: WebEvent, now_ms: int) -> EventRow:
        traffic = classify_traffic(event.url, event.referrer)
        device = parse_user_agent(event.user_agent)
        present = set(event.identifiers)
        present.update(
            name
            for name, value in (
                ("email", event.email),
                ("phone", event.phone),
                ("external_id", event.external_id or event.user_id),
                ("client_ip_address", event.client_ip),
                ("client_user_agent", event.user_agent),
            )
            if value
        )
        return EventRow(
            gateway_id=gateway_id,
            id=event.event_id or "evt_" + uuid.uuid4().hex,
            source=event.source,
            session_id=event.session_id,
            name=event.name,
            primitive_type=None,
            operation=None,
            latency_ms=None,
            success=None,
            error_type=None,
            args=None,
            result=None,
            properties=event.properties,
            ts_ms=event.ts_ms or now_ms,
            received_at_ms=now_ms,
            web=WebFields(
                anonymous_id=event.anonymous_id,
                user_id_hash=hash_external_id(event.user_id),
                url=event.url,
                path=event.path,
                referrer=event.referrer,
                traffic_source=traffic.source,
                traffic_medium=traffic.medium,
                traffic_campaign=traffic.campaign,
                traffic_rule=traffic.rule,
                device_type=device.type,
                browser=device.browser,
                os=device.os,
                ip_hash=self._hash_ip(event.client_ip) if event.client_ip else None,
                email_hash=hash_email(event.email),
                phone_hash=hash_phone(event.phone),
                external_id_hash=hash_external_id(event.external_id),
                emq=match_quality(present),
                country=country_of(event.client_ip),
            ),
        )

    async def capture(self, gateway_id: str, events: list[WebEvent]) -> list[tuple[CaptureStatus, EventRow]]:
        """Enrich and store `events` in one transaction; each one's status and stored row, in order."""
        now_ms = int(time.time() * 1000)
        return await self._store.capture_web([self.row(gateway_id, event, now_ms) for event in events])
