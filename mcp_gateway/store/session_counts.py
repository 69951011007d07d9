"""The `session_counts` table: sessions per UTC day of their start and per value of a dimension.

A month of sessions is a hundred thousand `sessions` rows; questions like "sessions and visitors per
country" or "entries and bounces per page" then cost a scan of all of them. This table keeps, per
(day the session started, its source, dimension, value), how many sessions there are, how many
bounced (one page view), their MCP calls, errors and call latency, and — for the dimensions asked
for visitors — a HyperLogLog sketch (`sketch.py`) of their users. A month is then a few thousand rows.

Dimensions and their values (`contributions`):
- `length`: "<i>:<b>": i indexes the length histogram's ranges (`LENGTH_EDGES_MS`), b is the log
  bucket of the length (`histogram.bucket`), so the ranges' counts are exact and a median is within
  the histogram's ±2.5%;
- `country`: the landing's country ('' for none), with a visitors sketch;
- `landing`: JSON [traffic_source, traffic_medium] of the landing (null for none), with a visitors sketch;
- `referrer`: JSON [traffic_source, traffic_medium, referrer host], for landings with a referrer;
- `entry` and `exit`: the entry and exit path of sessions with page views (bounces on `entry`);
- `client`: the MCP client_config, with the sessions' calls, errors and latency.

A session's row changes as its events arrive (in any order), so the writer reads the rows of the
batch's sessions before and after folding the batch into them (`session_rows`) and adds the
difference of their contributions: the counts stay exact whatever order events come in. Sketches
only grow: a visitor stays in a sketch the session has left (a late event that moved its landing).
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from . import histogram, sketch
from .base import HOUR_MS, Connection
from .lookup import rows_by_ids

DAY_MS: Final = 24 * HOUR_MS
SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS
LENGTH_EDGES_MS: Final = (10 * SECOND_MS, 30 * SECOND_MS, MINUTE_MS, 3 * MINUTE_MS, 10 * MINUTE_MS, 30 * MINUTE_MS)
"""Where the session length histogram's ranges end: 0-10s, 10-30s, ... 10-30m, then 30m+."""
DIMENSIONS: Final = frozenset({"length", "country", "landing", "referrer", "entry", "exit", "client"})
SKETCHED: Final = frozenset({"country", "landing"})
"""Dimensions whose rows keep a sketch of the sessions' visitors."""

SESSION_COLUMNS: Final = (
    "gateway_id, id, source, actor, started_ms, last_ms, page_views, entry_path, exit_path, traffic_source,"
    " traffic_medium, referrer_host, country, client, calls, errors, latency_ms"
)
"""What `contributions` reads of a `sessions` row, in `SessionFacts` order."""


class SessionFacts(NamedTuple):
    gateway_id: str
    id: str
    source: str
    actor: str
    started_ms: int
    last_ms: int
    page_views: int
    entry_path: str | None
    exit_path: str | None
    traffic_source: str | None
    traffic_medium: str | None
    referrer_host: str | None
    country: str | None
    client: str | None
    calls: int
    errors: int
    latency_ms: float


class CountKey(NamedTuple):
    gateway_id: str
    day_ms: int
    source: str
    dimension: str
    value: str


@dataclass(slots=True)
class Tally:
    sessions: int = 0
    bounces: int = 0
    calls: int = 0
    errors: int = 0
    latency_ms: float = 0.0

    def add(self, other: Tally, sign: int = 1) -> None:
        self.sessions += sign * other.sessions
        self.bounces += sign * other.bounces
        self.calls += sign * other.calls
        self.errors += sign * other.errors
        self.latency_ms += sign * other.latency_ms

    def is_zero(self) -> bool:
        return not (self.sessions or self.bounces or self.calls or self.errors or self.latency_ms)


def length_value(length_ms: int) -> str:
    """The `length` dimension's value of a session `length_ms` long."""
    index = sum(1 for edge in LENGTH_EDGES_MS if length_ms >= edge)
    return f"{index}:{histogram.bucket(length_ms)}"


def parse_length(value: str) -> tuple[int, float]:
    """(range index, representative length in ms) of a `length` value; a zero-length bucket reads as 0."""
    index, log_bucket = value.split(":")
    low = LENGTH_EDGES_MS[int(index) - 1] if int(index) else 0
    high = LENGTH_EDGES_MS[int(index)] if int(index) < len(LENGTH_EDGES_MS) else None
    middle = histogram.bucket_value(int(log_bucket)) if int(log_bucket) else 0.0
    return int(index), min(max(middle, low), high - 1) if high is not None else max(middle, low)


