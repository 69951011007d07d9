"""Reading the writer's rollups (`store.rollups`) for any window, exactly.

A window rarely starts and ends on the day or the hour, so it is split: the whole UTC days inside
it come from the daily rollups, the whole hours around them from the hourly ones (a few rows per
hour, however busy the hour was), and the partial hours at either end from the events themselves
(at most two hours of rows, through the `(gateway_id, ts_ms)` index).
The answers are exact, the same as a scan of every event, at a fraction of the cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..store import Store, sketch
from ..store.rollups import ALL_SOURCES, DIMENSIONS
from ..store.session_counts import SESSION_COLUMNS, SKETCHED, Tally, contributions, facts_of
from ..store.session_rollup import referrer_host
from .sql import DAY_MS, HOUR_MS, PAGE_VIEW_NAMES, Where, bucket, in_list
from .window import TimeWindow

_EVENT_COLUMN: Final = {
    "path": "e.path",
    "referrer_host": "e.referrer",
    "traffic_source": "e.traffic_source",
    "traffic_medium": "e.traffic_medium",
    "country": "e.country",
    "device_type": "e.device_type",
    "browser": "e.browser",
    "os": "e.os",
    "client": "s.client_config",
}
"""Where each rollup dimension's value comes from in a raw event (`referrer_host` is mapped in Python)."""
assert set(_EVENT_COLUMN) == set(DIMENSIONS)


@dataclass(frozen=True, slots=True)
class Level:
    """One grain of rollups: which tables hold it and their time column."""

    events_table: str
    mcp_table: str
    column: str


HOURS: Final = Level("event_rollups", "mcp_rollups", "hour_ms")
DAYS: Final = Level("event_rollups_daily", "mcp_rollups_daily", "day_ms")


@dataclass(frozen=True, slots=True)
class Split:
    """A window as whole UTC days (daily rollups), whole hours (hourly rollups) and the partial hours
    at its ends (events)."""

    rollups: tuple[tuple[Level, TimeWindow], ...]
    edges: tuple[TimeWindow, ...]


