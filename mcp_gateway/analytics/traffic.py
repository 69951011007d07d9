"""Seed 002's questions about visits: sessions, how long they last, where they enter and leave, and when.

    GET /sessions               web sessions (events grouped by session_id) and MCP sessions, newest first
    GET /sessions/distribution  a histogram of session lengths in fixed buckets, and the median
    GET /pages                  per path: page views, entries, exits, bounces
    GET /heatmap                events by UTC day of week (0 = Sunday) and hour, and the peak cell

A session's length is the time from its first to its last event in the window (a one-event session
lasts 0 s); only /sessions starts an MCP session when its client connected, and lists it with all its
calls. Page views are the events named in
`sql.PAGE_VIEW_NAMES`; a session enters on its first page view and exits on its last, and bounces
when it has just one. Users are `sql.USER_KEY`, as in `analytics.events`.

Each question reads one `gateway_id` and a `ts_ms` range (`events_by_time`; MCP sessions by
`mcp_sessions_by_time`) and aggregates in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from .api import Asked, Question
from .events import IS_PAGE_VIEW, EventFilterArgs, Source, rate
from .sql import DAY_MS, HOUR_MS, USER_KEY, Where, events_where, in_list
from .window import TimeWindow, WindowArgs

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS

DURATION_BUCKETS: Final = (
    ("0-10s", 0, 10 * SECOND_MS),
    ("10-30s", 10 * SECOND_MS, 30 * SECOND_MS),
    ("30-60s", 30 * SECOND_MS, MINUTE_MS),
    ("1-3m", MINUTE_MS, 3 * MINUTE_MS),
    ("3-10m", 3 * MINUTE_MS, 10 * MINUTE_MS),
    ("10-30m", 10 * MINUTE_MS, 30 * MINUTE_MS),
    ("30m+", 30 * MINUTE_MS, None),
)
"""(label, from ms inclusive, to ms exclusive or None) of the session length histogram."""

EPOCH_WEEKDAY: Final = 4
"""1970-01-01 was a Thursday: day 4 when Sunday is 0."""


class SessionSourceArgs(WindowArgs):
    source: Source | None = Field(None, description="Only MCP, web or server sessions")


def _session_where(gateway_id: str, window: TimeWindow, source: str | None) -> Where:
    return events_where(gateway_id, window, source=source).add("session_id IS NOT NULL")


# -- GET /sessions -------------------------------------------------------------------------------------


class SessionListArgs(SessionSourceArgs):
    limit: int = Field(100, ge=1, le=1000, description="How many sessions, newest first")


@dataclass(frozen=True, slots=True)
class ListedSession:
    session_id: str
    source: str
    started_at: int
    ended_at: int
    duration_ms: int
    events: int
    page_views: int
    entry_page: str | None
    exit_page: str | None
    visitor_id: str | None
    client: str | None
    """The MCP client (`client_config`, e.g. "claude-desktop 1.0"); null for web sessions."""
    country: str | None


@dataclass(frozen=True, slots=True)
class SessionsAnswer:
    window: dict[str, int]
    limit: int
    sessions: list[ListedSession]


async def _web_sessions(asked: Asked, window: TimeWindow, source: str | None, limit: int) -> list[ListedSession]:
    """Sessions of web and server events in the window, by their first event there, newest first."""
    where = _session_where(asked.gateway_id, window, source)
    if source is None:
        where.add("source <> 'mcp'")
    rows = await asked.store.fetch(
        f"""SELECT session_id, MIN(source), MIN(ts_ms) AS started, MAX(ts_ms), COUNT(*),
                SUM(CASE WHEN {IS_PAGE_VIEW} THEN 1 ELSE 0 END), MIN(anonymous_id), MIN(country)
            FROM events WHERE {where.sql()} GROUP BY session_id ORDER BY started DESC, session_id LIMIT ?""",
        [*where.params, limit],
    )
    if not rows:
        return []
    ids = [row[0] for row in rows]
    listed, ids_params = in_list("session_id", ids)
    pages = events_where(asked.gateway_id, window).add(listed, *ids_params).add(IS_PAGE_VIEW)
    ends = await asked.store.fetch(
        f"""SELECT session_id, path, first_n, last_n FROM (
                SELECT session_id, path,
                    ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY ts_ms, seq) AS first_n,
                    ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY ts_ms DESC, seq DESC) AS last_n
                FROM events WHERE {pages.sql()}
            ) AS ranked WHERE first_n = 1 OR last_n = 1""",
        pages.params,
    )
    entry = {session: path for session, path, first_n, _ in ends if first_n == 1}
    exit_ = {session: path for session, path, _, last_n in ends if last_n == 1}
    return [
        ListedSession(
            session_id=session,
            source=kind,
            started_at=int(started),
            ended_at=int(ended),
            duration_ms=int(ended) - int(started),
            events=int(count),
            page_views=int(views or 0),
            entry_page=entry.get(session),
            exit_page=exit_.get(session),
            visitor_id=visitor,
            client=None,
            country=country,
        )
        for session, kind, started, ended, count, views, visitor, country in rows
    ]


async def _mcp_sessions(asked: Asked, window: TimeWindow, limit: int) -> list[ListedSession]:
    """MCP sessions that started in the window, newest first, with all their calls."""
    rows = await asked.store.fetch(
        """SELECT s.id, s.client_config, s.started_at_ms, s.country, COUNT(e.id), MAX(e.ts_ms)
           FROM mcp_sessions AS s
           LEFT JOIN events AS e ON e.gateway_id = s.gateway_id AND e.session_id = s.id AND e.source = 'mcp'
           WHERE s.gateway_id = ? AND s.started_at_ms >= ? AND s.started_at_ms < ?
           GROUP BY s.id, s.client_config, s.started_at_ms, s.country
           ORDER BY s.started_at_ms DESC, s.id LIMIT ?""",
        [asked.gateway_id, window.since_ms, window.until_ms, limit],
    )
    sessions = []
    for session, client, started, country, count, last in rows:
        ended = max(int(started), int(last if last is not None else started))
        sessions.append(
            ListedSession(
                session_id=session,
                source="mcp",
                started_at=int(started),
                ended_at=ended,
                duration_ms=ended - int(started),
                events=int(count),
                page_views=0,
                entry_page=None,
                exit_page=None,
                visitor_id=None,
                client=client,
                country=country,
            )
        )
    return sessions


async def sessions(asked: Asked, args: SessionListArgs) -> SessionsAnswer:
    window = args.window(asked.now_ms)
    found: list[ListedSession] = []
    if args.source != "mcp":
        found += await _web_sessions(asked, window, args.source, args.limit)
    if args.source in (None, "mcp"):
        found += await _mcp_sessions(asked, window, args.limit)
    found.sort(key=lambda s: (-s.started_at, s.session_id))
    return SessionsAnswer(window.as_json(), args.limit, found[: args.limit])


# -- GET /sessions/distribution ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DurationBucket:
    label: str
    min_ms: int
    max_ms: int | None
    """Exclusive; null for the last, open bucket."""
    count: int
    share: float
    """Of all sessions, 0-1."""


@dataclass(frozen=True, slots=True)
class DistributionAnswer:
    window: dict[str, int]
    total_sessions: int
    median_ms: float | None
    """Null when there are no sessions."""
    buckets: list[DurationBucket]


def _bucket_case(column: str) -> str:
    whens = " ".join(
        f"WHEN {column} < {upper} THEN {index}"
        for index, (_, _, upper) in enumerate(DURATION_BUCKETS)
        if upper is not None
    )
    return f"CASE {whens} ELSE {len(DURATION_BUCKETS) - 1} END"


async def distribution(asked: Asked, args: SessionSourceArgs) -> DistributionAnswer:
    window = args.window(asked.now_ms)
    where = _session_where(asked.gateway_id, window, args.source)
    lengths = f"SELECT MAX(ts_ms) - MIN(ts_ms) AS duration_ms FROM events WHERE {where.sql()} GROUP BY session_id"
    rows = await asked.store.fetch(
        f"SELECT {_bucket_case('duration_ms')} AS b, COUNT(*) FROM ({lengths}) AS lengths GROUP BY b",
        where.params,
    )
    counts = {int(index): int(count) for index, count in rows}
    total = sum(counts.values())
    median = None
    if total:
        middle = await asked.store.fetch(
            f"SELECT duration_ms FROM ({lengths}) AS lengths ORDER BY duration_ms LIMIT ? OFFSET ?",
            [*where.params, 2 - total % 2, (total - 1) // 2],
        )
        median = sum(float(value) for (value,) in middle) / len(middle)
    buckets = [
        DurationBucket(label, low, high, counts.get(i, 0), rate(counts.get(i, 0), total))
        for i, (label, low, high) in enumerate(DURATION_BUCKETS)
    ]
    return DistributionAnswer(window.as_json(), total, median, buckets)


# -- GET /pages ----------------------------------------------------------------------------------------


class PagesArgs(WindowArgs):
    sort: Literal["views", "entries", "exits"] = Field("views", description="Order pages by this count")
    limit: int = Field(50, ge=1, le=1000, description="How many paths")


@dataclass(frozen=True, slots=True)
class PageStats:
    path: str
    views: int
    sessions: int
    entries: int
    """Sessions whose first page view was this path."""
    exits: int
    """Sessions whose last page view was this path."""
    bounces: int
    """Sessions with this path as their only page view."""
    bounce_rate: float | None
    """bounces / entries, 0-1; null without entries."""
    exit_rate: float
    """exits / views, 0-1."""


@dataclass(frozen=True, slots=True)
class PagesAnswer:
    window: dict[str, int]
    sort: str
    pages: list[PageStats]


async def pages(asked: Asked, args: PagesArgs) -> PagesAnswer:
    window = args.window(asked.now_ms)
    where = events_where(asked.gateway_id, window).add(IS_PAGE_VIEW).add("path IS NOT NULL")
    # A page view without a session is a session of its own.
    visit = "COALESCE(session_id, id)"
    rows = await asked.store.fetch(
        f"""SELECT path, COUNT(*) AS views, COUNT(DISTINCT visit) AS sessions,
                SUM(CASE WHEN first_n = 1 THEN 1 ELSE 0 END) AS entries,
                SUM(CASE WHEN last_n = 1 THEN 1 ELSE 0 END) AS exits,
                SUM(CASE WHEN first_n = 1 AND visit_views = 1 THEN 1 ELSE 0 END) AS bounces
            FROM (
                SELECT path, {visit} AS visit,
                    ROW_NUMBER() OVER (PARTITION BY {visit} ORDER BY ts_ms, seq) AS first_n,
                    ROW_NUMBER() OVER (PARTITION BY {visit} ORDER BY ts_ms DESC, seq DESC) AS last_n,
                    COUNT(*) OVER (PARTITION BY {visit}) AS visit_views
                FROM events WHERE {where.sql()}
            ) AS page_views
            GROUP BY path ORDER BY {args.sort} DESC, path LIMIT ?""",
        [*where.params, args.limit],
    )
    return PagesAnswer(
        window.as_json(),
        args.sort,
        [
            PageStats(
                path=path,
                views=int(views),
                sessions=int(visits),
                entries=int(entries),
                exits=int(exits),
                bounces=int(bounces),
                bounce_rate=int(bounces) / int(entries) if entries else None,
                exit_rate=rate(int(exits), int(views)),
            )
            for path, views, visits, entries, exits, bounces in rows
        ],
    )


# -- GET /heatmap --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeatmapCell:
    day: int
    """0 = Sunday … 6 = Saturday, UTC."""
    hour: int
    """0-23, UTC."""
    events: int
    users: int


@dataclass(frozen=True, slots=True)
class HeatmapAnswer:
    window: dict[str, int]
    total_events: int
    heatmap: list[HeatmapCell]
    """The cells with events, by day then hour; empty when the window has none."""
    peak: HeatmapCell | None
    """The busiest cell (the earliest of equals); null when the window has no events."""


async def heatmap(asked: Asked, args: EventFilterArgs) -> HeatmapAnswer:
    window = args.window(asked.now_ms)
    where = args.where(asked.gateway_id, window)
    rows = await asked.store.fetch(
        f"""SELECT weekday, hour_of_day, COUNT(*), COUNT(DISTINCT user_key) FROM (
                SELECT (ts_ms / {DAY_MS} + {EPOCH_WEEKDAY}) % 7 AS weekday,
                    (ts_ms % {DAY_MS}) / {HOUR_MS} AS hour_of_day, {USER_KEY} AS user_key
                FROM events WHERE {where.sql()}
            ) AS cells GROUP BY weekday, hour_of_day ORDER BY weekday, hour_of_day""",
        where.params,
    )
    cells = [HeatmapCell(int(day), int(hour), int(count), int(users)) for day, hour, count, users in rows]
    peak = max(cells, key=lambda cell: cell.events, default=None)
    return HeatmapAnswer(window.as_json(), sum(cell.events for cell in cells), cells, peak)


QUESTIONS: list[Question[Any]] = [
    Question("/sessions", "Web and MCP sessions, newest first", SessionListArgs, sessions, SessionsAnswer),
    Question(
        "/sessions/distribution",
        "Session length histogram (0-10s … 30m+) and the median",
        SessionSourceArgs,
        distribution,
        DistributionAnswer,
    ),
    Question("/pages", "Entry and exit page stats: views, entries, exits, bounce rate", PagesArgs, pages, PagesAnswer),
    Question("/heatmap", "Events by UTC day of week and hour, with the peak", EventFilterArgs, heatmap, HeatmapAnswer),
]
