"""Seeding known data for analytics tests: rows go straight into the store with chosen timestamps, so
every answer can be computed by hand; and a read key to ask with."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx
from starlette.applications import Starlette

from mcp_gateway.store import EventRow, SessionRow, Store, WebFields

from .support import DEMO, create_key

T0 = 1_767_225_600_000
"""2026-01-01T00:00:00Z, a Thursday: the start of every seeded data set."""
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_ids = itertools.count(1)


def store_of(app: Starlette) -> Store:
    store: Store = app.state.services.store
    return store


async def read_headers(http: httpx.AsyncClient, gateway_id: str = DEMO) -> dict[str, str]:
    """Headers carrying a new read key of `gateway_id`."""
    return {"Authorization": f"Bearer {await create_key(http, gateway_id, 'read')}"}


def web_event(
    name: str,
    ts_ms: int,
    *,
    visitor: str | None = None,
    session: str | None = None,
    path: str | None = None,
    referrer: str | None = None,
    source: str = "web",
    properties: dict[str, Any] | None = None,
    gateway_id: str = DEMO,
    **web: Any,
) -> EventRow:
    """A web (or server) event; `web` sets further `WebFields` (traffic_source, device_type, browser, ...)."""
    return EventRow(
        gateway_id=gateway_id,
        id=f"evt_{next(_ids)}",
        source=source,
        session_id=session,
        name=name,
        primitive_type=None,
        operation=None,
        latency_ms=None,
        success=None,
        error_type=None,
        args=None,
        result=None,
        properties=properties,
        ts_ms=ts_ms,
        received_at_ms=ts_ms,
        web=WebFields(
            anonymous_id=visitor,
            path=path,
            url=None if path is None else f"https://shop.test{path}",
            referrer=referrer,
            **web,
        ),
    )


def mcp_session(
    session_id: str, started_ms: int, *, client: str = "claude-desktop 1.0", gateway_id: str = DEMO, **fields: Any
) -> SessionRow:
    row = SessionRow(
        gateway_id=gateway_id,
        id=session_id,
        client_config=client,
        connection_type="streamable-http",
        transport="streamable-http",
        ip_hash=None,
        tools=("book_demo",),
        user_data=None,
        started_at_ms=started_ms,
        received_at_ms=started_ms,
    )
    return replace(row, **fields)


def mcp_call(
    session_id: str,
    name: str,
    ts_ms: int,
    latency_ms: float,
    *,
    primitive_type: str = "tool",
    operation: str = "call",
    success: bool = True,
    error_type: str | None = None,
    args: str | None = None,
    result: str | None = None,
    gateway_id: str = DEMO,
) -> EventRow:
    return EventRow(
        gateway_id=gateway_id,
        id=f"evt_{next(_ids)}",
        source="mcp",
        session_id=session_id,
        name=name,
        primitive_type=primitive_type,
        operation=operation,
        latency_ms=latency_ms,
        success=success,
        error_type=error_type,
        args=args,
        result=result,
        properties=None,
        ts_ms=ts_ms,
        received_at_ms=ts_ms,
    )


async def seed(app: Starlette, *, sessions: Sequence[SessionRow] = (), events: Sequence[EventRow] = ()) -> None:
    """Store MCP sessions and events (`capture`) and web events (`capture_web`), all known to be new."""
    store = store_of(app)
    mcp = [e for e in events if e.source == "mcp"]
    web = [e for e in events if e.source != "mcp"]
    if sessions or mcp:
        statuses = await store.capture(list(sessions), mcp)
        assert set(statuses[0]) | set(statuses[1]) <= {"stored"}, statuses
    if web:
        results = await store.capture_web(web)
        assert {status for status, _ in results} <= {"stored"}, results