def _aligned(window: TimeWindow, size_ms: int) -> tuple[TimeWindow | None, tuple[TimeWindow, ...]]:
    """The whole `size_ms` periods inside `window`, and the (at most two) pieces left around them."""
    first = -(-window.since_ms // size_ms) * size_ms
    last = window.until_ms - window.until_ms % size_ms
    if first >= last:
        return None, (window,)
    rest = (TimeWindow(window.since_ms, first), TimeWindow(last, window.until_ms))
    return TimeWindow(first, last), tuple(piece for piece in rest if piece.since_ms < piece.until_ms)


def split(window: TimeWindow, *, days: bool = True) -> Split:
    """`window` cut for reading: whole days (when `days`), then whole hours, then edges."""
    rollups: list[tuple[Level, TimeWindow]] = []
    pieces: tuple[TimeWindow, ...] = (window,)
    if days:
        whole_days, pieces = _aligned(window, DAY_MS)
        if whole_days is not None:
            rollups.append((DAYS, whole_days))
    edges: list[TimeWindow] = []
    for piece in pieces:
        whole_hours, rest = _aligned(piece, HOUR_MS)
        if whole_hours is not None:
            rollups.append((HOURS, whole_hours))
        edges.extend(rest)
    return Split(tuple(rollups), tuple(edges))


def _rollup_where(level: Level, gateway_id: str, period: TimeWindow, source: str | None, name: str | None) -> Where:
    where = Where().add("r.gateway_id = ?", gateway_id)
    where.add(f"r.{level.column} >= ?", period.since_ms).add(f"r.{level.column} < ?", period.until_ms)
    if source is not None:
        where.add("r.source = ?", source)
    if name is not None:
        where.add("r.name = ?", name)
    return where


def _edge_where(gateway_id: str, edge: TimeWindow, source: str | None, name: str | None) -> Where:
    where = Where().add("e.gateway_id = ?", gateway_id).add("e.ts_ms >= ?", edge.since_ms)
    where.add("e.ts_ms < ?", edge.until_ms)
    if source is not None:
        where.add("e.source = ?", source)
    if name is not None:
        where.add("e.name = ?", name)
    return where


async def counts_by(
    store: Store,
    gateway_id: str,
    window: TimeWindow,
    dimension: str,
    *,
    source: str | None = None,
    name: str | None = None,
) -> Counter[str]:
    """Events in `window` per value of `dimension` (one of `DIMENSIONS`; events without a value are
    not counted), optionally of one source and event name."""
    if dimension not in _EVENT_COLUMN:
        raise ValueError(f"unknown rollup dimension {dimension!r}")
    parts = split(window)
    counts: Counter[str] = Counter()
    for level, period in parts.rollups:
        where = _rollup_where(level, gateway_id, period, source, name).add("r.dimension = ?", dimension)
        rows = await store.fetch(
            f"SELECT r.value, SUM(r.events) FROM {level.events_table} r WHERE {where.sql()} GROUP BY r.value",
            where.params,
        )
        counts.update({str(value): int(n) for value, n in rows})
    column = _EVENT_COLUMN[dimension]
    join = (
        " LEFT JOIN mcp_sessions s ON s.gateway_id = e.gateway_id AND s.id = e.session_id"
        if dimension == "client"
        else ""
    )
    for edge in parts.edges:
        where = _edge_where(gateway_id, edge, source, name).add(f"{column} IS NOT NULL").add(f"{column} <> ''")
        if dimension == "client":
            where.add("e.source = 'mcp'")
        rows = await store.fetch(
            f"SELECT {column}, COUNT(*) FROM events e{join} WHERE {where.sql()} GROUP BY {column}", where.params
        )
        for value, n in rows:
            key = referrer_host(value) if dimension == "referrer_host" else value
            if key:
                counts[str(key)] += int(n)
    return counts


async def counts_by_name(
    store: Store, gateway_id: str, window: TimeWindow, *, source: str | None = None
) -> Counter[tuple[str, str]]:
    """Events in `window` per (source, name)."""
    parts = split(window)
    counts: Counter[tuple[str, str]] = Counter()
    for level, period in parts.rollups:
        where = _rollup_where(level, gateway_id, period, source, None).add("r.dimension = ''")
        rows = await store.fetch(
            f"SELECT r.source, r.name, SUM(r.events) FROM {level.events_table} r"
            f" WHERE {where.sql()} GROUP BY r.source, r.name",
            where.params,
        )
        counts.update({(str(s), str(n)): int(c) for s, n, c in rows})
    for edge in parts.edges:
        where = _edge_where(gateway_id, edge, source, None)
        rows = await store.fetch(
            f"SELECT e.source, e.name, COUNT(*) FROM events e WHERE {where.sql()} GROUP BY e.source, e.name",
            where.params,
        )
        for s, n, c in rows:
            counts[(str(s), str(n))] += int(c)
    return counts


async def event_series(
    store: Store,
    gateway_id: str,
    window: TimeWindow,
    bucket_ms: int,
    *,
    source: str | None = None,
    name: str | None = None,
) -> Counter[int]:
    """Events in `window` per time bucket of `bucket_ms` (a whole number of hours), keyed by the bucket's start."""
    if bucket_ms % HOUR_MS:
        raise ValueError("buckets are whole hours")
    parts = split(window, days=bucket_ms % DAY_MS == 0)
    series: Counter[int] = Counter()
    for level, period in parts.rollups:
        where = _rollup_where(level, gateway_id, period, source, name).add("r.dimension = ''")
        at = bucket(f"r.{level.column}", bucket_ms)
        rows = await store.fetch(
            f"SELECT {at}, SUM(r.events) FROM {level.events_table} r WHERE {where.sql()} GROUP BY {at}", where.params
        )
        series.update({int(b): int(n) for b, n in rows})
    for edge in parts.edges:
        where = _edge_where(gateway_id, edge, source, name)
        at = bucket("e.ts_ms", bucket_ms)
        rows = await store.fetch(f"SELECT {at}, COUNT(*) FROM events e WHERE {where.sql()} GROUP BY {at}", where.params)
        for b, n in rows:
            series[int(b)] += int(n)
    return series


@dataclass(frozen=True, slots=True)
class Activity:
    """Distinct users (`sql.USER_KEY`: web visitor, else hashed user id) and sessions active in a time bucket."""

    bucket_ms: int
    actors: int
    sessions: int


EXACT_BELOW: Final = 5_000
"""Windows with fewer (estimated) distinct users and sessions than this are counted exactly."""


async def activity(
    store: Store,
    gateway_id: str,
    window: TimeWindow,
    *,
    source: str | None = None,
    bucket_ms: int | None = None,
) -> list[Activity]:
    """Distinct users and sessions in `window` (one row, bucket 0), or per bucket of `bucket_ms`
    (a whole number of hours; buckets with no activity are absent), oldest first.

    Exact (a distinct count over the hourly activity rows) while the window holds fewer than
    `EXACT_BELOW` of either; beyond that, for windows spanning whole days, estimated from the
    HyperLogLog sketches (`store.sketch`, ±1.6% standard error) in a few milliseconds instead of
    reading a row per user and hour: whole hours and days as hourly or daily buckets read the
    estimate the writer keeps beside each sketch, other buckets merge theirs.
    """
    if bucket_ms is not None and bucket_ms % HOUR_MS:
        raise ValueError("buckets are whole hours")
    estimated = bucket_ms is None or bucket_ms == HOUR_MS or bucket_ms % DAY_MS == 0
    if estimated and any(level is DAYS for level, _ in split(window).rollups):
        total = await _estimate(store, gateway_id, window, source)
        if max(total.actors, total.sessions) >= EXACT_BELOW:
            if bucket_ms is None:
                return [total]
            pieces = _buckets(window, bucket_ms)
            stored = await _stored_estimates(store, gateway_id, pieces, bucket_ms, source)
            estimates = [
                stored[start] if start in stored else await _estimate(store, gateway_id, piece, source, start)
                for start, piece in pieces
            ]
            return [e for e in estimates if e.actors or e.sessions]
    return await _exact_activity(store, gateway_id, window, source, bucket_ms)


def _buckets(window: TimeWindow, bucket_ms: int) -> list[tuple[int, TimeWindow]]:
    """Each bucket's start and its part of `window`."""
    start = window.since_ms - window.since_ms % bucket_ms
    pieces = []
    while start < window.until_ms:
        pieces.append((start, TimeWindow(max(start, window.since_ms), min(start + bucket_ms, window.until_ms))))
        start += bucket_ms
    return pieces


async def _stored_estimates(
    store: Store, gateway_id: str, pieces: list[tuple[int, TimeWindow]], bucket_ms: int, source: str | None
) -> dict[int, Activity]:
    """The writer's estimates of the pieces that are one whole hour or day (`bucket_ms`), in one query."""
    grain = {HOUR_MS: "hour", DAY_MS: "day"}.get(bucket_ms)
    starts = [start for start, piece in pieces if piece.length_ms == bucket_ms]
    if grain is None or not starts:
        return {}
    where = Where().add("gateway_id = ?", gateway_id).add("grain = ?", grain).add("source = ?", source or ALL_SOURCES)
    where.add("bucket_ms >= ?", starts[0]).add("bucket_ms <= ?", starts[-1])
    found: dict[int, dict[str, int]] = {start: {} for start in starts}
    for start, kind, estimate in await store.fetch(
        f"SELECT bucket_ms, kind, estimate FROM distinct_sketches WHERE {where.sql()}", where.params
    ):
        found[int(start)][kind] = int(estimate)
    return {start: Activity(start, kinds.get("users", 0), kinds.get("sessions", 0)) for start, kinds in found.items()}


def _estimated(bucket_ms: int, sketches: dict[str, list[bytes]]) -> Activity:
    """The estimate from a bucket's `users` and `sessions` sketches."""
    users, sessions = (sketch.estimate(sketch.merge(sketches[kind])) for kind in ("users", "sessions"))
    return Activity(bucket_ms, users, sessions)


async def _estimate(
    store: Store, gateway_id: str, window: TimeWindow, source: str | None, bucket_ms: int = 0
) -> Activity:
    """Distinct users and sessions of `window` from the day and hour sketches plus the edges' events."""
    parts = split(window)
    found: dict[str, list[bytes]] = {"users": [], "sessions": []}
    for level, period in parts.rollups:
        where = Where().add("gateway_id = ?", gateway_id).add("grain = ?", "day" if level is DAYS else "hour")
        where.add("bucket_ms >= ?", period.since_ms).add("bucket_ms < ?", period.until_ms)
        where.add("source = ?", source or ALL_SOURCES)
        for kind, registers in await store.fetch(
            f"SELECT kind, registers FROM distinct_sketches WHERE {where.sql()}", where.params
        ):
            found[kind].append(bytes(registers))
    for edge in parts.edges:
        where = _edge_where(gateway_id, edge, source, None)
        rows = await store.fetch(
            f"SELECT DISTINCT COALESCE(e.anonymous_id, e.user_id_hash), e.session_id FROM events e WHERE {where.sql()}",
            where.params,
        )
        found["users"].append(sketch.add(sketch.EMPTY, (sketch.position(u) for u, _ in rows if u)))
        found["sessions"].append(sketch.add(sketch.EMPTY, (sketch.position(s) for _, s in rows if s)))
    return _estimated(bucket_ms, found)


async def _exact_activity(
    store: Store, gateway_id: str, window: TimeWindow, source: str | None, bucket_ms: int | None
) -> list[Activity]:
    parts = split(window, days=False)  # who was active is kept per hour only
    selects: list[str] = []
    params: list[object] = []
    for _, period in parts.rollups:
        where = _rollup_where(HOURS, gateway_id, period, source, None)
        selects.append(
            f"SELECT r.hour_ms AS at, r.actor AS actor, r.session_id AS sid FROM activity_rollups r WHERE {where.sql()}"
        )
        params += where.params
    for edge in parts.edges:
        where = _edge_where(gateway_id, edge, source, None)
        selects.append(
            "SELECT e.ts_ms AS at, COALESCE(e.anonymous_id, e.user_id_hash, '') AS actor,"
            f" COALESCE(e.session_id, '') AS sid FROM events e WHERE {where.sql()}"
        )
        params += where.params
    at = "0" if bucket_ms is None else bucket("u.at", bucket_ms)
    group = "" if bucket_ms is None else f" GROUP BY {at} ORDER BY 1"
    rows = await store.fetch(
        f"SELECT {at}, COUNT(DISTINCT CASE WHEN u.actor <> '' THEN u.actor END),"
        f" COUNT(DISTINCT CASE WHEN u.sid <> '' THEN u.sid END)"
        f" FROM ({' UNION ALL '.join(selects)}) u{group}",
        params,
    )
    return [Activity(int(b), int(a), int(s)) for b, a, s in rows]


@dataclass(slots=True)
class SessionCount:
    """The sessions in a window with one value of a `session_counts` dimension."""

    tally: Tally
    sketches: list[bytes]
    """Visitors sketches of the whole days (dimensions in `SKETCHED` only)."""
    actors: set[str]
    """Visitors of the sessions read from the `sessions` table (the window's partial days)."""

    def visitors(self) -> int:
        """Distinct visitors, estimated (±1.6%) from the sketches and the edge sessions' actors."""
        edge = sketch.add(sketch.EMPTY, (sketch.position(actor) for actor in self.actors))
        return sketch.estimate(sketch.merge([*self.sketches, edge]))


async def session_counts(
    store: Store, gateway_id: str, window: TimeWindow, *dimensions: str, source: str | None = None
) -> dict[str, dict[str, SessionCount]]:
    """The sessions in `window` (those overlapping it, as `events.overlapping_sessions`) per dimension and value
    (`store.session_counts`), optionally of one source: the sessions started in the window's whole UTC days
    from `session_counts`, the others (started in its partial days, or before it and still going at its
    start) from their `sessions` rows. Counts are exact; visitors are `SessionCount.visitors`."""
    first_day = -(-window.since_ms // DAY_MS) * DAY_MS
    last_day = window.until_ms - window.until_ms % DAY_MS
    counts: dict[str, dict[str, SessionCount]] = {dimension: {} for dimension in dimensions}

    def count_of(dimension: str, value: str) -> SessionCount:
        found = counts[dimension].get(value)
        if found is None:
            found = counts[dimension][value] = SessionCount(Tally(), [], set())
        return found

    started: list[tuple[int, int]] = [(window.since_ms, window.until_ms)]
    if first_day < last_day:
        started = [(window.since_ms, first_day), (last_day, window.until_ms)]
        dimension_list, dimension_params = in_list("dimension", dimensions)
        where = Where().add("gateway_id = ?", gateway_id).add(dimension_list, *dimension_params)
        where.add("day_ms >= ?", first_day).add("day_ms < ?", last_day)
        if source is not None:
            where.add("source = ?", source)
        for dimension, value, *sums in await store.fetch(
            "SELECT dimension, value, SUM(sessions), SUM(bounces), SUM(calls), SUM(errors), SUM(latency_ms)"
            f" FROM session_counts WHERE {where.sql()} GROUP BY dimension, value",
            where.params,
        ):
            tally = Tally(int(sums[0]), int(sums[1]), int(sums[2]), int(sums[3]), sums[4])
            count_of(str(dimension), str(value)).tally.add(tally)
        if SKETCHED.intersection(dimensions):
            for dimension, value, registers in await store.fetch(
                f"SELECT dimension, value, visitors FROM session_counts WHERE {where.sql()} AND visitors IS NOT NULL",
                where.params,
            ):
                count_of(str(dimension), str(value)).sketches.append(bytes(registers))
    kind = "" if source is None else " AND source = ?"
    kinds = [] if source is None else [source]
    ranges = [(since, until) for since, until in started if since < until]
    columns = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE gateway_id = ?"
    selects = [f"{columns} AND started_ms >= ? AND started_ms < ?{kind}" for _ in ranges]
    selects.append(f"{columns} AND last_ms >= ? AND started_ms < ?{kind}")  # still going at the window's start
    params: list[object] = []
    for since, until in [*ranges, (window.since_ms, window.since_ms)]:
        params += [gateway_id, since, until, *kinds]
    for row in facts_of(await store.fetch(" UNION ALL ".join(selects), params)):
        for key, tally in contributions(row, dimensions):
            count = count_of(key.dimension, key.value)
            count.tally.add(tally)
            if row.actor:
                count.actors.add(row.actor)
    return {
        dimension: {value: count for value, count in values.items() if count.tally.sessions}
        for dimension, values in counts.items()
    }


_VISITOR_EVENTS: Final = {"page": ("e.path", PAGE_VIEW_NAMES), "traffic_source": ("e.traffic_source", None)}
"""Per `store.rollups.VISITOR_DIMENSIONS`: the events column it is the value of, and the event names it counts."""


def users_per_value(
    gateway_id: str, dimension: str, values: Sequence[str], window: TimeWindow
) -> tuple[str, list[object]]:
    """SQL of the (value, user) pairs of the events in `window` with one of `values` in `dimension` (as
    `_VISITOR_EVENTS`; the value '' stands for none), each pair once: the user is `sql.USER_KEY`, in two halves
    so the visitor half can come from an index."""
    column, names = _VISITOR_EVENTS[dimension]
    value_list, value_params = in_list(column, values)
    if "" in values:
        value_list = f"({value_list} OR {column} IS NULL)"
    where = Where().add("e.gateway_id = ?", gateway_id).add(value_list, *value_params)
    if names is not None:
        name_list, name_params = in_list("e.name", sorted(names))
        where.add(name_list, *name_params)
    where.add("e.ts_ms >= ?", window.since_ms).add("e.ts_ms < ?", window.until_ms)
    value = f"COALESCE({column}, '')"
    return (
        f"SELECT {value}, e.anonymous_id FROM events e WHERE {where.sql()} AND e.anonymous_id IS NOT NULL"
        f" UNION SELECT {value}, e.user_id_hash FROM events e WHERE {where.sql()}"
        " AND e.anonymous_id IS NULL AND e.user_id_hash IS NOT NULL",
        [*where.params, *where.params],
    )


EdgeRows = Callable[[TimeWindow], tuple[str, Sequence[object]]]
"""SQL (and parameters) of the (value, user) pairs of the events in a window."""


async def visitors_by(
    store: Store,
    gateway_id: str,
    window: TimeWindow,
    dimension: str,
    values: Sequence[str],
    edge_rows: EdgeRows | None = None,
) -> dict[str, int]:
    """Distinct users in `window` per value of `dimension` (`store.rollups.VISITOR_DIMENSIONS`; '' for none),
    estimated (±1.6%): whole UTC days from the writer's visitor sketches, the partial days from their events
    (`users_per_value`, or `edge_rows` for the `event` dimension, whose users are funnel actors)."""
    first_day = -(-window.since_ms // DAY_MS) * DAY_MS
    last_day = window.until_ms - window.until_ms % DAY_MS
    value_list, value_params = in_list("value", values)
    if (first_day, last_day) == (window.since_ms, window.since_ms + DAY_MS):  # one whole day: its estimates
        rows = await store.fetch(
            f"SELECT value, estimate FROM visitor_sketches WHERE gateway_id = ? AND dimension = ? AND day_ms = ?"
            f" AND {value_list}",
            [gateway_id, dimension, first_day, *value_params],
        )
        return {value: 0 for value in values} | {str(value): int(n) for value, n in rows}
    found: dict[str, list[bytes]] = {value: [] for value in values}
    edges = [window]
    if first_day < last_day:
        edges = [TimeWindow(window.since_ms, first_day), TimeWindow(last_day, window.until_ms)]
        where = Where().add("gateway_id = ?", gateway_id).add("dimension = ?", dimension)
        where.add("day_ms >= ?", first_day).add("day_ms < ?", last_day).add(value_list, *value_params)
        for value, registers in await store.fetch(
            f"SELECT value, registers FROM visitor_sketches WHERE {where.sql()}", where.params
        ):
            found[str(value)].append(bytes(registers))
    for edge in edges:
        if edge.since_ms < edge.until_ms:
            positions: dict[str, list[tuple[int, int]]] = {}
            sql, params = edge_rows(edge) if edge_rows else users_per_value(gateway_id, dimension, values, edge)
            for value, user in await store.fetch(sql, params):
                if user is not None:
                    positions.setdefault(str(value), []).append(sketch.position(str(user)))
            for value, at in positions.items():
                found[value].append(sketch.add(sketch.EMPTY, at))
    return {value: sketch.estimate(sketch.merge(sketches)) for value, sketches in found.items()}
