"""The `sessions` table: one row per session id with events, kept by the writer like the rollups.

Sessions are what most questions count — sessions in a window, their length, entry and exit page,
where they came from, how many MCP calls and errors, whether they booked a demo — and a row per
session answers all of them without touching the events. Each batch's events are folded per
session in Python, then upserted with expressions that keep the earliest/latest values whatever
order batches arrive in (portable SQL: `CASE`, not SQLite's two-argument `MIN`/`MAX`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ..vocabulary import BOOK_DEMO, PAGE_VIEW_NAMES, SESSION_END
from .base import Connection, EventRow

__all__ = ["BOOK_DEMO", "PAGE_VIEW_NAMES", "SESSION_END", "add_to_sessions", "referrer_host"]


@dataclass(slots=True)
class _Fold:
    """One session's share of a batch."""

    source: str
    actor: str
    started_ms: int
    last_ms: int
    events: int = 0
    page_views: int = 0
    entry_ms: int | None = None
    entry_path: str | None = None
    exit_ms: int | None = None
    exit_path: str | None = None
    attr_ms: int | None = None
    traffic_source: str | None = None
    traffic_medium: str | None = None
    referrer_host: str | None = None
    country: str | None = None
    device_type: str | None = None
    calls: int = 0
    errors: int = 0
    latency_ms: float = 0.0
    booked_ms: int | None = None
    client: str | None = None
    ended_ms: int | None = None
    engagement_score: float | None = None
    ip_kind: str | None = None


def referrer_host(referrer: str | None) -> str | None:
    """The host of a referrer URL, without `www.`; None for none or a malformed one."""
    if not referrer:
        return None
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


def _fold(fold: _Fold, event: EventRow) -> None:
    ts = event.ts_ms
    if ts < fold.started_ms:
        fold.started_ms, fold.source = ts, event.source
    fold.last_ms = max(fold.last_ms, ts)
    fold.events += 1
    if event.name in PAGE_VIEW_NAMES:
        fold.page_views += 1
    web = event.web
    if web is not None:
        if not fold.actor:
            fold.actor = web.anonymous_id or web.user_id_hash or ""
        fold.ip_kind = fold.ip_kind or web.ip_kind
        if web.path:
            if fold.entry_ms is None or ts < fold.entry_ms:
                fold.entry_ms, fold.entry_path = ts, web.path
            if fold.exit_ms is None or ts >= fold.exit_ms:
                fold.exit_ms, fold.exit_path = ts, web.path
        if web.traffic_source and (fold.attr_ms is None or ts < fold.attr_ms):
            fold.attr_ms = ts
            fold.traffic_source, fold.traffic_medium = web.traffic_source, web.traffic_medium
            fold.referrer_host, fold.country, fold.device_type = (
                referrer_host(web.referrer),
                web.country,
                web.device_type,
            )
    if event.name == SESSION_END and (fold.ended_ms is None or ts >= fold.ended_ms):
        score = (event.properties or {}).get("engagement_score")
        fold.ended_ms = ts
        fold.engagement_score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
    if event.source == "mcp" and event.primitive_type is not None and (event.operation or "call") == "call":
        fold.calls += 1
        fold.latency_ms += event.latency_ms or 0.0
        if not event.success:
            fold.errors += 1
        elif event.name == BOOK_DEMO and (fold.booked_ms is None or ts < fold.booked_ms):
            fold.booked_ms = ts


