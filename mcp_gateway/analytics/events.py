"""Seed 002's questions about events: stats, the raw log, property discovery, breakdowns and insights.

    GET /stats                 totals, top events and a time series (`groupBy`=hour|day), vs the previous window
    GET /events                the raw event log, newest first (`limit`, no cursor: page with `until`)
    GET /properties            event names with counts, and the property keys seen
    GET /properties/received   property keys by event name
    GET /breakdown             top values of a column or a custom property, with counts (and unique users)
    GET /insights              period-over-period metrics: traffic, bounce rate, session length, MCP calls and errors

(POST /query, the flexible one, is `analytics.query`.) Every event counts alike: web and server events,
and MCP invocations (`source` "mcp", the name is the tool, resource or prompt name).

**Users** are distinct `sql.USER_KEY`: the web visitor (`anonymous_id`), else the hashed user id; MCP
calls carry neither and count no users. **Sessions** are distinct `session_id`s (web sessions derived
by the writer, MCP sessions by the client's connection). Period comparisons are `Comparison`s:
`change_pct` is the percentage change, null when the previous value is 0 (seed 002).

/stats and /insights read the write-time rollups (`analytics.rollups`: exact for any window) and the
sessions table; they scan events only for an event name or primitive type filter, through the
indexes. Bounce rate and session length are over the sessions overlapping the window
(`started_ms < until AND last_ms >= since`), whole: a session's length is its first to last event.
/events filters `gateway_id` and a `ts_ms` range first, so the indexes serve it.

/properties and /properties/received count events per name from the rollups; each name's first and
last time and its most recent events (whose property keys are counted) are read at the ends of its
`events_by_name` ranges (gateway, source, primitive type, name, time), a few small reads per name.

/breakdown by event name, source, path, referrer (the referring host, e.g. "google.com"), traffic
source or medium, country, device type, browser or os answers from the rollups (`rollups.counts_by`):
exact counts, the events without a value as the null value, and `unique_users` null, as the rollups
keep no users per value. Custom properties, other columns and a `primitive` filter scan the window's
events and count unique users.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from mcp_gateway_tracking.pii import external_id_hash
from pydantic import AliasChoices, Field

from ..errors import InvalidInputError
from ..store import Store
from .api import Asked, Question
from .rollups import activity, counts_by, counts_by_name, event_series, split
from .sql import DAY_MS, HOUR_MS, PAGE_VIEW_NAMES, USER_KEY, Where, bucket, events_where, json_keys, property_text
from .window import TimeWindow, WindowArgs

Source = Literal["mcp", "web", "server"]
PrimitiveType = Literal["tool", "resource", "prompt"]

MAX_NAME_CHARS: Final = 200
"""Longest event name or property key a question accepts (the ingest APIs accept no longer names)."""
MAX_SERIES_POINTS: Final = 5000
"""Most buckets one /stats time series may have (90 days by hour is 2,160)."""
DEFAULT_PROPERTY_SAMPLE: Final = 1000
"""How many of each event name's most recent events the property discovery reads."""

IS_PAGE_VIEW: Final = "name IN (" + ", ".join(f"'{name}'" for name in PAGE_VIEW_NAMES) + ")"
"""True for page views. The names are our constants, so they are inlined rather than bound."""


class EventFilterArgs(WindowArgs):
    """A time range and the usual event filters."""

    event: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, description="Only events of this name")
    source: Source | None = Field(None, description="Only events from MCP calls, web pages or servers")
    primitive: PrimitiveType | None = Field(None, description="Only MCP calls of tools, resources or prompts")

    def where(self, gateway_id: str, window: TimeWindow) -> Where:
        return events_where(gateway_id, window, source=self.source, name=self.event, primitive_type=self.primitive)


def number(value: Any) -> Any:
    """A database number as JSON wants it: PostgreSQL's AVG answers `Decimal`."""
    return float(value) if isinstance(value, Decimal) else value


def rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


# -- period comparisons --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """A metric now and in the previous window of the same length."""

    current: float
    previous: float
    change: float
    change_pct: float | None
    """Percent change from `previous`; null when `previous` is 0."""

    @classmethod
    def of(cls, current: float, previous: float) -> Comparison:
        change_pct = round((current - previous) / previous * 100, 2) if previous else None
        return cls(current, previous, current - previous, change_pct)


