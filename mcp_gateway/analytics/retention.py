"""GET /retention (seed 002): do actors come back after the day (or week) they were first seen?

Actors are users (`sql.USER_KEY`: the web visitor, else the hashed user id, as for /stats; first seen =
their first event ever, so a user seen before the first cohort belongs to no cohort) and MCP sessions
(first seen = the session's start). MCP calls carry no user, so they count only for their session. A
cohort is the actors first seen in one UTC day, or one week starting Monday 00:00 UTC. An actor of cohort
c is retained at offset k when they did `event` (default: any event; `source` narrows both) in period c + k.

The cohorts are the last `cohorts` periods up to `until` (default now), or the periods from `since`
(rounded down to its period) to `until`. A cohort has reached offset k when period c + k starts
before `until`; `retained` and `rates` list the offsets it has reached, so older cohorts have longer
lists. `rates[0]` is always 1.0 (the cohort itself, seed 002). `average_rates[k]` is weighted by
cohort size over the cohorts that have reached offset k: the sum of their retained[k] over the sum
of their users (null when they have no users; index 0 is always 1.0). Seed 002 calls
`average_rates[1] < 0.10` a retention cliff (`anomalies.py` flags it).

Read from the writer's hourly `activity_rollups` (who was active in each hour, a row per user or session
and hour), not from the events: periods start on the hour, so whole hours are exact, and only the hour
`until` falls in is read from the events. Per actor kind, one query returns each (actor, period) once,
marked as seen (for the cohort) and/or returned; with `event`, the returns are that event's rows of the
covering index `events_by_name`. MCP sessions' starts come from `mcp_sessions_by_time`. One linear pass
in Python then counts (cohort, offset).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field

from ..errors import InvalidInputError
from .api import Asked, Question
from .events import MAX_NAME_CHARS, Source
from .sql import DAY_MS, HOUR_MS, USER_KEY
from .window import Args, Instant, TimeWindow

WEEK_MS: Final = 7 * DAY_MS
MONDAY_OFFSET_MS: Final = 4 * DAY_MS
"""1970-01-01 was a Thursday: weeks start on Mondays, 4 days after the epoch's week started."""
DEFAULT_COHORTS: Final = 7
MAX_COHORTS: Final = 90

Granularity = Literal["day", "week"]


def period_start(ts_ms: int, granularity: Granularity) -> int:
    """The start of the UTC day, or of the Monday-based week, that `ts_ms` falls in."""
    if granularity == "day":
        return ts_ms - ts_ms % DAY_MS
    return ts_ms - (ts_ms - MONDAY_OFFSET_MS) % WEEK_MS


class RetentionArgs(Args):
    granularity: Granularity = Field(
        "day",
        validation_alias=AliasChoices("granularity", "period"),
        description="Cohorts by first-seen day or week (Monday, UTC); also accepted as `period`",
    )
    cohorts: int | None = Field(
        None, ge=1, le=MAX_COHORTS, description=f"How many cohorts, ending at `until` (default {DEFAULT_COHORTS})"
    )
    since: Instant | None = Field(None, description="The first cohort's period contains this time (not with cohorts)")
    until: Instant | None = Field(None, description="Activity up to this time (default now)")
    event: str | None = Field(
        None, min_length=1, max_length=MAX_NAME_CHARS, description="The returning action (default: any event)"
    )
    source: Source | None = Field(None, description="Only MCP sessions, or only web / server visitors and events")

    def window(self, now_ms: int) -> TimeWindow:
        """From the first cohort's start to `until`; 400 naming the parameter that does not fit."""
        until_ms = now_ms if self.until is None else self.until
        size = DAY_MS if self.granularity == "day" else WEEK_MS
        if self.since is not None:
            if self.cohorts is not None:
                raise InvalidInputError("Give cohorts or since, not both", field="cohorts")
            since_ms = period_start(self.since, self.granularity)
            if since_ms >= until_ms:
                raise InvalidInputError("since must be before until", field="since")
            if until_ms - since_ms > MAX_COHORTS * size:
                raise InvalidInputError(f"At most {MAX_COHORTS} cohorts", field="since")
        else:
            since_ms = period_start(until_ms - 1, self.granularity) - ((self.cohorts or DEFAULT_COHORTS) - 1) * size
        return TimeWindow(since_ms, until_ms)


@dataclass(frozen=True, slots=True)
class Cohort:
    cohort: str
    """The period's first day, YYYY-MM-DD (UTC)."""
    start_ms: int
    users: int
    retained: list[int]
    """Actors active in each period from the cohort's own (offset 0: all of them)."""
    rates: list[float]
    """retained / users per offset, 0-1; index 0 is 1.0."""


