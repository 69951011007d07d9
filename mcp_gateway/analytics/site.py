"""Seed 001's site analytics: what the browser tracker recorded, plus the agent side's headline numbers.

    GET /analytics/overview        sessions, events, visitors, page views, leads, MCP sessions, tool calls
    GET /analytics/sessions/daily  per UTC day: web sessions and visitors, every day of the window
    GET /analytics/pages/top       most viewed paths
    GET /analytics/geo             web sessions, visitors and MCP sessions per country
    GET /analytics/engagement      `$session_end` engagement scores in five buckets of 20
    GET /analytics/sources         traffic source/medium of each session's landing, ranked
    GET /analytics/realtime        active sessions now, events per minute, top pages now

A web session is a `session_id` of `source='web'` events (the tracker's, or the one the writer
derives with a 30-minute inactivity gap); a visitor is an `anonymous_id` (else the hashed user id).
Page views are events named one of `sql.PAGE_VIEW_NAMES`. The answers read, rather than events:

- event and page-view counts come from the event rollups (`rollups.counts_by*`), tool calls and
  errors from the MCP rollups (`primitives.primitive_stats`), both exact for any window;
- web sessions and visitors active in the window, or per day, from `rollups.activity` (exact below
  `rollups.EXACT_BELOW`, beyond it HyperLogLog estimates within ±1.6%);
- per country and per traffic source, from the writer's per-day session counts
  (`rollups.session_counts`): the sessions in a window are those overlapping it (`started_ms < until
  AND last_ms >= since`) whose first event was a web one, each counted once with the attributes of
  its first attributed event (its landing); their visitors exactly below `rollups.EXACT_BELOW`
  sessions, beyond it from per-day sketches;
- MCP sessions and leads by their start time (`mcp_sessions_by_time`, `leads_by_gateway_time`).

Unique visitors of the most viewed pages come from their page views in small windows, beyond
`rollups.EXACT_BELOW` views from the writer's per-day visitor sketches (`rollups.visitors_by`). Engagement
scores come from the writer's `sessions` rows (`sessions_by_end`); `realtime` looks at five minutes of events.

Seed 001's `GET /analytics/storage` (R2 bucket statistics) is left out: the gateway keeps no R2 storage.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import Field

from ..errors import InvalidInputError
from .api import Asked, Question
from .primitives import primitive_stats
from .rollups import EXACT_BELOW, activity, counts_by, counts_by_name, session_counts, users_per_value, visitors_by
from .sql import DAY_MS, PAGE_VIEW_NAMES, Where, bucket, events_where, in_list
from .window import Args, TimeWindow, WindowArgs

MAX_DAILY_DAYS: Final = 366
"""Longest window `sessions/daily` answers, in days (one row per day)."""
ENGAGEMENT_BUCKETS: Final = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100))
"""Engagement score ranges: [low, high), the last one includes 100 (and any score above it)."""
REALTIME_ACTIVE_MS: Final = 5 * 60 * 1000
"""A session with an event (or an MCP session started) this recently is active."""
REALTIME_MINUTES: Final = 30
"""Minutes of events-per-minute `realtime` answers, the current minute last."""
REALTIME_TOP_PAGES: Final = 5
MINUTE_MS: Final = 60 * 1000
UNKNOWN_COUNTRY: Final = "unknown"


# -- overview -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overview:
    gateway_id: str
    window: dict[str, int]
    sessions: int
    """Web sessions with an event in the window."""
    events: int
    """Every event in the window: web, server and MCP."""
    unique_visitors: int
    """Web visitors (else hashed user ids) with an event in the window."""
    page_views: int
    leads: int
    """Leads created in the window, from agents and web forms."""
    mcp_sessions: int
    """MCP sessions started in the window."""
    tool_calls: int
    tool_errors: int
    error_rate: float
    """tool_errors / tool_calls (0 without calls)."""
    avg_engagement: float | None
    """Mean engagement score of the sessions that ended in the window; None when none did."""


async def overview(asked: Asked, args: WindowArgs) -> Overview:
    window = args.window(asked.now_ms)
    per_name = await counts_by_name(asked.store, asked.gateway_id, window)
    page_views = sum(n for (source, name), n in per_name.items() if source != "mcp" and name in PAGE_VIEW_NAMES)
    [web] = await activity(asked.store, asked.gateway_id, window, source="web")
    tools = await primitive_stats(asked.store, asked.gateway_id, window, primitive_type="tool")
    tool_calls, tool_errors = sum(t.calls for t in tools), sum(t.errors for t in tools)
    [(leads,)] = await asked.store.fetch(
        "SELECT COUNT(*) FROM leads WHERE gateway_id = ? AND created_at_ms >= ? AND created_at_ms < ?",
        [asked.gateway_id, window.since_ms, window.until_ms],
    )
    [(mcp_sessions,)] = await asked.store.fetch(
        "SELECT COUNT(*) FROM mcp_sessions WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ?",
        [asked.gateway_id, window.since_ms, window.until_ms],
    )
    ended = _ended_sessions(asked.gateway_id, window)
    [(avg_engagement,)] = await asked.store.fetch(
        f"SELECT AVG(engagement_score) FROM sessions WHERE {ended.sql()}", ended.params
    )
    return Overview(
        gateway_id=asked.gateway_id,
        window=window.as_json(),
        sessions=web.sessions,
        events=sum(per_name.values()),
        unique_visitors=web.actors,
        page_views=page_views,
        leads=leads,
        mcp_sessions=mcp_sessions,
        tool_calls=tool_calls,
        tool_errors=tool_errors,
        error_rate=tool_errors / tool_calls if tool_calls else 0.0,
        avg_engagement=None if avg_engagement is None else round(float(avg_engagement), 1),
    )


def web_sessions(gateway_id: str, window: TimeWindow) -> Where:
    """The web sessions in `window`: the `sessions` rows that overlap it (`started_ms < until AND last_ms >= since`)
    whose first event was a web one. `sessions_by_last` serves it: for a window that ends now, every session
    that was active since its start, and nothing else."""
    where = Where().add("gateway_id = ?", gateway_id).add("last_ms >= ?", window.since_ms)
    return where.add("started_ms < ?", window.until_ms).add("source = 'web'")


def _ended_sessions(gateway_id: str, window: TimeWindow) -> Where:
    """The sessions whose `$session_end` (seed 001's end of a visit) is in `window` with a numeric
    engagement score: the writer keeps the last one's time and score on the session (`sessions_by_end`)."""
    where = Where().add("gateway_id = ?", gateway_id).add("ended_ms >= ?", window.since_ms)
    return where.add("ended_ms < ?", window.until_ms).add("engagement_score IS NOT NULL")


# -- sessions/daily -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaySessions:
    date: str
    """The UTC day, YYYY-MM-DD."""
    sessions: int
    visitors: int


@dataclass(frozen=True, slots=True)
class DailySessions:
    gateway_id: str
    window: dict[str, int]
    days: list[DaySessions]


async def sessions_daily(asked: Asked, args: WindowArgs) -> DailySessions:
    """A session with events on both sides of midnight counts on both days."""
    window = args.window(asked.now_ms)
    first_day = window.since_ms - window.since_ms % DAY_MS
    day_starts = range(first_day, window.until_ms, DAY_MS)
    if len(day_starts) > MAX_DAILY_DAYS:
        raise InvalidInputError(f"sessions/daily covers at most {MAX_DAILY_DAYS} days", field="since")
    active = await activity(asked.store, asked.gateway_id, window, source="web", bucket_ms=DAY_MS)
    counted = {day.bucket_ms: (day.sessions, day.actors) for day in active}
    days = [DaySessions(_date(day), *counted.get(day, (0, 0))) for day in day_starts]
    return DailySessions(asked.gateway_id, window.as_json(), days)


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


# -- pages/top ----------------------------------------------------------------------------------------


class TopPagesArgs(WindowArgs):
    limit: int = Field(10, ge=1, le=100, description="How many pages, the most viewed first.")


@dataclass(frozen=True, slots=True)
class PageViews:
    path: str
    views: int
    unique_visitors: int


@dataclass(frozen=True, slots=True)
class TopPages:
    gateway_id: str
    window: dict[str, int]
    limit: int
    pages: list[PageViews]


async def top_pages(asked: Asked, args: TopPagesArgs) -> TopPages:
    """Views per path from the rollups; unique visitors of the `limit` most viewed paths from their page views, or
    from the writer's per-day visitor sketches (`rollups.visitors_by`) once they have `EXACT_BELOW` views."""
    window = args.window(asked.now_ms)
    views: Counter[str] = Counter()
    for name in PAGE_VIEW_NAMES:
        views.update(await counts_by(asked.store, asked.gateway_id, window, "path", name=name))
    top = sorted(views, key=lambda path: (-views[path], path))[: args.limit]
    if sum(views[path] for path in top) >= EXACT_BELOW:
        visitors = await visitors_by(asked.store, asked.gateway_id, window, "page", top)
    else:
        rows = await asked.store.fetch(*users_per_value(asked.gateway_id, "page", top, window)) if top else []
        visitors = {path: len(users) for path, users in _grouped(rows).items()}
    pages = [PageViews(path, views[path], visitors.get(path, 0)) for path in top]
    return TopPages(asked.gateway_id, window.as_json(), args.limit, pages)


def _grouped(rows: list[tuple[Any, ...]]) -> dict[str, set[str]]:
    """(value, user) rows as the set of users per value."""
    users: dict[str, set[str]] = {}
    for value, user in rows:
        users.setdefault(str(value), set()).add(str(user))
    return users


def _page_views(gateway_id: str, window: TimeWindow) -> Where:
    """Web and server page views in `window`, in `events_by_name` order (they have no primitive type)."""
    where = Where().add("gateway_id = ?", gateway_id)
    sources, source_params = in_list("source", ("web", "server"))
    names, name_params = in_list("name", PAGE_VIEW_NAMES)
    where.add(sources, *source_params).add("primitive_type IS NULL").add(names, *name_params)
    return where.add("ts_ms >= ?", window.since_ms).add("ts_ms < ?", window.until_ms)


async def _most_viewed(asked: Asked, window: TimeWindow, limit: int) -> list[PageViews]:
    where = _page_views(asked.gateway_id, window).add("path IS NOT NULL")
    rows = await asked.store.fetch(
        f"SELECT path, COUNT(*), COUNT(DISTINCT anonymous_id) FROM events WHERE {where.sql()}"
        " GROUP BY path ORDER BY 2 DESC, path LIMIT ?",
        [*where.params, limit],
    )
    return [PageViews(path, views, visitors) for path, views, visitors in rows]


# -- geo ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountryTraffic:
    country: str
    """ISO 3166 alpha-2 code, or "unknown"."""
    sessions: int
    visitors: int
    mcp_sessions: int


@dataclass(frozen=True, slots=True)
class Geo:
    gateway_id: str
    window: dict[str, int]
    countries: list[CountryTraffic]


async def geo(asked: Asked, args: WindowArgs) -> Geo:
    """A web session counts in the country of its first attributed event."""
    window = args.window(asked.now_ms)
    [per_country] = (await session_counts(asked.store, asked.gateway_id, window, "country", source="web")).values()
    if sum(n.tally.sessions for n in per_country.values()) < EXACT_BELOW:
        exact = await _exact_visitors(asked, window, ["COALESCE(country, ?)"], UNKNOWN_COUNTRY)
        web = {country: counts for (country,), counts in exact.items()}
    else:
        web = {country or UNKNOWN_COUNTRY: (n.tally.sessions, n.visitors()) for country, n in per_country.items()}
    agent_rows = await asked.store.fetch(
        f"SELECT COALESCE(country, '{UNKNOWN_COUNTRY}'), COUNT(*) FROM mcp_sessions"
        " WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ? GROUP BY 1",
        [asked.gateway_id, window.since_ms, window.until_ms],
    )
    agents = {country: sessions for country, sessions in agent_rows}
    countries = [
        CountryTraffic(country, *web.get(country, (0, 0)), agents.get(country, 0)) for country in set(web) | set(agents)
    ]
    countries.sort(key=lambda c: (-(c.sessions + c.mcp_sessions), c.country))
    return Geo(asked.gateway_id, window.as_json(), countries)


async def _exact_visitors(
    asked: Asked, window: TimeWindow, values: list[str], *value_params: object
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Web sessions and distinct visitors in `window` per combination of `values` (SQL expressions over
    `sessions`), counted exactly from the window's rows: for windows with fewer than `EXACT_BELOW` sessions."""
    in_window = web_sessions(asked.gateway_id, window)
    group = ", ".join(str(i + 1) for i in range(len(values)))
    rows = await asked.store.fetch(
        f"SELECT {', '.join(values)}, COUNT(*), COUNT(DISTINCT NULLIF(actor, '')) FROM sessions"
        f" WHERE {in_window.sql()} GROUP BY {group}",
        [*value_params, *in_window.params],
    )
    return {tuple(map(str, row[:-2])): (int(row[-2]), int(row[-1])) for row in rows}


# -- engagement ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngagementBucket:
    range: str
    """"0-20", "20-40", ... "80-100"."""
    min_score: int
    max_score: int
    sessions: int
    share: float
    """Of the scored sessions (0 without any)."""


@dataclass(frozen=True, slots=True)
class Engagement:
    gateway_id: str
    window: dict[str, int]
    sessions: int
    """Sessions that ended (`$session_end` with a score) in the window."""
    average_score: float | None
    buckets: list[EngagementBucket]


async def engagement(asked: Asked, args: WindowArgs) -> Engagement:
    window = args.window(asked.now_ms)
    ended = _ended_sessions(asked.gateway_id, window)
    # One row of sums (no GROUP BY, so no sort): the sessions below each bucket's upper bound but the last's.
    below = ", ".join(
        f"SUM(CASE WHEN engagement_score < {high} THEN 1 ELSE 0 END)" for _, high in ENGAGEMENT_BUCKETS[:-1]
    )
    [(sessions, total, *under)] = await asked.store.fetch(
        f"SELECT COUNT(*), SUM(engagement_score), {below} FROM sessions WHERE {ended.sql()}", ended.params
    )
    sessions = int(sessions)
    cumulative = [int(n or 0) for n in under] + [sessions]  # the last bucket takes 100 and above
    counts = {i: n - (cumulative[i - 1] if i else 0) for i, n in enumerate(cumulative)}
    buckets = []
    for i, (low, high) in enumerate(ENGAGEMENT_BUCKETS):
        ended_here = counts[i]
        share = ended_here / sessions if sessions else 0.0
        buckets.append(EngagementBucket(f"{low}-{high}", low, high, ended_here, share))
    average = round(float(total) / sessions, 1) if sessions else None
    return Engagement(asked.gateway_id, window.as_json(), sessions, average, buckets)


# -- sources ------------------------------------------------------------------------------------------


class SourcesArgs(WindowArgs):
    limit: int = Field(20, ge=1, le=100, description="How many source/medium pairs, the most sessions first.")


@dataclass(frozen=True, slots=True)
class TrafficSource:
    source: str
    """`traffic_source` of the session's first attributed event: "google", "chatgpt", "(direct)", a referring host,
    ..."""
    medium: str
    """"organic", "cpc", "ai", "social", "referral", "(none)", ..."""
    sessions: int
    visitors: int
    share: float
    """Of all sessions in the window."""
    referrer_host: str | None
    """The host that referred most of these sessions; None when none had a referrer."""


@dataclass(frozen=True, slots=True)
class Sources:
    gateway_id: str
    window: dict[str, int]
    sessions: int
    sources: list[TrafficSource]


async def sources(asked: Asked, args: SourcesArgs) -> Sources:
    """Each session in the window counts once, for the source, medium and referrer of its first event that has a
    traffic source (its landing, before any navigation), kept on its `sessions` row."""
    window = args.window(asked.now_ms)
    counted = await session_counts(asked.store, asked.gateway_id, window, "landing", "referrer", source="web")
    landings, referrers = counted["landing"], counted["referrer"]
    hosts: dict[tuple[str, str], dict[str, int]] = {}
    for value, count in referrers.items():
        source, medium, host = json.loads(value)
        hosts.setdefault(_source_medium(source, medium), {})[host] = count.tally.sessions
    total = sum(count.tally.sessions for count in landings.values())
    ranked = {_source_medium(*json.loads(value)): count for value, count in landings.items()}
    if total < EXACT_BELOW:
        exact = await _exact_visitors(
            asked, window, ["COALESCE(traffic_source, ?)", "COALESCE(traffic_medium, ?)"], *_UNKNOWN_LANDING
        )
        visitors = {(source, medium): n for (source, medium), (_, n) in exact.items()}
    else:
        visitors = {landing: count.visitors() for landing, count in ranked.items()}
    ranking = [
        TrafficSource(
            source,
            medium,
            count.tally.sessions,
            visitors.get((source, medium), 0),
            count.tally.sessions / total if total else 0.0,
            _top_host(hosts.get((source, medium), {})),
        )
        for (source, medium), count in ranked.items()
    ]
    ranking.sort(key=lambda s: (-s.sessions, -s.visitors, s.source, s.medium))
    return Sources(asked.gateway_id, window.as_json(), total, ranking[: args.limit])


_UNKNOWN_LANDING: Final = ("(unknown)", "(none)")
"""What a session without a traffic source is listed as."""


def _source_medium(source: str | None, medium: str | None) -> tuple[str, str]:
    return (
        _UNKNOWN_LANDING[0] if source is None else source,
        _UNKNOWN_LANDING[1] if medium is None else medium,
    )


def _top_host(counts: dict[str, int]) -> str | None:
    return min(counts, key=lambda host: (-counts[host], host)) if counts else None


# -- realtime -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MinuteEvents:
    minute: int
    """Start of the minute, ms since the epoch (UTC)."""
    events: int


@dataclass(frozen=True, slots=True)
class Realtime:
    gateway_id: str
    now: int
    active_since: int
    active_web_sessions: int
    active_visitors: int
    active_mcp_sessions: int
    """MCP sessions with a call, or started, since `active_since`."""
    events_per_minute: list[MinuteEvents]
    """The last `REALTIME_MINUTES` minutes, oldest first, the current (partial) minute last."""
    top_pages: list[PageViews]
    """Most viewed pages since `active_since`."""


async def realtime(asked: Asked, args: Args) -> Realtime:
    now = asked.now_ms
    active = TimeWindow(now - REALTIME_ACTIVE_MS, now + 1)
    web = events_where(asked.gateway_id, active, source="web")
    [(active_sessions, visitors)] = await asked.store.fetch(
        f"SELECT COUNT(DISTINCT session_id), COUNT(DISTINCT anonymous_id) FROM events WHERE {web.sql()}", web.params
    )
    calls = events_where(asked.gateway_id, active, source="mcp").add("session_id IS NOT NULL")
    [(mcp_sessions,)] = await asked.store.fetch(
        f"SELECT COUNT(*) FROM (SELECT session_id FROM events WHERE {calls.sql()}"
        " UNION SELECT id FROM mcp_sessions WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ?) active",
        [*calls.params, asked.gateway_id, active.since_ms, active.until_ms],
    )
    first_minute = now - now % MINUTE_MS - (REALTIME_MINUTES - 1) * MINUTE_MS
    recent = events_where(asked.gateway_id, TimeWindow(first_minute, now + 1))
    rows = await asked.store.fetch(
        f"SELECT {bucket('ts_ms', MINUTE_MS)}, COUNT(*) FROM events WHERE {recent.sql()} GROUP BY 1", recent.params
    )
    counted = {int(minute): events for minute, events in rows}
    per_minute = [MinuteEvents(minute, counted.get(minute, 0)) for minute in range(first_minute, now + 1, MINUTE_MS)]
    pages = await _most_viewed(asked, active, REALTIME_TOP_PAGES)
    return Realtime(asked.gateway_id, now, active.since_ms, active_sessions, visitors, mcp_sessions, per_minute, pages)


QUESTIONS: list[Question[Any]] = [
    Question(
        "/analytics/overview",
        "Summary: web sessions, events, unique visitors, page views, leads, MCP sessions, tool calls and errors",
        WindowArgs,
        overview,
        Overview,
    ),
    Question(
        "/analytics/sessions/daily",
        "Web sessions and visitors per UTC day, every day of the window",
        WindowArgs,
        sessions_daily,
        DailySessions,
    ),
    Question("/analytics/pages/top", "Most viewed pages: views and unique visitors", TopPagesArgs, top_pages, TopPages),
    Question("/analytics/geo", "Web sessions, visitors and MCP sessions per country", WindowArgs, geo, Geo),
    Question(
        "/analytics/engagement",
        "Ended sessions per engagement score bucket (0-20 ... 80-100)",
        WindowArgs,
        engagement,
        Engagement,
    ),
    Question(
        "/analytics/sources",
        "Traffic source/medium ranking: sessions, visitors, referring host",
        SourcesArgs,
        sources,
        Sources,
    ),
    Question(
        "/analytics/realtime",
        "Active web and MCP sessions in the last 5 minutes, events per minute, top pages now",
        Args,
        realtime,
        Realtime,
    ),
]