@dataclass(frozen=True, slots=True)
class EventTotals:
    events: int
    users: int
    sessions: int
    page_views: int
    tool_calls: int
    mcp_outcomes: int
    """MCP events whose success is known: what `error_rate` divides by."""
    mcp_errors: int

    @property
    def error_rate(self) -> float:
        return rate(self.mcp_errors, self.mcp_outcomes)


async def event_totals(store: Store, where: Where) -> EventTotals:
    """Counts over the events `where` selects, in one pass."""
    sql = f"""
        SELECT COUNT(*), COUNT(DISTINCT {USER_KEY}), COUNT(DISTINCT session_id),
            SUM(CASE WHEN {IS_PAGE_VIEW} THEN 1 ELSE 0 END),
            SUM(CASE WHEN source = 'mcp' AND primitive_type = 'tool' AND operation = 'call' THEN 1 ELSE 0 END),
            SUM(CASE WHEN source = 'mcp' AND success IS NOT NULL THEN 1 ELSE 0 END),
            SUM(CASE WHEN source = 'mcp' AND success = 0 THEN 1 ELSE 0 END)
        FROM events WHERE {where.sql()}
    """
    [row] = await store.fetch(sql, where.params)
    return EventTotals(*(int(value or 0) for value in row))


# -- GET /stats ----------------------------------------------------------------------------------------


class StatsArgs(EventFilterArgs):
    group_by: Literal["hour", "day"] = Field(
        "day",
        validation_alias=AliasChoices("groupBy", "group_by"),
        description="Time series buckets (UTC); `group_by` works too",
    )
    limit: int = Field(10, ge=1, le=100, description="How many event names to list")


@dataclass(frozen=True, slots=True)
class EventCount:
    event: str
    count: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    timestamp: int
    """The bucket's start, ms since the epoch."""
    events: int
    unique_users: int
    sessions: int


@dataclass(frozen=True, slots=True)
class StatsAnswer:
    window: dict[str, int]
    previous_window: dict[str, int]
    group_by: str
    total_events: int
    unique_users: int
    total_sessions: int
    metrics: dict[str, Comparison]
    """total_events, unique_users and total_sessions against the previous window."""
    top_events: list[EventCount]
    timeseries: list[SeriesPoint]
    """Every bucket of the window, empty ones included."""


@dataclass(frozen=True, slots=True)
class Traffic:
    """Events, distinct users and distinct sessions."""

    events: int
    users: int
    sessions: int


@dataclass(frozen=True, slots=True)
class StatsParts:
    now: Traffic
    before: Traffic
    top: list[EventCount]
    series: dict[int, Traffic]
    """By bucket start; buckets without events are absent."""


async def _traffic(store: Store, gateway_id: str, window: TimeWindow, source: str | None) -> Traffic:
    """Events, users and sessions from the rollups."""
    counts = await counts_by_name(store, gateway_id, window, source=source)
    [active] = await activity(store, gateway_id, window, source=source)
    return Traffic(sum(counts.values()), active.actors, active.sessions)


async def _stats_from_rollups(
    asked: Asked, window: TimeWindow, size: int, source: str | None, limit: int
) -> StatsParts:
    """Totals, names and series from the rollups."""
    store, gateway_id = asked.store, asked.gateway_id
    now = await _traffic(store, gateway_id, window, source)
    before = await _traffic(store, gateway_id, window.previous(), source)
    by_name: Counter[str] = Counter()
    for (_, name), count in (await counts_by_name(store, gateway_id, window, source=source)).items():
        by_name[name] += count
    top = [EventCount(name, by_name[name]) for name in sorted(by_name, key=lambda n: (-by_name[n], n))[:limit]]
    events_at = await event_series(store, gateway_id, window, size, source=source)
    series = {
        point.bucket_ms: Traffic(events_at[point.bucket_ms], point.actors, point.sessions)
        for point in await activity(store, gateway_id, window, source=source, bucket_ms=size)
    }
    return StatsParts(now, before, top, series)