@dataclass(frozen=True, slots=True)
class RetentionAnswer:
    gateway_id: str
    window: dict[str, int]
    granularity: str
    event: str | None
    cohorts: list[Cohort]
    average_rates: list[float | None]
    """Per offset, weighted by cohort size over the cohorts that reached it; index 0 is 1.0."""


@dataclass(frozen=True, slots=True)
class Sql:
    """An SQL statement and its parameters."""

    text: str
    params: tuple[object, ...] = ()


_VISITOR_BRANCHES: Final = (
    "anonymous_id AS actor FROM events WHERE {where} AND anonymous_id IS NOT NULL",
    "user_id_hash AS actor FROM events WHERE {where} AND anonymous_id IS NULL AND user_id_hash IS NOT NULL",
)
"""`sql.USER_KEY` in two halves, so the visitor half is read from `events_by_name` alone."""


def _period(column: str, since_ms: int, size_ms: int) -> Sql:
    """The period index of `column` from `since_ms`; -1 for anything earlier."""
    return Sql(f"CASE WHEN {column} < ? THEN -1 ELSE ({column} - ?) / ? END", (since_ms, since_ms, size_ms))


def _user_rows(asked: Asked, args: RetentionArgs, window: TimeWindow, size_ms: int) -> Sql:
    """Rows (user, period, seen, returned), distinct: when each user was active (`seen`, all history up to
    `until`, earlier than the window as period -1) and did the returning event (`returned`)."""
    last_hour = window.until_ms - window.until_ms % HOUR_MS
    rollup_source = " AND source = ?" if args.source else ""
    event_source = " AND source = ?" if args.source else " AND source <> 'mcp'"
    source_params: tuple[object, ...] = (args.source,) if args.source else ()
    hour = _period("hour_ms", window.since_ms, size_ms)
    # Whole hours from the activity rollups, the hour `until` falls in from its events.
    activity = (
        f"SELECT actor, hour_ms FROM activity_rollups WHERE gateway_id = ? AND hour_ms < ? AND actor <> ''"
        f"{rollup_source} UNION ALL SELECT {USER_KEY}, ts_ms - ts_ms % {HOUR_MS} FROM events"
        f" WHERE gateway_id = ? AND ts_ms >= ? AND ts_ms < ? AND {USER_KEY} IS NOT NULL{event_source}"
    )
    params: list[object] = [asked.gateway_id, last_hour, *source_params]
    params += [asked.gateway_id, last_hour, window.until_ms, *source_params]
    returned = "0" if args.event else "1"
    text = f"SELECT actor, {hour.text} AS period, 1, {returned} FROM ({activity}) activity GROUP BY actor, period"
    params = [*hour.params, *params]
    if args.event:
        event = _period("ts_ms", window.since_ms, size_ms)
        where = (
            "gateway_id = ? AND source IN ('web', 'server') AND primitive_type IS NULL AND name = ?"
            f" AND ts_ms >= ? AND ts_ms < ?{' AND source = ?' if args.source else ''}"
        )
        branches = [f"SELECT {event.text} AS period, {branch.format(where=where)}" for branch in _VISITOR_BRANCHES]
        text += (
            f" UNION ALL SELECT actor, period, 0, 1 FROM ({' UNION ALL '.join(branches)}) did GROUP BY actor, period"
        )
        for _ in _VISITOR_BRANCHES:
            params += [*event.params, asked.gateway_id, args.event, window.since_ms, window.until_ms, *source_params]
    return Sql(text, tuple(params))