_EARLIER: Final = "CASE WHEN excluded.{at} IS NOT NULL AND (sessions.{at} IS NULL OR excluded.{at} < sessions.{at})"
_LATER: Final = (
    "CASE WHEN excluded.exit_ms IS NOT NULL AND (sessions.exit_ms IS NULL OR excluded.exit_ms >= sessions.exit_ms)"
)
_LAST_END: Final = (
    "CASE WHEN excluded.ended_ms IS NOT NULL AND (sessions.ended_ms IS NULL OR excluded.ended_ms >= sessions.ended_ms)"
)
_UPSERT: Final = f"""
INSERT INTO sessions (gateway_id, id, source, actor, started_ms, last_ms, events, page_views, entry_ms, entry_path,
    exit_ms, exit_path, attr_ms, traffic_source, traffic_medium, referrer_host, country, device_type, calls, errors,
    booked_ms, client, latency_ms, ended_ms, engagement_score, ip_kind)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (gateway_id, id) DO UPDATE SET
    source = CASE WHEN excluded.started_ms < sessions.started_ms THEN excluded.source ELSE sessions.source END,
    actor = CASE WHEN sessions.actor = '' THEN excluded.actor ELSE sessions.actor END,
    started_ms = CASE WHEN excluded.started_ms < sessions.started_ms THEN excluded.started_ms
        ELSE sessions.started_ms END,
    last_ms = CASE WHEN excluded.last_ms > sessions.last_ms THEN excluded.last_ms ELSE sessions.last_ms END,
    events = sessions.events + excluded.events,
    page_views = sessions.page_views + excluded.page_views,
    entry_path = {_EARLIER.format(at="entry_ms")} THEN excluded.entry_path ELSE sessions.entry_path END,
    entry_ms = {_EARLIER.format(at="entry_ms")} THEN excluded.entry_ms ELSE sessions.entry_ms END,
    exit_path = {_LATER} THEN excluded.exit_path ELSE sessions.exit_path END,
    exit_ms = {_LATER} THEN excluded.exit_ms ELSE sessions.exit_ms END,
    traffic_source = {_EARLIER.format(at="attr_ms")} THEN excluded.traffic_source ELSE sessions.traffic_source END,
    traffic_medium = {_EARLIER.format(at="attr_ms")} THEN excluded.traffic_medium ELSE sessions.traffic_medium END,
    referrer_host = {_EARLIER.format(at="attr_ms")} THEN excluded.referrer_host ELSE sessions.referrer_host END,
    country = {_EARLIER.format(at="attr_ms")} THEN excluded.country ELSE sessions.country END,
    device_type = {_EARLIER.format(at="attr_ms")} THEN excluded.device_type ELSE sessions.device_type END,
    attr_ms = {_EARLIER.format(at="attr_ms")} THEN excluded.attr_ms ELSE sessions.attr_ms END,
    calls = sessions.calls + excluded.calls,
    errors = sessions.errors + excluded.errors,
    booked_ms = {_EARLIER.format(at="booked_ms")} THEN excluded.booked_ms ELSE sessions.booked_ms END,
    client = COALESCE(sessions.client, excluded.client),
    latency_ms = sessions.latency_ms + excluded.latency_ms,
    engagement_score = {_LAST_END} THEN excluded.engagement_score ELSE sessions.engagement_score END,
    ended_ms = {_LAST_END} THEN excluded.ended_ms ELSE sessions.ended_ms END,
    ip_kind = COALESCE(sessions.ip_kind, excluded.ip_kind)
"""
"""Every SET expression reads the row as it was before the update (SQLite and PostgreSQL alike)."""


def add_to_sessions(conn: Connection, events: Sequence[EventRow], clients: Mapping[tuple[str, str], str]) -> None:
    """Fold newly stored events into their sessions' rows, in the caller's transaction.

    `clients` maps (gateway_id, session id) to the MCP session's client_config.
    """
    folds: dict[tuple[str, str], _Fold] = {}
    for event in events:
        if not event.session_id:
            continue
        key = (event.gateway_id, event.session_id)
        fold = folds.get(key)
        if fold is None:
            fold = folds[key] = _Fold(event.source, "", event.ts_ms, event.ts_ms, client=clients.get(key))
        _fold(fold, event)
    conn.executemany(
        _UPSERT,
        [
            (
                gateway_id,
                session_id,
                f.source,
                f.actor,
                f.started_ms,
                f.last_ms,
                f.events,
                f.page_views,
                f.entry_ms,
                f.entry_path,
                f.exit_ms,
                f.exit_path,
                f.attr_ms,
                f.traffic_source,
                f.traffic_medium,
                f.referrer_host,
                f.country,
                f.device_type,
                f.calls,
                f.errors,
                f.booked_ms,
                f.client,
                f.latency_ms,
                f.ended_ms,
                f.engagement_score,
                f.ip_kind,
            )
            for (gateway_id, session_id), f in folds.items()
        ],
    )