async def _stats_from_events(asked: Asked, args: StatsArgs, window: TimeWindow, size: int) -> StatsParts:
    """The same from the events, for an event name or primitive type filter (which the rollups do not
    keep users and sessions by): the filter narrows the scan through `events_by_name`."""
    where = args.where(asked.gateway_id, window)
    now = await event_totals(asked.store, where)
    before = await event_totals(asked.store, args.where(asked.gateway_id, window.previous()))
    top_rows = await asked.store.fetch(
        f"""SELECT name, COUNT(*) FROM events WHERE {where.sql()}
            GROUP BY name ORDER BY COUNT(*) DESC, name LIMIT ?""",
        [*where.params, args.limit],
    )
    series_rows = await asked.store.fetch(
        f"""SELECT {bucket("ts_ms", size)}, COUNT(*), COUNT(DISTINCT {USER_KEY}), COUNT(DISTINCT session_id)
            FROM events WHERE {where.sql()} GROUP BY {bucket("ts_ms", size)}""",
        where.params,
    )
    return StatsParts(
        Traffic(now.events, now.users, now.sessions),
        Traffic(before.events, before.users, before.sessions),
        [EventCount(name, int(count)) for name, count in top_rows],
        {int(at): Traffic(int(n), int(users), int(sessions)) for at, n, users, sessions in series_rows},
    )


async def stats(asked: Asked, args: StatsArgs) -> StatsAnswer:
    window = args.window(asked.now_ms)
    size = HOUR_MS if args.group_by == "hour" else DAY_MS
    first_bucket = window.since_ms - window.since_ms % size
    if (window.until_ms - first_bucket) // size > MAX_SERIES_POINTS:
        raise InvalidInputError(
            f"More than {MAX_SERIES_POINTS} buckets: group by day or ask a shorter window", field="groupBy"
        )
    if args.event is None and args.primitive is None:
        parts = await _stats_from_rollups(asked, window, size, args.source, args.limit)
    else:
        parts = await _stats_from_events(asked, args, window, size)
    empty = Traffic(0, 0, 0)
    series = []
    for start in range(first_bucket, window.until_ms, size):
        point = parts.series.get(start, empty)
        series.append(SeriesPoint(start, point.events, point.users, point.sessions))
    now, before = parts.now, parts.before
    return StatsAnswer(
        window=window.as_json(),
        previous_window=window.previous().as_json(),
        group_by=args.group_by,
        total_events=now.events,
        unique_users=now.users,
        total_sessions=now.sessions,
        metrics={
            "total_events": Comparison.of(now.events, before.events),
            "unique_users": Comparison.of(now.users, before.users),
            "total_sessions": Comparison.of(now.sessions, before.sessions),
        },
        top_events=parts.top,
        timeseries=series,
    )


# -- GET /events ---------------------------------------------------------------------------------------


class EventsArgs(EventFilterArgs):
    session_id: str | None = Field(None, min_length=1, max_length=128, description="Only this session's events")
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Only this user's events: sent with this `user_id`, or by a visitor `/v1/identify` linked to it",
    )
    limit: int = Field(100, ge=1, le=1000, description="How many events, newest first")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as the log shows it. An MCP call's arguments and result are not part of the log."""

    id: str
    event: str
    source: str
    timestamp: int
    session_id: str | None
    visitor_id: str | None
    properties: dict[str, Any] | None
    primitive_type: str | None
    operation: str | None
    latency_ms: float | None
    success: bool | None
    error_type: str | None
    url: str | None
    path: str | None
    referrer: str | None
    traffic_source: str | None
    traffic_medium: str | None
    traffic_campaign: str | None
    device_type: str | None
    browser: str | None
    os: str | None
    country: str | None
    source_confidence: str | None
    """How sure the attribution is: high, medium or low (seed 004)."""
    source_rule_id: str | None
    """The attribution rule that fired (`ingest.enrich.TRAFFIC_RULES`)."""


_LOG_COLUMNS: Final = (
    "id, name, source, ts_ms, session_id, anonymous_id, properties, primitive_type, operation, latency_ms, success,"
    " error_type, url, path, referrer, traffic_source, traffic_medium, traffic_campaign, device_type, browser, os,"
    " country, traffic_confidence, traffic_rule"
)


def _event_record(row: Sequence[Any]) -> EventRecord:
    values = list(row)
    properties = values[6]
    values[6] = json.loads(properties) if isinstance(properties, str) else properties
    values[9] = None if values[9] is None else float(values[9])
    values[10] = None if values[10] is None else bool(values[10])
    return EventRecord(*values)