def _session_rows(asked: Asked, args: RetentionArgs, window: TimeWindow, size_ms: int) -> Sql:
    """Rows (MCP session, period, seen, returned), distinct: the period it started in (sessions started in
    the window), and the periods it was active in (or did the returning event)."""
    last_hour = window.until_ms - window.until_ms % HOUR_MS
    started = _period("started_at_ms", window.since_ms, size_ms)
    text = (
        f"SELECT id, {started.text}, 1, 0 FROM mcp_sessions"
        " WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ?"
    )
    params: list[object] = [*started.params, asked.gateway_id, window.since_ms, window.until_ms]
    if args.event:
        event = _period("ts_ms", window.since_ms, size_ms)
        text += (
            f" UNION ALL SELECT session_id, {event.text} AS period, 0, 1 FROM events WHERE gateway_id = ?"
            " AND source = 'mcp' AND primitive_type IN ('tool', 'resource', 'prompt') AND name = ?"
            " AND ts_ms >= ? AND ts_ms < ? AND session_id IS NOT NULL GROUP BY session_id, period"
        )
        params += [*event.params, asked.gateway_id, args.event, window.since_ms, window.until_ms]
    else:
        hour = _period("hour_ms", window.since_ms, size_ms)
        text += (
            f" UNION ALL SELECT session_id, {hour.text} AS period, 0, 1 FROM (SELECT session_id, hour_ms"
            " FROM activity_rollups WHERE gateway_id = ? AND hour_ms >= ? AND hour_ms < ? AND source = 'mcp'"
            f" AND session_id <> '' UNION ALL SELECT session_id, ts_ms - ts_ms % {HOUR_MS} FROM events"
            " WHERE gateway_id = ? AND ts_ms >= ? AND ts_ms < ? AND source = 'mcp' AND session_id IS NOT NULL)"
            " activity GROUP BY session_id, period"
        )
        params += [*hour.params, asked.gateway_id, window.since_ms, last_hour]
        params += [asked.gateway_id, last_hour, window.until_ms]
    return Sql(text, tuple(params))


def cohort_counts(rows: Sequence[Sequence[Any]]) -> Counter[tuple[int, int]]:
    """(cohort index, offset) -> actors, from rows (actor, period, seen, returned), distinct per (actor, period)
    among the seen and among the returned; offset -1 is the cohort's size. An actor's cohort is the first
    period they were seen in (none when seen before the window)."""
    first: dict[str, int] = {}
    for actor, period, seen_then, _ in rows:
        if seen_then and first.get(actor, period) >= period:
            first[actor] = period
    counts: Counter[tuple[int, int]] = Counter((cohort, -1) for cohort in first.values() if cohort >= 0)
    for actor, period, _, returned in rows:
        cohort = first.get(actor, -1)
        if returned and 0 <= cohort < period:
            counts[(cohort, period - cohort)] += 1
    return counts


async def _cohort_counts(asked: Asked, args: RetentionArgs, window: TimeWindow) -> Counter[tuple[int, int]]:
    """(cohort index, offset) -> actors; offset -1 is the cohort's size."""
    size = DAY_MS if args.granularity == "day" else WEEK_MS
    counts: Counter[tuple[int, int]] = Counter()
    if args.source != "mcp":
        users = _user_rows(asked, args, window, size)
        counts.update(cohort_counts(await asked.store.fetch(users.text, users.params)))
    if args.source in (None, "mcp"):
        sessions = _session_rows(asked, args, window, size)
        counts.update(cohort_counts(await asked.store.fetch(sessions.text, sessions.params)))
    return counts


async def retention(asked: Asked, args: RetentionArgs) -> RetentionAnswer:
    window = args.window(asked.now_ms)
    size = DAY_MS if args.granularity == "day" else WEEK_MS
    periods = -(-window.length_ms // size)
    counts = await _cohort_counts(asked, args, window)
    cohorts = []
    for c in range(periods):
        users = counts[(c, -1)]
        retained = [users] + [counts[(c, k)] for k in range(1, periods - c)]
        start_ms = window.since_ms + c * size
        cohorts.append(
            Cohort(
                cohort=datetime.fromtimestamp(start_ms / 1000, UTC).date().isoformat(),
                start_ms=start_ms,
                users=users,
                retained=retained,
                rates=[1.0] + [n / users if users else 0.0 for n in retained[1:]],
            )
        )
    return RetentionAnswer(
        gateway_id=asked.gateway_id,
        window=window.as_json(),
        granularity=args.granularity,
        event=args.event,
        cohorts=cohorts,
        average_rates=average_rates(cohorts),
    )


def average_rates(cohorts: list[Cohort]) -> list[float | None]:
    """Per offset: retained over users, summed over the cohorts that reached the offset (index 0: 1.0)."""
    longest = max((len(c.retained) for c in cohorts), default=0)
    averages: list[float | None] = [1.0] if longest else []
    for k in range(1, longest):
        reached = [c for c in cohorts if len(c.retained) > k]
        users = sum(c.users for c in reached)
        averages.append(sum(c.retained[k] for c in reached) / users if users else None)
    return averages


QUESTIONS: list[Question[Any]] = [
    Question(
        "/retention",
        "Cohort retention: actors by first-seen day or week, and the share active in each later period",
        RetentionArgs,
        retention,
        RetentionAnswer,
    )
]
