"""Write-time rollups: what the analytics read instead of scanning every event.

The writer folds each batch of stored events into three hourly tables, in the same transaction as
the events, so a committed event is always counted exactly once:

- `mcp_rollups`: per primitive and operation — calls, errors, latency sum and max, and a
  log-bucketed latency histogram (`histogram.py`) that percentiles come from.
- `event_rollups`: event counts per (source, name) and, per `DIMENSIONS`, per value of that
  dimension (dimension '' is the plain count per name).
- `activity_rollups`: which users (web visitor, else hashed user id) and sessions were active in
  each hour, with their event counts, for distinct users and sessions over any run of hours.

Hours are UTC hours of the event's own timestamp. The SQL is portable (`ON CONFLICT ... DO
UPDATE`), so the PostgreSQL store can share it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

from . import histogram
from .base import HOUR_MS, EventRow, RollupRow

DIMENSIONS: Final = (
    "path",
    "referrer_host",
    "traffic_source",
    "traffic_medium",
    "country",
    "device_type",
    "browser",
    "os",
    "client",
)
"""What `event_rollups` counts events by, besides the name. `client` is the MCP session's client_config."""

_TOTAL: Final = ""


def hour_of(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


def referrer_host(referrer: str | None) -> str | None:
    """The host of a referrer URL, without `www.`; None for none or a malformed one."""
    if not referrer:
        return None
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")


def actor_of(event: EventRow) -> str:
    """The user who did it: the web visitor, else the hashed user id; '' when neither (MCP calls, whose
    unit is the session, and anonymous server events). `analytics.sql.USER_KEY` is the same rule in SQL."""
    if event.web is None:
        return _TOTAL
    return event.web.anonymous_id or event.web.user_id_hash or _TOTAL


def _dimension_values(event: EventRow, client: str | None) -> Iterable[tuple[str, str | None]]:
    web = event.web
    if web is not None:
        yield "path", web.path
        yield "referrer_host", referrer_host(web.referrer)
        yield "traffic_source", web.traffic_source
        yield "traffic_medium", web.traffic_medium
        yield "country", web.country
        yield "device_type", web.device_type
        yield "browser", web.browser
        yield "os", web.os
    if event.source == "mcp":
        yield "client", client


def add_to_rollups(conn: sqlite3.Connection, events: Sequence[EventRow]) -> None:
    """Fold newly stored events into every rollup, in the caller's transaction."""
    if not events:
        return
    _add_to_mcp_rollups(conn, events)
    clients = _session_clients(conn, events)
    counts: Counter[tuple[str, int, str, str, str, str]] = Counter()
    activity: Counter[tuple[str, int, str, str, str]] = Counter()
    for event in events:
        hour = hour_of(event.ts_ms)
        counts[(event.gateway_id, hour, event.source, event.name, _TOTAL, _TOTAL)] += 1
        client = clients.get((event.gateway_id, event.session_id or ""))
        for dimension, value in _dimension_values(event, client):
            if value:
                counts[(event.gateway_id, hour, event.source, event.name, dimension, value)] += 1
        activity[(event.gateway_id, hour, event.source, actor_of(event), event.session_id or _TOTAL)] += 1
    conn.executemany(
        "INSERT INTO event_rollups (gateway_id, hour_ms, source, name, dimension, value, events)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, dimension, hour_ms, source, name, value)"
        " DO UPDATE SET events = event_rollups.events + excluded.events",
        [(*key, n) for key, n in counts.items()],
    )
    conn.executemany(
        "INSERT INTO activity_rollups (gateway_id, hour_ms, source, actor, session_id, events)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, hour_ms, source, actor, session_id)"
        " DO UPDATE SET events = activity_rollups.events + excluded.events",
        [(*key, n) for key, n in activity.items()],
    )


def _session_clients(conn: sqlite3.Connection, events: Sequence[EventRow]) -> dict[tuple[str, str], str]:
    """client_config of the MCP sessions `events` belong to, 500 ids per query."""
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.source == "mcp" and event.session_id:
            wanted.setdefault(event.gateway_id, set()).add(event.session_id)
    found: dict[tuple[str, str], str] = {}
    for gateway_id, ids in wanted.items():
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id, client_config FROM mcp_sessions WHERE gateway_id = ? AND id IN ({marks})",
                (gateway_id, *chunk),
            )
            found.update(((gateway_id, row[0]), row[1]) for row in rows)
    return found