@dataclass(frozen=True, slots=True)
class EventsAnswer:
    window: dict[str, int]
    limit: int
    events: list[EventRecord]


async def events(asked: Asked, args: EventsArgs) -> EventsAnswer:
    window = args.window(asked.now_ms)
    where = args.where(asked.gateway_id, window)
    if args.session_id is not None:
        where.add("session_id = ?", args.session_id)
    if args.user_id is not None:
        user = external_id_hash(args.user_id)
        linked = "SELECT i.anonymous_id FROM identities i WHERE i.gateway_id = ? AND i.user_id_hash = ?"
        where.add(f"(user_id_hash = ? OR anonymous_id IN ({linked}))", user, asked.gateway_id, user)
    rows = await asked.store.fetch(
        f"SELECT {_LOG_COLUMNS} FROM events WHERE {where.sql()} ORDER BY ts_ms DESC, seq DESC LIMIT ?",
        [*where.params, args.limit],
    )
    return EventsAnswer(window.as_json(), args.limit, [_event_record(row) for row in rows])


# -- GET /properties and /properties/received ---------------------------------------------------------


class PropertiesArgs(WindowArgs):
    event: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, description="Only events of this name")
    sample: int = Field(
        DEFAULT_PROPERTY_SAMPLE,
        ge=1,
        le=10_000,
        description="How many of each event name's most recent events to read property keys from",
    )


@dataclass(frozen=True, slots=True)
class NameStats:
    event: str
    count: int
    first_seen: int
    last_seen: int


@dataclass(frozen=True, slots=True)
class _Stream:
    """The events of one (source, primitive type, name): one range of the `events_by_name` index."""

    source: str
    primitive_type: str | None
    name: str

    def where(self, gateway_id: str, window: TimeWindow) -> Where:
        where = Where().add("gateway_id = ?", gateway_id).add("source = ?", self.source)
        if self.primitive_type is None:
            where.add("primitive_type IS NULL")
        else:
            where.add("primitive_type = ?", self.primitive_type)
        return where.add("name = ?", self.name).add("ts_ms >= ?", window.since_ms).add("ts_ms < ?", window.until_ms)


_PRIMITIVE_TYPES: Final[tuple[str | None, ...]] = ("tool", "resource", "prompt", None)
"""What an MCP event's primitive_type may be; web and server events have none."""
_BATCH: Final = 50
"""Index ranges per UNION ALL query."""


def _union(branches: list[tuple[str, list[object]]]) -> tuple[str, list[object]]:
    return " UNION ALL ".join(sql for sql, _ in branches), [p for _, params in branches for p in params]


async def _name_stats(asked: Asked, window: TimeWindow, event: str | None) -> tuple[list[NameStats], list[_Stream]]:
    """Each event name's count (from the rollups) and first and last time seen (the ends of its
    `events_by_name` ranges), busiest first; and the index ranges that hold events in `window`."""
    counts: Counter[str] = Counter()
    candidates: list[_Stream] = []
    for (source, name), n in (await counts_by_name(asked.store, asked.gateway_id, window)).items():
        if event is None or name == event:
            counts[name] += n
            kinds = _PRIMITIVE_TYPES if source == "mcp" else (None,)
            candidates.extend(_Stream(source, kind, name) for kind in kinds)
    seen: dict[int, tuple[int, int]] = {}
    for start in range(0, len(candidates), _BATCH):
        branches = []
        for i, stream in enumerate(candidates[start : start + _BATCH], start):
            where = stream.where(asked.gateway_id, window)
            branches.append(
                (
                    f"SELECT {i}, (SELECT MIN(ts_ms) FROM events WHERE {where.sql()}),"
                    f" (SELECT MAX(ts_ms) FROM events WHERE {where.sql()})",
                    [*where.params, *where.params],
                )
            )
        sql, params = _union(branches)
        seen.update(
            {
                int(i): (int(first), int(last))
                for i, first, last in await asked.store.fetch(sql, params)
                if first is not None
            }
        )
    spans: dict[str, tuple[int, int]] = {}
    for i, (first, last) in seen.items():
        name = candidates[i].name
        before = spans.get(name)
        spans[name] = (first, last) if before is None else (min(first, before[0]), max(last, before[1]))
    names = [NameStats(n, counts[n], *spans[n]) for n in sorted(counts, key=lambda n: (-counts[n], n)) if n in spans]
    return names, [candidates[i] for i in sorted(seen)]


