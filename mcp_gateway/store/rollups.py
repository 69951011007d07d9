"""Write-time rollups: what the analytics read instead of scanning every event.

The writer folds each batch of stored events into three hourly tables, in the same transaction as
the events, so a committed event is always counted exactly once:

- `mcp_rollups`: per primitive and operation — calls, errors, latency sum and max, and a
  log-bucketed latency histogram (`histogram.py`) that percentiles come from.
- `event_rollups`: event counts per (source, name) and, per `DIMENSIONS`, per value of that
  dimension (dimension '' is the plain count per name).
- `activity_rollups`: which users (web visitor, else hashed user id) and sessions were active in
  each hour, with their event counts, for distinct users and sessions over any run of hours.
- `distinct_sketches`: the same users and sessions as HyperLogLog registers per hour and day, per
  source and for all sources (`sketch.py`), with their estimates, for distinct counts over long
  windows without reading a row per user.
- `visitor_sketches`: users per day and page viewed, and per day and traffic source, and funnel
  actors per day and event name, as sketches with their estimates.
- `sessions` (`session_rollup.py`), sessions per day and dimension (`session_counts.py`), and daily
  copies of `mcp_rollups` and `event_rollups`.

Hours are UTC hours of the event's own timestamp. The SQL is portable (`ON CONFLICT ... DO
UPDATE`), so the PostgreSQL store can share it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from . import histogram, sketch
from .base import HOUR_MS, Connection, EventRow, RollupRow
from .lookup import rows_by_ids
from .session_counts import add_to_session_counts, session_rows
from .session_rollup import PAGE_VIEW_NAMES, add_to_sessions, referrer_host

DAY_MS: Final = 24 * HOUR_MS

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
ALL_SOURCES: Final = "*"
"""The `distinct_sketches` source of the users and sessions of every source together."""


def hour_of(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


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


def add_to_rollups(conn: Connection, events: Sequence[EventRow]) -> None:
    """Fold newly stored events into every rollup, in the caller's transaction."""
    if not events:
        return
    _add_to_mcp_rollups(conn, events, "mcp_rollups", "hour_ms", HOUR_MS)
    _add_to_mcp_rollups(conn, events, "mcp_rollups_daily", "day_ms", DAY_MS)
    clients = _session_clients(conn, events)
    batch_sessions = {(e.gateway_id, e.session_id) for e in events if e.session_id}
    before = session_rows(conn, batch_sessions)
    add_to_sessions(conn, events, clients)
    add_to_session_counts(conn, before, session_rows(conn, batch_sessions))
    positions: dict[str, tuple[int, int]] = {}  # each user's and session's hash, once a batch
    _add_to_sketches(conn, events, positions)
    _add_to_visitor_sketches(conn, events, positions)
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
    daily: Counter[tuple[str, int, str, str, str, str]] = Counter()
    for (gateway_id, hour, source, name, dimension, value), n in counts.items():
        daily[(gateway_id, hour - hour % DAY_MS, source, name, dimension, value)] += n
    conn.executemany(
        "INSERT INTO event_rollups_daily (gateway_id, day_ms, source, name, dimension, value, events)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, dimension, day_ms, source, name, value)"
        " DO UPDATE SET events = event_rollups_daily.events + excluded.events",
        [(*key, n) for key, n in daily.items()],
    )
    conn.executemany(
        "INSERT INTO activity_rollups (gateway_id, hour_ms, source, actor, session_id, events)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, hour_ms, source, actor, session_id)"
        " DO UPDATE SET events = activity_rollups.events + excluded.events",
        [(*key, n) for key, n in activity.items()],
    )


def _position(positions: dict[str, tuple[int, int]], item: str) -> tuple[int, int]:
    """`sketch.position(item)`, hashed once per batch."""
    at = positions.get(item)
    if at is None:
        at = positions[item] = sketch.position(item)
    return at


def _add_to_sketches(conn: Connection, events: Sequence[EventRow], positions: dict[str, tuple[int, int]]) -> None:
    """Add each event's user and session to the sketches of its hour and day, for its source and for
    `ALL_SOURCES`, and keep each sketch's estimate beside it (a per-hour series reads numbers, not registers)."""
    items: dict[tuple[str, str, int, str, str], set[tuple[int, int]]] = {}
    for event in events:
        hour = hour_of(event.ts_ms)
        for kind, item in (("users", actor_of(event)), ("sessions", event.session_id or "")):
            if not item:
                continue
            at = _position(positions, item)
            for grain, start in (("hour", hour), ("day", hour - hour % DAY_MS)):
                for source in (event.source, ALL_SOURCES):
                    items.setdefault((event.gateway_id, grain, start, source, kind), set()).add(at)
    _add_to_sketch_rows(conn, "distinct_sketches", ("gateway_id", "grain", "bucket_ms", "source", "kind"), items)


def _add_to_sketch_rows(
    conn: Connection,
    table: str,
    key_columns: tuple[str, ...],
    items: Mapping[tuple[Any, ...], set[tuple[int, int]]],
) -> None:
    """Add each key's new register positions to `table`'s sketch row for it (created when missing), and keep
    the row's estimate beside its registers."""
    where = " AND ".join(f"{column} = ?" for column in key_columns)
    columns = ", ".join(key_columns)
    marks = ", ".join("?" * (len(key_columns) + 2))
    for key, new in items.items():
        row = conn.execute(f"SELECT registers FROM {table} WHERE {where}", key).fetchone()
        registers = sketch.add(row[0] if row else sketch.EMPTY, new)
        conn.execute(
            f"INSERT INTO {table} ({columns}, registers, estimate) VALUES ({marks}) ON CONFLICT ({columns})"
            " DO UPDATE SET registers = excluded.registers, estimate = excluded.estimate",
            (*key, registers, sketch.estimate(registers)),
        )


