"""Seed 002's questions about visits: sessions, how long they last, where they enter and leave, and when.

    GET /sessions               sessions (web, server and MCP), newest first
    GET /sessions/distribution  a histogram of session lengths in fixed buckets, and the median
    GET /pages                  per path: page views, entries, exits, bounces
    GET /heatmap                events by UTC day of week (0 = Sunday) and hour, and the peak cell

Sessions come from the writer's sessions table (one row per session id with events; an MCP session
that connected but made no call has none): the sessions **in a window** are those overlapping it,
`started_ms < until AND last_ms >= since`, whole — a session's length is its first to last event,
its source that of its first event. A session enters on the path of its first event with a path and
exits on its last's; it bounces when it has one page view (`sql.PAGE_VIEW_NAMES`). Length buckets,
entries, exits and bounces come from the per-day session counts (`rollups.session_counts`), page
views per path and the heatmap's events and hourly users from the rollups (`analytics.rollups`);
users are `sql.USER_KEY`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from ..store.session_counts import LENGTH_EDGES_MS, parse_length
from .api import Asked, Question
from .events import EventFilterArgs, Source, overlapping_sessions, rate
from .rollups import EXACT_BELOW, activity, counts_by, event_series, session_counts
from .sql import DAY_MS, HOUR_MS, PAGE_VIEW_NAMES, USER_KEY
from .window import TimeWindow, WindowArgs

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS

DURATION_LABELS: Final = ("0-10s", "10-30s", "30-60s", "1-3m", "3-10m", "10-30m", "30m+")
DURATION_BUCKETS: Final = tuple(zip(DURATION_LABELS, (0, *LENGTH_EDGES_MS), (*LENGTH_EDGES_MS, None), strict=True))
"""(label, from ms inclusive, to ms exclusive or None) of the session length histogram."""

EPOCH_WEEKDAY: Final = 4
"""1970-01-01 was a Thursday: day 4 when Sunday is 0."""


class SessionSourceArgs(WindowArgs):
    source: Source | None = Field(None, description="Only MCP, web or server sessions")


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
    """The session's user: the web visitor, else the hashed user id; null for MCP sessions."""
    client: str | None
    """The MCP client (`client_config`, e.g. "claude-desktop 1.0"); null for web sessions."""
    country: str | None


@dataclass(frozen=True, slots=True)
class SessionsAnswer:
    window: dict[str, int]
    limit: int
    sessions: list[ListedSession]


_LISTED: Final = "id, source, started_ms, last_ms, events, page_views, entry_path, exit_path, actor, client, country"


def _source_condition(source: str | None) -> tuple[str, list[object]]:
    return ("", []) if source is None else (" AND source = ?", [source])


async def sessions(asked: Asked, args: SessionListArgs) -> SessionsAnswer:
    """The newest sessions overlapping the window, by start: first those started in it (`sessions_by_start`,
    newest first), then, when fewer than `limit`, those started before it and still going at its start."""
    window = args.window(asked.now_ms)
    kind, kinds = _source_condition(args.source)
    rows = await asked.store.fetch(
        f"""SELECT {_LISTED} FROM sessions WHERE gateway_id = ? AND started_ms >= ? AND started_ms < ?{kind}
            ORDER BY started_ms DESC, id LIMIT ?""",
        [asked.gateway_id, window.since_ms, window.until_ms, *kinds, args.limit],
    )
    if len(rows) < args.limit:
        rows += await asked.store.fetch(
            f"""SELECT {_LISTED} FROM sessions WHERE gateway_id = ? AND last_ms >= ? AND started_ms < ?{kind}
                ORDER BY started_ms DESC, id LIMIT ?""",
            [asked.gateway_id, window.since_ms, window.since_ms, *kinds, args.limit - len(rows)],
        )
    return SessionsAnswer(
        window.as_json(),
        args.limit,
        [
            ListedSession(
                session_id=session,
                source=source,
                started_at=int(started),
                ended_at=int(last),
                duration_ms=int(last) - int(started),
                events=int(count),
                page_views=int(views),
                entry_page=entry,
                exit_page=exit_,
                visitor_id=actor or None,
                client=client,
                country=country,
            )
            for session, source, started, last, count, views, entry, exit_, actor, client, country in rows
        ],
    )


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