def _recent_where(gateway_id: str, window: TimeWindow, streams: list[_Stream]) -> Where:
    """One name's events: its single index range, or (a name used by several sources or primitive types,
    rare) the name in the window."""
    if len(streams) == 1:
        return streams[0].where(gateway_id, window)
    return events_where(gateway_id, window, name=streams[0].name)


async def _sampled_keys(
    asked: Asked, window: TimeWindow, streams: list[_Stream], sample: int
) -> dict[str, dict[str, int]]:
    """Per event name, how many of its `sample` most recent events carry each property key; the newest
    events are read backwards through `events_by_name`, their keys counted in SQL."""
    by_name: dict[str, list[_Stream]] = {}
    for stream in streams:
        by_name.setdefault(stream.name, []).append(stream)
    names = list(by_name)
    keys = json_keys(asked.store.dialect, "r.properties", "k")
    found: dict[str, dict[str, int]] = {}
    for start in range(0, len(names), _BATCH):
        branches = []
        for i, name in enumerate(names[start : start + _BATCH], start):
            where = _recent_where(asked.gateway_id, window, by_name[name])
            branches.append(
                (
                    f"""SELECT {i}, k.key, COUNT(*) FROM (
                        SELECT properties FROM events WHERE {where.sql()} ORDER BY ts_ms DESC LIMIT ?
                    ) AS r, {keys} GROUP BY k.key""",
                    [*where.params, sample],
                )
            )
        sql, params = _union(branches)
        for i, key, count in await asked.store.fetch(sql, params):
            found.setdefault(names[int(i)], {})[str(key)] = int(count)
    return found


@dataclass(frozen=True, slots=True)
class EventProperties:
    event: str
    count: int
    first_seen: int
    last_seen: int
    properties: list[str]


@dataclass(frozen=True, slots=True)
class PropertiesAnswer:
    window: dict[str, int]
    sample: int
    events: list[EventProperties]
    """Busiest first; `properties` are the keys seen in the event's `sample` most recent occurrences."""
    property_keys: list[str]
    """Every key seen, over all event names."""


async def properties(asked: Asked, args: PropertiesArgs) -> PropertiesAnswer:
    window = args.window(asked.now_ms)
    names, streams = await _name_stats(asked, window, args.event)
    keys = await _sampled_keys(asked, window, streams, args.sample)
    return PropertiesAnswer(
        window=window.as_json(),
        sample=args.sample,
        events=[
            EventProperties(n.event, n.count, n.first_seen, n.last_seen, sorted(keys.get(n.event, {}))) for n in names
        ],
        property_keys=sorted({key for by_key in keys.values() for key in by_key}),
    )


@dataclass(frozen=True, slots=True)
class KeyCount:
    key: str
    count: int
    """How many of the sampled events carry the key."""


@dataclass(frozen=True, slots=True)
class ReceivedProperties:
    event: str
    count: int
    sampled: int
    properties: list[KeyCount]


@dataclass(frozen=True, slots=True)
class ReceivedAnswer:
    window: dict[str, int]
    sample: int
    events: list[ReceivedProperties]


async def properties_received(asked: Asked, args: PropertiesArgs) -> ReceivedAnswer:
    window = args.window(asked.now_ms)
    names, streams = await _name_stats(asked, window, args.event)
    keys = await _sampled_keys(asked, window, streams, args.sample)
    received = []
    for n in names:
        counts = keys.get(n.event, {})
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        received.append(
            ReceivedProperties(n.event, n.count, min(n.count, args.sample), [KeyCount(k, c) for k, c in ordered])
        )
    return ReceivedAnswer(window.as_json(), args.sample, received)


# -- GET /breakdown ------------------------------------------------------------------------------------

