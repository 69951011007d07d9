"""`mcp-gateway events tail`: sessions and events as they are stored, oldest first.

Follows the store's insertion order (`seq`), so nothing is skipped or shown twice however
fast rows arrive; polling keeps it independent of which process wrote them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio

from .store import EventRow, SessionRow, Store, WebFields

PAGE: Final = 500
DEFAULT_BACKLOG: Final = 20
"""Rows of each kind shown before following, unless asked for everything."""

Row = SessionRow | EventRow


async def stored_rows(
    store: Store, *, gateway_id: str | None, backlog: int | None, follow: bool, interval: float = 0.5
) -> AsyncIterator[Row]:
    """Rows already stored (the last `backlog` of each kind, or all if None), then new ones if `follow`."""
    session_seq, event_seq = 0, 0
    if backlog is not None:
        last_session, last_event = await store.last_seq()
        session_seq, event_seq = max(0, last_session - backlog), max(0, last_event - backlog)
    while True:
        sessions = await store.sessions_after(session_seq, gateway_id=gateway_id, limit=PAGE)
        events = await store.events_after(event_seq, gateway_id=gateway_id, limit=PAGE)
        if sessions:
            session_seq = sessions[-1].seq or session_seq
        if events:
            event_seq = events[-1].seq or event_seq
        # A session is stored before its events, so received time then kind keeps them in order.
        rows: list[Row] = sorted([*sessions, *events], key=lambda r: (r.received_at_ms, isinstance(r, EventRow)))
        for row in rows:
            yield row
        if len(sessions) < PAGE and len(events) < PAGE:
            if not follow:
                return
            await anyio.sleep(interval)


def as_json(row: Row) -> str:
    """The row's stored fields as one JSON object (an event's web fields flat, as they are stored)."""
    data: dict[str, Any] = {"type": "session" if isinstance(row, SessionRow) else "event"}
    data.update(dataclasses.asdict(row))
    if isinstance(row, EventRow):
        data.update(dataclasses.asdict(row.web or WebFields()))
        del data["web"]
    return json.dumps(data, separators=(",", ":"))


def as_line(row: Row) -> str:
    when = datetime.datetime.fromtimestamp(row.received_at_ms / 1000).strftime("%H:%M:%S")
    if isinstance(row, SessionRow):
        tools = ",".join(row.tools) or "-"
        client = f"{row.client_config}  {row.transport or '-'}"
        return f"{when}  {row.gateway_id}  session {row.id[:8]}  {client}  tools={tools}"
    session = f"session {row.session_id[:8]}" if row.session_id else ""
    if row.web is not None:
        web = row.web
        where = web.path or web.url or "-"
        traffic = f"{web.traffic_source}/{web.traffic_medium}"
        return f"{when}  {row.gateway_id}  {row.source} {row.name}  {where}  {traffic}  {session}".rstrip()
    outcome = "ok " if row.success else f"ERR {row.error_type or ''}".rstrip()
    latency = "-" if row.latency_ms is None else f"{row.latency_ms:.1f}ms"
    kind = f"{row.primitive_type or row.source}{'/list' if row.operation == 'list' else ''}"
    return f"{when}  {row.gateway_id}  {kind} {row.name}  {outcome}  {latency}  {session}".rstrip()