VISITOR_DIMENSIONS: Final = ("page", "traffic_source", "event")
"""What `visitor_sketches` keeps users per day by: `page` is the path of page views, `traffic_source` that of any
web or server event ('' for none); `event` is the event name, and counts funnel actors (`funnel_actor`)."""
FUNNEL_PRIMITIVES: Final = frozenset({"tool", "resource", "prompt"})
"""The MCP events a funnel step can be: calls of these primitives (web and server events have none)."""


def funnel_actor(event: EventRow) -> str | None:
    """Who a funnel counts for an event (`analytics.funnel.ACTOR`): the web visitor, else the session; None for
    events no funnel step is (MCP events of other kinds)."""
    if event.source == "mcp" and event.primitive_type not in FUNNEL_PRIMITIVES:
        return None
    if event.source != "mcp" and event.primitive_type is not None:
        return None
    return (event.web.anonymous_id if event.web else None) or event.session_id


def _add_to_visitor_sketches(
    conn: Connection, events: Sequence[EventRow], positions: dict[str, tuple[int, int]]
) -> None:
    """Add each web or server event's user to the sketches of its day and page (page views) and traffic source,
    and each event's funnel actor to the sketch of its day and name."""
    items: dict[tuple[str, str, int, str], set[tuple[int, int]]] = {}
    for event in events:
        day = event.ts_ms - event.ts_ms % DAY_MS
        if funnel := funnel_actor(event):
            items.setdefault((event.gateway_id, "event", day, event.name), set()).add(_position(positions, funnel))
        actor, web = actor_of(event), event.web
        if not actor or web is None:
            continue
        at = _position(positions, actor)
        if web.path and event.name in PAGE_VIEW_NAMES:
            items.setdefault((event.gateway_id, "page", day, web.path), set()).add(at)
        items.setdefault((event.gateway_id, "traffic_source", day, web.traffic_source or ""), set()).add(at)  # '': none
    _add_to_sketch_rows(conn, "visitor_sketches", ("gateway_id", "dimension", "day_ms", "value"), items)


def _session_clients(conn: Connection, events: Sequence[EventRow]) -> dict[tuple[str, str], str]:
    """client_config of the MCP sessions `events` belong to."""
    keys = {(e.gateway_id, e.session_id) for e in events if e.source == "mcp" and e.session_id}
    select = "SELECT gateway_id, id, client_config FROM mcp_sessions WHERE gateway_id = ? AND id IN"
    return {(row[0], row[1]): row[2] for row in rows_by_ids(conn, select, keys)}


def _add_to_mcp_rollups(conn: Connection, events: Sequence[EventRow], table: str, column: str, period_ms: int) -> None:
    deltas: dict[tuple[str, int, str, str, str], RollupRow] = {}
    for event in events:
        if event.source != "mcp" or event.primitive_type is None:
            continue
        start = event.ts_ms - event.ts_ms % period_ms
        key = (event.gateway_id, start, event.primitive_type, event.name, event.operation or "call")
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
            f"SELECT calls, errors, latency_sum_ms, latency_max_ms, histogram FROM {table}"
            f" WHERE gateway_id = ? AND {column} = ? AND primitive_type = ? AND name = ? AND operation = ?",
            key,
        ).fetchone()
        if row is None:
            conn.execute(
                f"INSERT INTO {table} (gateway_id, {column}, primitive_type, name, operation, calls, errors,"
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
            f"UPDATE {table} SET calls = ?, errors = ?, latency_sum_ms = ?, latency_max_ms = ?, histogram = ?"
            f" WHERE gateway_id = ? AND {column} = ? AND primitive_type = ? AND name = ? AND operation = ?",
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


ROLLUP_TABLES: Final = (
    "mcp_rollups",
    "event_rollups",
    "activity_rollups",
    "mcp_rollups_daily",
    "event_rollups_daily",
    "sessions",
    "distinct_sketches",
    "session_counts",
    "visitor_sketches",
)
ROLLUP_MIGRATIONS: Final = frozenset({4, 6, 8, 9, 10, 13, 14, 16})
"""Migrations that add rollup tables: applying one to a database with events rebuilds the rollups."""
_REBUILD_CHUNK: Final = 20_000


def rebuild_rollups_if_stale(
    conn: Connection, load: Callable[[int, int], list[EventRow]], *, migrated: bool = False
) -> None:
    """Rebuild all rollups from the events, in the caller's transaction, when this open `migrated` the database
    to a version with new rollup tables, or the rollups are empty while events exist; the writer keeps them
    current from then on.

    `load(after_seq, limit)` reads the next events in insertion order, as `EventRow`s with their seq.
    """
    if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None:
        return
    always_filled = ("event_rollups", "activity_rollups", "event_rollups_daily")  # by any event
    if not migrated and all(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in always_filled):
        return
    for table in ROLLUP_TABLES:
        conn.execute(f"DELETE FROM {table}")
    last = 0
    while True:
        batch = load(last, _REBUILD_CHUNK)
        if not batch:
            break
        add_to_rollups(conn, batch)
        last = batch[-1].seq or last