BREAKDOWN_COLUMNS: Final = {
    "event": "name",
    "name": "name",
    "source": "source",
    "primitive_type": "primitive_type",
    "error_type": "error_type",
    "path": "path",
    "url": "url",
    "referrer": "referrer",
    "traffic_source": "traffic_source",
    "traffic_medium": "traffic_medium",
    "traffic_campaign": "traffic_campaign",
    "device_type": "device_type",
    "browser": "browser",
    "os": "os",
    "country": "country",
}
"""The built-in columns a breakdown may name; any other name is a custom property key."""
PROPERTY_PREFIX: Final = "properties."


def event_dimension(asked: Asked, name: str) -> tuple[str, list[object]]:
    """The SQL expression (and its parameters) for a built-in column or, otherwise, a custom property.

    `properties.<key>` always means the custom property, even when `key` is also a column's name.
    """
    if name.startswith(PROPERTY_PREFIX):
        name = name.removeprefix(PROPERTY_PREFIX)
    elif name in BREAKDOWN_COLUMNS:
        return BREAKDOWN_COLUMNS[name], []
    expr, param = property_text(asked.store.dialect, name)
    return expr, [param]


ROLLUP_BREAKDOWNS: Final = {
    "path": "path",
    "referrer": "referrer_host",
    "traffic_source": "traffic_source",
    "traffic_medium": "traffic_medium",
    "country": "country",
    "device_type": "device_type",
    "browser": "browser",
    "os": "os",
}
"""Breakdowns the rollups answer (`rollups.counts_by`), by their rollup dimension. `referrer` is the
referring site (host, e.g. "google.com"), which is what a breakdown by referrer asks: where visitors
came from, not every distinct referring URL."""


class BreakdownArgs(EventFilterArgs):
    property: str = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="A column (" + ", ".join(BREAKDOWN_COLUMNS) + ") or a custom property key (`properties.<key>`);"
        " `referrer` breaks down by referring host",
    )
    limit: int = Field(10, ge=1, le=1000, description="How many values, most frequent first")


@dataclass(frozen=True, slots=True)
class BreakdownValue:
    value: str | None
    """null: events without the property."""
    count: int
    unique_users: int | None
    """null when the breakdown comes from the rollups (event name, source, path, referrer, traffic source
    and medium, country, device type, browser, os), which keep counts per value but not who."""


@dataclass(frozen=True, slots=True)
class BreakdownAnswer:
    window: dict[str, int]
    property: str
    event: str | None
    total_events: int
    values: list[BreakdownValue]


def _top(counts: dict[str | None, int], limit: int) -> list[BreakdownValue]:
    """The `limit` most frequent values; ties by value, events without one last."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    return [BreakdownValue(value, count, None) for value, count in ordered[:limit] if count > 0]


async def _breakdown_from_rollups(
    asked: Asked, args: BreakdownArgs, window: TimeWindow
) -> tuple[int, list[BreakdownValue]]:
    """Event totals and top values from the rollups: exact counts, no users."""
    by_name = await counts_by_name(asked.store, asked.gateway_id, window, source=args.source)
    total = sum(n for (_, name), n in by_name.items() if args.event is None or name == args.event)
    counts: dict[str | None, int] = {}
    if args.property in ("event", "name", "source"):
        for (source, name), n in by_name.items():
            if args.event is None or name == args.event:
                value = source if args.property == "source" else name
                counts[value] = counts.get(value, 0) + n
    else:
        dimension = ROLLUP_BREAKDOWNS[args.property]
        found = await counts_by(asked.store, asked.gateway_id, window, dimension, source=args.source, name=args.event)
        counts.update(found)
        counts[None] = total - sum(found.values())
    return total, _top(counts, args.limit)


async def _breakdown_from_events(
    asked: Asked, args: BreakdownArgs, window: TimeWindow
) -> tuple[int, list[BreakdownValue]]:
    """Event totals and top values with their distinct users, scanning the window's events."""
    where = args.where(asked.gateway_id, window)
    expr, expr_params = event_dimension(asked, args.property)
    rows = await asked.store.fetch(
        f"""SELECT picked_value, COUNT(*) AS hits, COUNT(DISTINCT user_key) FROM (
                SELECT {expr} AS picked_value, {USER_KEY} AS user_key FROM events WHERE {where.sql()}
            ) AS picked
            GROUP BY picked_value
            ORDER BY hits DESC, CASE WHEN picked_value IS NULL THEN 1 ELSE 0 END, picked_value LIMIT ?""",
        [*expr_params, *where.params, args.limit],
    )
    totals = await event_totals(asked.store, where)
    return totals.events, [BreakdownValue(None if v is None else str(v), int(c), int(u)) for v, c, u in rows]