async def distribution(asked: Asked, args: SessionSourceArgs) -> DistributionAnswer:
    """The histogram from `session_counts` (exact); the median from it too, within ±2.5%, or exact — the window's
    lengths read and sorted — below `EXACT_BELOW` sessions."""
    window = args.window(asked.now_ms)
    [per_length] = (await session_counts(asked.store, asked.gateway_id, window, "length", source=args.source)).values()
    total = sum(count.tally.sessions for count in per_length.values())
    counts = [0] * len(DURATION_BUCKETS)
    lengths: list[tuple[float, int]] = []
    for value, count in per_length.items():
        index, length = parse_length(value)
        counts[index] += count.tally.sessions
        lengths.append((length, count.tally.sessions))
    if total < EXACT_BELOW:
        rows = await asked.store.fetch(
            *overlapping_sessions(asked.gateway_id, window, "last_ms - started_ms", args.source)
        )
        lengths = [(int(length), 1) for (length,) in rows]
    lengths.sort()
    median = (_nth(lengths, (total - 1) // 2) + _nth(lengths, total // 2)) / 2 if total else None
    buckets = [
        DurationBucket(label, low, high, counts[i], rate(counts[i], total))
        for i, (label, low, high) in enumerate(DURATION_BUCKETS)
    ]
    return DistributionAnswer(window.as_json(), total, median, buckets)


def _nth(weighted: list[tuple[float, int]], rank: int) -> float:
    """The value at 0-based `rank` of sorted (value, how many times) pairs."""
    seen = 0
    for value, times in weighted:
        seen += times
        if seen > rank:
            return value
    raise IndexError(rank)


# -- GET /pages ----------------------------------------------------------------------------------------


class PagesArgs(WindowArgs):
    sort: Literal["views", "entries", "exits"] = Field("views", description="Order pages by this count")
    limit: int = Field(50, ge=1, le=1000, description="How many paths")


@dataclass(frozen=True, slots=True)
class PageStats:
    path: str
    views: int
    entries: int
    """Sessions with page views that entered on this path."""
    exits: int
    """Sessions with page views that left from this path."""
    bounces: int
    """Sessions with one page view that entered on this path."""
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
    views: Counter[str] = Counter()
    for name in PAGE_VIEW_NAMES:
        views += await counts_by(asked.store, asked.gateway_id, window, "path", name=name)
    counted = await session_counts(asked.store, asked.gateway_id, window, "entry", "exit")
    entered, exited = counted["entry"], counted["exit"]
    entries = Counter({path: count.tally.sessions for path, count in entered.items()})
    bounces = Counter({path: count.tally.bounces for path, count in entered.items()})
    exits = Counter({path: count.tally.sessions for path, count in exited.items()})
    stats = [
        PageStats(
            path=path,
            views=views[path],
            entries=entries[path],
            exits=exits[path],
            bounces=bounces[path],
            bounce_rate=bounces[path] / entries[path] if entries[path] else None,
            exit_rate=rate(exits[path], views[path]),
        )
        for path in views.keys() | entries.keys() | exits.keys()
    ]
    stats.sort(key=lambda page: (-getattr(page, args.sort), page.path))
    return PagesAnswer(window.as_json(), args.sort, stats[: args.limit])


# -- GET /heatmap --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeatmapCell:
    day: int
    """0 = Sunday … 6 = Saturday, UTC."""
    hour: int
    """0-23, UTC."""
    events: int
    users: int
    """Distinct users per hour, summed over the cell's hours (one hour per cell in a week or less); distinct
    users over the whole cell when filtered by event name or primitive type."""


@dataclass(frozen=True, slots=True)
class HeatmapAnswer:
    window: dict[str, int]
    total_events: int
    heatmap: list[HeatmapCell]
    """The cells with events, by day then hour; empty when the window has none."""
    peak: HeatmapCell | None
    """The busiest cell (the earliest of equals); null when the window has no events."""


async def _cells_from_rollups(asked: Asked, window: TimeWindow, source: str | None) -> list[HeatmapCell]:
    """Events per hour from the rollups, folded into weekday × hour; users are summed over the cell's hours."""
    events_at = await event_series(asked.store, asked.gateway_id, window, HOUR_MS, source=source)
    users_at = await activity(asked.store, asked.gateway_id, window, source=source, bucket_ms=HOUR_MS)
    events: Counter[tuple[int, int]] = Counter()
    users: Counter[tuple[int, int]] = Counter()
    for at, count in events_at.items():
        events[_cell(at)] += count
    for point in users_at:
        users[_cell(point.bucket_ms)] += point.actors
    return [HeatmapCell(day, hour, events[(day, hour)], users[(day, hour)]) for day, hour in sorted(events)]


def _cell(at_ms: int) -> tuple[int, int]:
    """(UTC weekday with Sunday 0, UTC hour) of an instant."""
    return (at_ms // DAY_MS + EPOCH_WEEKDAY) % 7, at_ms % DAY_MS // HOUR_MS


async def _cells_from_events(asked: Asked, args: EventFilterArgs, window: TimeWindow) -> list[HeatmapCell]:
    """The cells from the events, for an event name or primitive type filter (`events_by_name` narrows the
    scan); users are distinct per cell."""
    where = args.where(asked.gateway_id, window)
    rows = await asked.store.fetch(
        f"""SELECT weekday, hour_of_day, COUNT(*), COUNT(DISTINCT user_key) FROM (
                SELECT (ts_ms / {DAY_MS} + {EPOCH_WEEKDAY}) % 7 AS weekday,
                    (ts_ms % {DAY_MS}) / {HOUR_MS} AS hour_of_day, {USER_KEY} AS user_key
                FROM events WHERE {where.sql()}
            ) AS cells GROUP BY weekday, hour_of_day ORDER BY weekday, hour_of_day""",
        where.params,
    )
    return [HeatmapCell(int(day), int(hour), int(count), int(users)) for day, hour, count, users in rows]


async def heatmap(asked: Asked, args: EventFilterArgs) -> HeatmapAnswer:
    window = args.window(asked.now_ms)
    if args.event is None and args.primitive is None:
        cells = await _cells_from_rollups(asked, window, args.source)
    else:
        cells = await _cells_from_events(asked, args, window)
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