def contributions(row: SessionFacts, dimensions: Container[str] = DIMENSIONS) -> Iterator[tuple[CountKey, Tally]]:
    """What one session adds to `session_counts` (in the given `dimensions` only)."""
    day = row.started_ms - row.started_ms % DAY_MS

    def key(dimension: str, value: str) -> CountKey:
        return CountKey(row.gateway_id, day, row.source, dimension, value)

    one = Tally(sessions=1)
    if "length" in dimensions:
        yield key("length", length_value(row.last_ms - row.started_ms)), one
    if "country" in dimensions:
        yield key("country", row.country or ""), one
    if "landing" in dimensions:
        yield key("landing", json.dumps([row.traffic_source, row.traffic_medium])), one
    if row.referrer_host and "referrer" in dimensions:
        yield key("referrer", json.dumps([row.traffic_source, row.traffic_medium, row.referrer_host])), one
    if row.page_views > 0:
        if row.entry_path and "entry" in dimensions:
            yield key("entry", row.entry_path), Tally(sessions=1, bounces=int(row.page_views == 1))
        if row.exit_path and "exit" in dimensions:
            yield key("exit", row.exit_path), one
    if row.client is not None and "client" in dimensions:
        yield key("client", row.client), Tally(1, 0, row.calls, row.errors, row.latency_ms)


def session_rows(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SessionFacts]:
    """The `sessions` rows of (gateway_id, session id) `keys`."""
    select = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE gateway_id = ? AND id IN"
    return {(facts.gateway_id, facts.id): facts for facts in map(SessionFacts._make, rows_by_ids(conn, select, keys))}


def add_to_session_counts(
    conn: Connection,
    before: Mapping[tuple[str, str], SessionFacts],
    after: Mapping[tuple[str, str], SessionFacts],
) -> None:
    """Add the difference between the sessions' rows `after` a batch and `before` it, in the caller's transaction."""
    deltas: dict[CountKey, Tally] = {}
    visitors: dict[CountKey, set[tuple[int, int]]] = {}
    for session, new in after.items():
        old = before.get(session)
        old_keys: set[CountKey] = set()
        if old is not None:
            for key, tally in contributions(old):
                deltas.setdefault(key, Tally()).add(tally, -1)
                old_keys.add(key)
        for key, tally in contributions(new):
            deltas.setdefault(key, Tally()).add(tally)
            if new.actor and key.dimension in SKETCHED and (old is None or not old.actor or key not in old_keys):
                visitors.setdefault(key, set()).add(sketch.position(new.actor))
    conn.executemany(
        "INSERT INTO session_counts (gateway_id, day_ms, source, dimension, value, sessions, bounces, calls, errors,"
        " latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (gateway_id, dimension, day_ms, source, value) DO UPDATE SET"
        " sessions = session_counts.sessions + excluded.sessions, bounces = session_counts.bounces + excluded.bounces,"
        " calls = session_counts.calls + excluded.calls, errors = session_counts.errors + excluded.errors,"
        " latency_ms = session_counts.latency_ms + excluded.latency_ms",
        [
            (*key, t.sessions, t.bounces, t.calls, t.errors, t.latency_ms)
            for key, t in deltas.items()
            if not t.is_zero()
        ],
    )
    for key, positions in visitors.items():
        row = conn.execute(
            "SELECT visitors FROM session_counts"
            " WHERE gateway_id = ? AND dimension = ? AND day_ms = ? AND source = ? AND value = ?",
            (key.gateway_id, key.dimension, key.day_ms, key.source, key.value),
        ).fetchone()
        registers = sketch.add(row[0] if row and row[0] is not None else sketch.EMPTY, positions)
        conn.execute(
            "UPDATE session_counts SET visitors = ?"
            " WHERE gateway_id = ? AND dimension = ? AND day_ms = ? AND source = ? AND value = ?",
            (registers, key.gateway_id, key.dimension, key.day_ms, key.source, key.value),
        )


def facts_of(rows: Iterable[Iterable[Any]]) -> list[SessionFacts]:
    """`SessionFacts` of rows selected as `SESSION_COLUMNS`."""
    return [SessionFacts(*row) for row in rows]