async def breakdown(asked: Asked, args: BreakdownArgs) -> BreakdownAnswer:
    window = args.window(asked.now_ms)
    if args.property == PROPERTY_PREFIX:
        raise InvalidInputError("Name a property after 'properties.'", field="property")
    from_rollups = args.primitive is None and (
        args.property in ROLLUP_BREAKDOWNS or args.property in ("event", "name", "source")
    )
    if from_rollups:
        total, values = await _breakdown_from_rollups(asked, args, window)
    else:
        total, values = await _breakdown_from_events(asked, args, window)
    return BreakdownAnswer(window.as_json(), args.property, args.event, total, values)


# -- GET /insights -------------------------------------------------------------------------------------


class InsightsArgs(WindowArgs):
    source: Source | None = Field(None, description="Only events from MCP calls, web pages or servers")


@dataclass(frozen=True, slots=True)
class McpCounts:
    tool_calls: int
    calls: int
    """MCP invocations of any primitive and operation: what `error_rate` divides by."""
    errors: int


async def mcp_counts(store: Store, gateway_id: str, window: TimeWindow) -> McpCounts:
    """MCP invocations in `window`, exactly: the MCP rollups for the whole days and hours, the events for
    the partial hours at the edges. An invocation without a known success counts as an error, as in the rollups."""
    parts = split(window)
    tool_calls = calls = errors = 0
    selects: list[str] = []
    params: list[object] = []
    for level, period in parts.rollups:
        selects.append(
            f"SELECT primitive_type, operation, calls AS n, errors AS bad FROM {level.mcp_table}"
            f" WHERE gateway_id = ? AND {level.column} >= ? AND {level.column} < ?"
        )
        params += [gateway_id, period.since_ms, period.until_ms]
    for edge in parts.edges:
        selects.append(
            "SELECT primitive_type, COALESCE(operation, 'call') AS operation, 1 AS n,"
            " CASE WHEN success = 1 THEN 0 ELSE 1 END AS bad FROM events"
            " WHERE gateway_id = ? AND ts_ms >= ? AND ts_ms < ? AND source = 'mcp' AND primitive_type IS NOT NULL"
        )
        params += [gateway_id, edge.since_ms, edge.until_ms]
    rows = await store.fetch(
        f"SELECT primitive_type, operation, SUM(n), SUM(bad) FROM ({' UNION ALL '.join(selects)}) AS m"
        " GROUP BY primitive_type, operation",
        params,
    )
    for kind, operation, n, bad in rows:
        calls += int(n)
        errors += int(bad)
        if kind == "tool" and operation == "call":
            tool_calls += int(n)
    return McpCounts(tool_calls, calls, errors)


def overlapping_sessions(
    gateway_id: str, window: TimeWindow, columns: str, source: str | None = None
) -> tuple[str, list[object]]:
    """A query (SQL and parameters) of `columns` over the sessions table's sessions in `window`:
    those that overlap it (`started_ms < until AND last_ms >= since`), as the two disjoint sets that
    the indexes serve: sessions started in the window (`sessions_by_start`), and sessions started
    before it and still going at its start (`sessions_by_last`)."""
    kind = "" if source is None else " AND source = ?"
    kinds = [] if source is None else [source]
    return (
        f"SELECT {columns} FROM sessions WHERE gateway_id = ? AND started_ms >= ? AND started_ms < ?{kind}"
        f" UNION ALL SELECT {columns} FROM sessions WHERE gateway_id = ? AND last_ms >= ? AND started_ms < ?{kind}",
        [
            *(gateway_id, window.since_ms, window.until_ms, *kinds),
            *(gateway_id, window.since_ms, window.since_ms, *kinds),
        ],
    )


@dataclass(frozen=True, slots=True)
class SessionTotals:
    sessions_with_views: int
    bounced: int
    """Sessions with exactly one page view."""
    avg_duration_ms: float

    @property
    def bounce_rate(self) -> float:
        return rate(self.bounced, self.sessions_with_views)