def _mcp_key(event: EventRow) -> tuple[str, int, str, str, str]:
    return (event.gateway_id, hour_of(event.ts_ms), event.primitive_type or "", event.name, event.operation or "call")


def _add_to_mcp_rollups(conn: sqlite3.Connection, events: Sequence[EventRow]) -> None:
    deltas: dict[tuple[str, int, str, str, str], RollupRow] = {}
    for event in events:
        if event.source != "mcp" or event.primitive_type is None:
            continue
        key = _mcp_key(event)
        latency = event.latency_ms or 0.0
        prior = deltas.get(key)
        deltas[key] = RollupRow(
            *key,
            calls=(prior.calls if prior else 0) + 1,
            errors=(prior.errors if prior else 0) + (0 if event.success else 1),
            latency_sum_ms=(prior.latency_sum_ms if prior else 0.0) + latency,
            latency_max_ms=max(prior.latency_max_ms if prior else 0.0, latency),
            histogram=histogram.merge([prior.histogram if prior else {}, {histogram.bucket(latency): 1}]),
        )
    for key, delta in deltas.items():
        row = conn.execute(
            "SELECT calls, errors, latency_sum_ms, latency_max_ms, histogram FROM mcp_rollups"
            " WHERE gateway_id = ? AND hour_ms = ? AND primitive_type = ? AND name = ? AND operation = ?",
            key,
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO mcp_rollups (gateway_id, hour_ms, primitive_type, name, operation, calls, errors,"
                " latency_sum_ms, latency_max_ms, histogram) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    delta.calls,
                    delta.errors,
                    delta.latency_sum_ms,
                    delta.latency_max_ms,
                    hist_json(delta.histogram),
                ),
            )
            continue
        merged = histogram.merge([hist_of(row[4]), delta.histogram])
        conn.execute(
            "UPDATE mcp_rollups SET calls = ?, errors = ?, latency_sum_ms = ?, latency_max_ms = ?, histogram = ?"
            " WHERE gateway_id = ? AND hour_ms = ? AND primitive_type = ? AND name = ? AND operation = ?",
            (
                row[0] + delta.calls,
                row[1] + delta.errors,
                row[2] + delta.latency_sum_ms,
                max(row[3], delta.latency_max_ms),
                hist_json(merged),
                *key,
            ),
        )


def hist_json(counts: dict[int, int]) -> str:
    return json.dumps({str(index): count for index, count in sorted(counts.items())}, separators=(",", ":"))


def hist_of(text: str) -> dict[int, int]:
    return {int(index): int(count) for index, count in json.loads(text).items()}


ROLLUP_TABLES: Final = ("mcp_rollups", "event_rollups", "activity_rollups")
_REBUILD_CHUNK: Final = 20_000


def rebuild_rollups_if_stale(conn: sqlite3.Connection, load: Callable[[int, int], list[EventRow]]) -> None:
    """Rebuild all rollups from the events when some rollup table is empty but events exist (a
    database from before that table); the writer keeps them current from then on.

    `load(after_seq, limit)` reads the next events in insertion order, as `EventRow`s with their seq.
    """
    if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None:
        return
    if all(conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in ROLLUP_TABLES[1:]):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ROLLUP_TABLES:
            conn.execute(f"DELETE FROM {table}")
        last = 0
        while True:
            batch = load(last, _REBUILD_CHUNK)
            if not batch:
                break
            add_to_rollups(conn, batch)
            last = batch[-1].seq or last
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
