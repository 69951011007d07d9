"""GET /retention (seed 002): do actors come back after the day (or week) they were first seen?

Actors are web visitors (`anonymous_id`; first seen = their first event ever, so a visitor seen before
the first cohort belongs to no cohort) and MCP sessions (first seen = the session's start). Events
with neither a visitor nor an MCP session are not counted. A cohort is the actors first seen in one
UTC day, or one week starting Monday 00:00 UTC. An actor of cohort c is retained at offset k when
they did `event` (default: any event; `source` narrows both) in period c + k.

The cohorts are the last `cohorts` periods up to `until` (default now), or the periods from `since`
(rounded down to its period) to `until`. A cohort has reached offset k when period c + k starts
before `until`; `retained` and `rates` list the offsets it has reached, so older cohorts have longer
lists. `rates[0]` is always 1.0 (the cohort itself, seed 002). `average_rates[k]` is weighted by
cohort size over the cohorts that have reached offset k: the sum of their retained[k] over the sum
of their users (null when they have no users; index 0 is always 1.0). Seed 002 calls
`average_rates[1] < 0.10` a retention cliff (`anomalies.py` flags it).

Each actor kind is one query that aggregates in the database: the cohort members (visitors' first
event from the covering index `events_by_visitor`; MCP sessions from `mcp_sessions_by_time`), joined
to their events in the window by seeks on `events_by_visitor` / `events_by_session`, counted per
(cohort, offset).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field

from ..web import ApiError
from .api import Asked, Question
from .events import MAX_NAME_CHARS, Source
from .sql import DAY_MS
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
                raise ApiError(400, "Give cohorts or since, not both", field="cohorts")
            since_ms = period_start(self.since, self.granularity)
            if since_ms >= until_ms:
                raise ApiError(400, "since must be before until", field="since")
            if until_ms - since_ms > MAX_COHORTS * size:
                raise ApiError(400, f"At most {MAX_COHORTS} cohorts", field="since")
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


_VISITORS: Final = """
WITH members AS (
    SELECT anonymous_id AS actor, MIN(ts_ms) AS first_ms FROM events
    WHERE gateway_id = ? AND anonymous_id IS NOT NULL AND ts_ms < ?{member_source}
    GROUP BY anonymous_id HAVING MIN(ts_ms) >= ?
)
SELECT (m.first_ms - ?) / ?, -1, COUNT(*) FROM members m GROUP BY 1
UNION ALL
SELECT (m.first_ms - ?) / ?, (e.ts_ms - ?) / ? - (m.first_ms - ?) / ?, COUNT(DISTINCT m.actor)
FROM members m JOIN events e ON e.gateway_id = ? AND e.anonymous_id = m.actor AND e.ts_ms >= ? AND e.ts_ms < ?{filters}
GROUP BY 1, 2
"""
"""Per (cohort, offset): visitors retained; offset -1 carries the cohort's size."""

_SESSIONS: Final = """
WITH members AS (
    SELECT id AS actor, started_at_ms AS first_ms FROM mcp_sessions
    WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ?
)
SELECT (m.first_ms - ?) / ?, -1, COUNT(*) FROM members m GROUP BY 1
UNION ALL
SELECT (m.first_ms - ?) / ?, (e.ts_ms - ?) / ? - (m.first_ms - ?) / ?, COUNT(DISTINCT m.actor)
FROM members m JOIN events e ON e.gateway_id = ? AND e.session_id = m.actor AND e.ts_ms >= ? AND e.ts_ms < ?
    AND e.source = 'mcp'{filters}
GROUP BY 1, 2
"""


async def _cohort_counts(asked: Asked, args: RetentionArgs, window: TimeWindow) -> Counter[tuple[int, int]]:
    """(cohort index, offset) -> actors; offset -1 is the cohort's size."""
    size = DAY_MS if args.granularity == "day" else WEEK_MS
    since, until = window.since_ms, window.until_ms
    event_filter = " AND e.name = ?" if args.event else ""
    event_params: list[object] = [args.event] if args.event else []
    periods = [since, size, since, size, since, size, since, size]
    counts: Counter[tuple[int, int]] = Counter()
    if args.source != "mcp":
        member_source = " AND source = ?" if args.source else ""
        source_filter = " AND e.source = ?" if args.source else ""
        source_params: list[object] = [args.source] if args.source else []
        rows = await asked.store.fetch(
            _VISITORS.format(member_source=member_source, filters=event_filter + source_filter),
            [asked.gateway_id, until, *source_params, since, *periods, asked.gateway_id, since, until]
            + event_params
            + source_params,
        )
        counts.update({(int(c), int(k)): int(n) for c, k, n in rows})
    if args.source in (None, "mcp"):
        rows = await asked.store.fetch(
            _SESSIONS.format(filters=event_filter),
            [asked.gateway_id, since, until, *periods, asked.gateway_id, since, until, *event_params],
        )
        counts.update({(int(c), int(k)): int(n) for c, k, n in rows})
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