async def session_totals(store: Store, gateway_id: str, window: TimeWindow, source: str | None) -> SessionTotals:
    """Bounces and the average session length (first to last event) over the sessions overlapping `window`
    (of `source`: the source of a session's first event), from the sessions table."""
    sessions, params = overlapping_sessions(gateway_id, window, "page_views, last_ms - started_ms AS length_ms", source)
    [(with_views, bounced, avg_duration)] = await store.fetch(
        f"""SELECT SUM(CASE WHEN page_views > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN page_views = 1 THEN 1 ELSE 0 END),
                AVG(length_ms)
            FROM ({sessions}) AS s""",
        params,
    )
    return SessionTotals(int(with_views or 0), int(bounced or 0), float(avg_duration or 0.0))


@dataclass(frozen=True, slots=True)
class InsightTotals:
    traffic: Traffic
    page_views: int
    mcp: McpCounts
    sessions: SessionTotals

    @property
    def error_rate(self) -> float:
        return rate(self.mcp.errors, self.mcp.calls)


async def insight_totals(store: Store, gateway_id: str, window: TimeWindow, source: str | None) -> InsightTotals:
    counts = await counts_by_name(store, gateway_id, window, source=source)
    [active] = await activity(store, gateway_id, window, source=source)
    page_views = sum(n for (_, name), n in counts.items() if name in PAGE_VIEW_NAMES)
    mcp = await mcp_counts(store, gateway_id, window) if source in (None, "mcp") else McpCounts(0, 0, 0)
    return InsightTotals(
        Traffic(sum(counts.values()), active.actors, active.sessions),
        page_views,
        mcp,
        await session_totals(store, gateway_id, window, source),
    )


@dataclass(frozen=True, slots=True)
class InsightsAnswer:
    window: dict[str, int]
    previous_window: dict[str, int]
    metrics: dict[str, Comparison]
    """total_events, unique_users, total_sessions, page_views, bounce_rate (0-1: sessions with one page view
    of those with any), avg_session_duration_ms, tool_calls and error_rate (0-1, of MCP calls)."""


async def insights(asked: Asked, args: InsightsArgs) -> InsightsAnswer:
    window = args.window(asked.now_ms)
    current, previous = window, window.previous()
    now = await insight_totals(asked.store, asked.gateway_id, current, args.source)
    before = await insight_totals(asked.store, asked.gateway_id, previous, args.source)
    return InsightsAnswer(
        window=current.as_json(),
        previous_window=previous.as_json(),
        metrics={
            "total_events": Comparison.of(now.traffic.events, before.traffic.events),
            "unique_users": Comparison.of(now.traffic.users, before.traffic.users),
            "total_sessions": Comparison.of(now.traffic.sessions, before.traffic.sessions),
            "page_views": Comparison.of(now.page_views, before.page_views),
            "bounce_rate": Comparison.of(now.sessions.bounce_rate, before.sessions.bounce_rate),
            "avg_session_duration_ms": Comparison.of(now.sessions.avg_duration_ms, before.sessions.avg_duration_ms),
            "tool_calls": Comparison.of(now.mcp.tool_calls, before.mcp.tool_calls),
            "error_rate": Comparison.of(now.error_rate, before.error_rate),
        },
    )


QUESTIONS: list[Question[Any]] = [
    Question(
        "/stats",
        "Aggregated stats: totals against the previous window, top events, a time series",
        StatsArgs,
        stats,
        StatsAnswer,
    ),
    Question("/events", "The raw event log, newest first", EventsArgs, events, EventsAnswer),
    Question(
        "/properties",
        "Event names with counts, and the property keys seen",
        PropertiesArgs,
        properties,
        PropertiesAnswer,
    ),
    Question(
        "/properties/received",
        "Property keys by event name, from each name's most recent events",
        PropertiesArgs,
        properties_received,
        ReceivedAnswer,
    ),
    Question(
        "/breakdown",
        "Top values of a column or custom property, with counts and unique users",
        BreakdownArgs,
        breakdown,
        BreakdownAnswer,
    ),
    Question(
        "/insights",
        "Period-over-period comparison of traffic, bounce rate, session length and MCP calls",
        InsightsArgs,
        insights,
        InsightsAnswer,
    ),
]
