"""Web and server events, from any of the tracking endpoints to a stored row.

Every tracking endpoint turns its own body into a `WebEvent`; `WebIngestor.capture` enriches it
(`enrich.py`: hashed identities, match quality, device, attribution, hashed IP) and stores it
through the store's writer, so a 2xx is only sent for committed events. Raw email, phone,
external id and IP never reach the store.

**Page context** is first-class on every web event, whichever route brought it: `page_context`
takes `url`, `path`, `referrer`, `title` and the page's name from the event's own fields, else from
the same keys in its properties (where seed 002's tracker and our first `tracker.js` put them),
and derives `path` from `url` when none is given. `url`, `path` and `referrer` are columns (what
"Top pages", `/pages` and the sources read); `title` and `page` are kept in the properties.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from ..privacy import IpHasher
from ..store import CaptureStatus, EventRow, Store, WebFields
from ..store.outbox import hints_of
from ..vocabulary import PAGE, PAGE_NAME_ALIASES, PATH, REFERRER, TITLE, URL
from .enrich import classify_traffic, hash_email, hash_external_id, hash_phone, match_quality, parse_user_agent
from .geo import country_of
from .ipkind import ip_kind_of

Admission = Callable[[str], Awaitable[None]]
"""Asked with a gateway's id before its events are stored; raises to refuse them (`accounts.limits`)."""

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
    title: str | None = None
    page: str | None = None
    """The page's name (`page(name)` of the browser SDKs)."""
    properties: dict[str, Any] | None = None
    email: str | None = None
    phone: str | None = None
    external_id: str | None = None
    identifiers: set[str] = field(default_factory=set)
    """Names of the seed's user identifiers present (fbp, fbc, client_ip_address, ...), for match quality."""
    client_ip: str | None = None
    user_agent: str | None = None
    fbp: str | None = None
    """Meta's browser id (`_fbp`), kept only in the event's deliveries to integrations (`store.outbox`)."""
    fbc: str | None = None
    """Meta's click id (`_fbc`), likewise."""


def timestamp_ms(value: float | None) -> int | None:
    if value is None:
        return None
    return int(value * 1000) if value < SECONDS_CUTOFF else int(value)


def path_of(url: str | None) -> str | None:
    """The path of `url` (`/` for a bare origin), or None for no URL or one that does not parse."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme and not url.startswith("/"):
        return None
    return parts.path or "/"


@dataclass(frozen=True, slots=True)
class PageContext:
    url: str | None
    path: str | None
    referrer: str | None
    properties: dict[str, Any] | None
    """The event's properties with its `title` and `page` name, when it has them."""


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def page_context(event: WebEvent) -> PageContext:
    """Where the event happened: its own fields first, then the same keys in its properties, `path` from `url`."""
    props = event.properties or {}
    url = _text(event.url) or _text(props.get(URL))
    path = _text(event.path) or _text(props.get(PATH)) or path_of(url)
    referrer = _text(event.referrer) or _text(props.get(REFERRER))
    title = _text(event.title) or _text(props.get(TITLE))
    page = _text(event.page) or next(filter(None, (_text(props.get(key)) for key in PAGE_NAME_ALIASES)), None)
    properties = event.properties
    extra = {key: value for key, value in ((TITLE, title), (PAGE, page)) if value is not None and key not in props}
    if extra:
        properties = {**props, **extra}
    return PageContext(url=url, path=path, referrer=referrer, properties=properties)


class WebIngestor:
    def __init__(self, store: Store, hash_ip: IpHasher, *, admit: Admission | None = None) -> None:
        self._store = store
        self._hash_ip = hash_ip
        self._admit = admit
        """Asked before events of a gateway are stored; raises to refuse them (an account's event limit)."""

    def row(self, gateway_id: str, event: WebEvent, now_ms: int) -> EventRow:
        context = page_context(event)
        traffic = classify_traffic(context.url, context.referrer)
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
            properties=context.properties,
            ts_ms=event.ts_ms or now_ms,
            received_at_ms=now_ms,
            web=WebFields(
                anonymous_id=event.anonymous_id,
                user_id_hash=hash_external_id(event.user_id),
                url=context.url,
                path=context.path,
                referrer=context.referrer,
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
                traffic_confidence=traffic.confidence,
                ip_kind=ip_kind_of(event.client_ip),
            ),
        )

    async def capture(self, gateway_id: str, events: list[WebEvent]) -> list[tuple[CaptureStatus, EventRow]]:
        """Enrich and store `events` in one transaction; each one's status and stored row, in order."""
        if self._admit is not None and events:
            await self._admit(gateway_id)
        now_ms = int(time.time() * 1000)
        hints = [hints_of(e.source, e.fbp, e.fbc, e.user_agent) for e in events]
        return await self._store.capture_web([self.row(gateway_id, event, now_ms) for event in events], hints)
