"""Latency of every analytics question on a generated data set in SQLite, beside the same question as a raw
columnar scan in DuckDB.

    .venv/bin/python bench/analytics_questions.py                     # 1,000,000 events
    .venv/bin/python bench/analytics_questions.py --events 10000000   # the big run (long generation)
    .venv/bin/python bench/analytics_questions.py --quick             # 100,000 events, a smoke run
    .venv/bin/python bench/analytics_questions.py --runs 15 --data-dir /dev/shm/bench-data
    .venv/bin/python bench/analytics_questions.py --postgres postgresql://user@host/empty_db   # PostgreSQL

With `--postgres URL` the questions run on `PostgresStore` instead: a database with no gateway yet is first
filled from the data set by `mcp-gateway migrate-db`'s copy (timed and printed), one already filled with the
same data set is used as it is. The columns then say PostgreSQL where they say SQLite.

The data set (`analytics_data.py`: web visits and MCP sessions over 30 days for gateway `demo`, and ~1%
of it for a second gateway `other`) is written through the store's real write path, so the writer's
rollups are what production keeps, and cached under `--data-dir` (default `.bench-data/`); DuckDB gets
a copy of the same `events`, `mcp_sessions` and `leads` tables, outside the timed part.

Every question registered in `mcp_gateway.analytics.QUESTIONS` (or those `--only` names) is asked of
`demo` over the whole 30 days (`since`/`until`; `/live` looks at the data's last minutes), with the
arguments in `SPECS` (or the window alone for a question `SPECS` does not know yet): its answer function
runs as the REST route runs it (`question.answer(Asked(store, gateway, now), args)` on a `SQLiteStore`
over the cached file), one warm-up then `--runs` timed runs (fewer when they would take over
`SLOW_BUDGET_S`; an answer taking over `--timeout` is interrupted and reported), median and p95 (nearest
rank: of 7 runs, the slowest). The DuckDB side runs the SQL in `SPECS` (what a columnar engine must scan
without rollups) the same way, on a read-only connection with DuckDB's default threads. The table shows
both, their ratio, whether `/dashboard` asks the question (the goal is set for those; every
question is held to it here), and whether the question meets its goal: p95 under 100 ms for a dashboard question,
under 500 ms for funnels and retention, and a median below DuckDB's. Then a few answers are checked
against DuckDB's (calls, errors and latency percentiles per tool within the histogram's stated error;
totals of /stats and /analytics/overview; users per funnel step), and questions in `SPECS` that are not
registered yet are listed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
from _common import fmt, percentile_ms, positive, table
from analytics_data import DAY_MS, FUNNEL, OTHER_GATEWAY_ID, PAGE_VIEW, Dataset, cached_dataset, duckdb_connect
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from mcp_gateway.analytics import QUESTIONS, Asked, Question
from mcp_gateway.gateways import DEMO_GATEWAY_ID
from mcp_gateway.store import PostgresStore, SQLiteStore, Store, histogram, sketch
from mcp_gateway.store.transfer import copy_sqlite_to_postgres

DEFAULT_EVENTS: Final = 1_000_000
QUICK_EVENTS: Final = 100_000
DEFAULT_RUNS: Final = 7
DASHBOARD_GOAL_MS: Final = 100.0
HEAVY_GOAL_MS: Final = 500.0
"""Funnels and retention."""
LIVE_WINDOW_MS: Final = 5 * 60_000
LIVE_SERIES_MS: Final = 30 * 60_000
CONVERSION_WINDOW_MS: Final = 24 * 3_600_000
DASHBOARD_QUESTIONS: Final = frozenset(
    {
        "/analytics/overview",
        "/stats",
        "/analytics/clients",
        "/analytics/tools",
        "/analytics/mcp/sessions",
        "/analytics/mcp/sessions/{session_id}",
        "/analytics/leads",
        "/analytics/pages/top",
        "/analytics/sources",
        "POST /funnel",
        "/events",
    }
)
"""The questions `/dashboard` asks (`mcp_gateway/dashboard/page.py`): the issue's goal is theirs."""
SLOW_BUDGET_S: Final = 20.0
"""Timed runs of one question on one engine stop at about this long (never fewer than 2)."""

Json = Any
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Facts:
    """What the arguments of a question may need: the window and ids that exist in the data."""

    now_ms: int
    since_ms: int
    lead_id: str
    booked_session_id: str

    @property
    def window(self) -> dict[str, Any]:
        return {"since": self.since_ms, "until": self.now_ms}

    def duckdb_params(self) -> dict[str, Any]:
        return {
            "g": DEMO_GATEWAY_ID,
            "since": self.since_ms,
            "until": self.now_ms,
            "prev": 2 * self.since_ms - self.now_ms,
            "live": self.now_ms - LIVE_WINDOW_MS,
            "week": self.now_ms - 8 * DAY_MS,
            "series": self.now_ms - LIVE_SERIES_MS,
            "lead": self.lead_id,
            "session": self.booked_session_id,
        }


Check = Callable[[Json, list[Rows]], list[str]]
"""(the SQLite answer as JSON, DuckDB's rows per statement) -> what disagrees (empty: agreed)."""


@dataclass(frozen=True, slots=True)
class Spec:
    """How to ask one question: its arguments and the DuckDB statements that answer it from raw rows."""

    method: str
    path: str
    args: Callable[[Facts], dict[str, Any]]
    duckdb: tuple[str, ...] = ()
    heavy: bool = False
    check: Check | None = None

    @property
    def goal_ms(self) -> float:
        return HEAVY_GOAL_MS if self.heavy else DASHBOARD_GOAL_MS


def windowed(**extra: Any) -> Callable[[Facts], dict[str, Any]]:
    return lambda facts: {**facts.window, **extra}


# --------------------------------------------------------------------------------------------------
# The raw-scan SQL. $g gateway, [$since, $until) the window, [$prev, $since) the one before it,
# $live / $series the starts of the last 5 / 30 minutes.
# --------------------------------------------------------------------------------------------------

WINDOW: Final = "gateway_id = $g AND ts_ms >= $since AND ts_ms < $until"
ACTOR: Final = "coalesce(anonymous_id, session_id)"
DAY: Final = f"(ts_ms - ts_ms % {DAY_MS})"

TOOLS_SQL: Final = f"""
SELECT primitive_type, name, count(*) AS calls, count(*) FILTER (WHERE success = 0) AS errors, avg(latency_ms),
       quantile_disc(latency_ms, 0.5), quantile_disc(latency_ms, 0.95), quantile_disc(latency_ms, 0.99), max(latency_ms)
FROM events WHERE {WINDOW} AND source = 'mcp' AND operation = 'call'
GROUP BY ALL ORDER BY calls DESC"""

OVERVIEW_SQL: Final = f"""
SELECT count(*), count(DISTINCT session_id) FILTER (WHERE source = 'web'), count(DISTINCT anonymous_id),
       count(*) FILTER (WHERE name = '{PAGE_VIEW}'), count(DISTINCT session_id) FILTER (WHERE source = 'mcp'),
       count(*) FILTER (WHERE source = 'mcp' AND operation = 'call'), avg(1 - success) FILTER (WHERE source = 'mcp'),
       avg(CAST(json_extract_string(properties, '$.engagement_score') AS DOUBLE)) FILTER (WHERE name = '$session_end')
FROM events WHERE {WINDOW}"""
LEADS_COUNT_SQL: Final = (
    "SELECT count(*) FROM leads WHERE gateway_id = $g AND created_at_ms >= $since AND created_at_ms < $until"
)

SESSIONS_DAILY_SQL: Final = f"""
SELECT {DAY} AS day, count(DISTINCT session_id), count(DISTINCT anonymous_id)
FROM events WHERE {WINDOW} AND source = 'web' GROUP BY day ORDER BY day"""

CLIENTS_SQL: Final = """
SELECT s.client_config, count(DISTINCT s.id), count(e.id) AS calls, count(e.id) FILTER (WHERE e.success = 0),
       avg(e.latency_ms)
FROM events e JOIN mcp_sessions s ON s.gateway_id = e.gateway_id AND s.id = e.session_id
WHERE e.gateway_id = $g AND e.ts_ms >= $since AND e.ts_ms < $until AND e.source = 'mcp' AND e.operation = 'call'
GROUP BY 1 ORDER BY calls DESC"""

MCP_SESSIONS_SQL: Final = """
SELECT s.id, s.client_config, s.transport, s.started_at_ms, max(e.ts_ms), count(e.id),
       count(e.id) FILTER (WHERE e.success = 0), bool_or(e.name = 'book_demo' AND e.success = 1)
FROM mcp_sessions s LEFT JOIN events e ON e.gateway_id = s.gateway_id AND e.session_id = s.id AND e.source = 'mcp'
WHERE s.gateway_id = $g AND s.started_at_ms >= $since AND s.started_at_ms < $until
GROUP BY ALL ORDER BY s.started_at_ms DESC LIMIT 50"""

LEADS_SQL: Final = """
SELECT l.*, json_extract_string(e.properties, '$.project'), json_extract_string(e.properties, '$.form_source')
FROM leads l LEFT JOIN events e ON e.gateway_id = l.gateway_id AND e.id = 'lead_' || l.id
WHERE l.gateway_id = $g AND l.created_at_ms >= $since AND l.created_at_ms < $until
ORDER BY l.created_at_ms DESC LIMIT 50"""

PAGES_TOP_SQL: Final = f"""
SELECT path, count(*) AS views, count(DISTINCT anonymous_id) FROM events
WHERE {WINDOW} AND name = '{PAGE_VIEW}' GROUP BY path ORDER BY views DESC LIMIT 10"""

SOURCES_SQL: Final = f"""
SELECT traffic_source, traffic_medium, count(DISTINCT session_id) AS sessions, count(DISTINCT anonymous_id), count(*)
FROM events WHERE {WINDOW} AND source = 'web' GROUP BY ALL ORDER BY sessions DESC"""

GEO_SQL: Final = f"""
SELECT coalesce(country, 'unknown'), count(*), count(DISTINCT anonymous_id), count(DISTINCT session_id)
FROM events WHERE {WINDOW} AND source = 'web' GROUP BY 1 ORDER BY 2 DESC"""

ENGAGEMENT_SQL: Final = f"""
SELECT least(4, floor(CAST(json_extract_string(properties, '$.engagement_score') AS DOUBLE) / 20)) AS bucket, count(*)
FROM events WHERE {WINDOW} AND name = '$session_end' GROUP BY bucket ORDER BY bucket"""

STATS_SQL: Final = (
    """SELECT count(*) FILTER (WHERE ts_ms >= $since), count(DISTINCT anonymous_id) FILTER (WHERE ts_ms >= $since),
       count(DISTINCT session_id) FILTER (WHERE ts_ms >= $since), count(*) FILTER (WHERE ts_ms < $since),
       count(DISTINCT anonymous_id) FILTER (WHERE ts_ms < $since),
       count(DISTINCT session_id) FILTER (WHERE ts_ms < $since)
FROM events WHERE gateway_id = $g AND ts_ms >= $prev AND ts_ms < $until""",
    f"SELECT name, count(*) AS n FROM events WHERE {WINDOW} GROUP BY name ORDER BY n DESC LIMIT 20",
    f"SELECT {DAY} AS day, count(*), count(DISTINCT anonymous_id) FROM events WHERE {WINDOW} GROUP BY day ORDER BY day",
)

INSIGHTS_SQL: Final = (
    f"""WITH s AS (
    SELECT ts_ms >= $since AS current, session_id, count(*) FILTER (WHERE name = '{PAGE_VIEW}') AS pages,
           max(ts_ms) - min(ts_ms) AS duration
    FROM events WHERE gateway_id = $g AND ts_ms >= $prev AND ts_ms < $until AND source = 'web'
      AND session_id IS NOT NULL GROUP BY ALL)
SELECT current, count(*), avg(CASE WHEN pages = 1 THEN 1 ELSE 0 END), avg(duration) FROM s GROUP BY current""",
    """SELECT ts_ms >= $since AS current, count(*), count(DISTINCT anonymous_id),
       count(*) FILTER (WHERE source = 'mcp' AND operation = 'call'), avg(1 - success) FILTER (WHERE source = 'mcp')
FROM events WHERE gateway_id = $g AND ts_ms >= $prev AND ts_ms < $until GROUP BY current""",
)

LIVE_SQL: Final = (
    """SELECT count(DISTINCT session_id), count(DISTINCT anonymous_id), count(*)
FROM events WHERE gateway_id = $g AND ts_ms >= $live AND ts_ms < $until""",
    """SELECT ts_ms - ts_ms % 60000 AS minute, count(*) FROM events
WHERE gateway_id = $g AND ts_ms >= $series AND ts_ms < $until GROUP BY minute ORDER BY minute""",
    f"""SELECT coalesce(path, name), count(*) AS n FROM events
WHERE gateway_id = $g AND ts_ms >= $live AND ts_ms < $until AND (name = '{PAGE_VIEW}' OR source = 'mcp')
GROUP BY 1 ORDER BY n DESC LIMIT 10""",
)

FUNNEL_SQL: Final = f"""
WITH e AS (SELECT {ACTOR} AS actor, name, ts_ms FROM events
           WHERE {WINDOW} AND name IN ('{FUNNEL[0]}', '{FUNNEL[1]}', '{FUNNEL[2]}')),
first AS (SELECT actor, ts_ms FROM e WHERE name = '{FUNNEL[0]}'),
second AS (SELECT actor, ts_ms FROM e WHERE name = '{FUNNEL[1]}'),
third AS (SELECT actor, ts_ms FROM e WHERE name = '{FUNNEL[2]}'),
reached2 AS (SELECT s.actor, s.ts_ms AS t2, f.ts_ms AS t1 FROM second s
             ASOF JOIN first f ON s.actor = f.actor AND s.ts_ms >= f.ts_ms
             WHERE s.ts_ms - f.ts_ms <= {CONVERSION_WINDOW_MS}),
reached3 AS (SELECT r.actor FROM reached2 r ASOF JOIN third t ON r.actor = t.actor AND t.ts_ms >= r.t2
             WHERE t.ts_ms <= r.t1 + {CONVERSION_WINDOW_MS})
SELECT (SELECT count(DISTINCT actor) FROM first), (SELECT count(DISTINCT actor) FROM reached2),
       (SELECT count(DISTINCT actor) FROM reached3)"""
"""Users at each step: an actor's step-2 event counts after their latest step-1 event before it (at most
24 h before), and step 3 after that step 2 and within 24 h of that step 1 (the best start for them)."""

RETENTION_SQL: Final = f"""
WITH active AS (SELECT DISTINCT {ACTOR} AS actor, {DAY} AS day FROM events WHERE {WINDOW}),
cohort AS (SELECT actor, min(day) AS first_day FROM active GROUP BY actor)
SELECT c.first_day, (a.day - c.first_day) // {DAY_MS} AS offset, count(*)
FROM active a JOIN cohort c USING (actor) GROUP BY ALL ORDER BY ALL"""

EVENTS_SQL: Final = f"SELECT * FROM events WHERE {WINDOW} ORDER BY ts_ms DESC LIMIT 100"

SESSIONS_SQL: Final = f"""
SELECT session_id, min(ts_ms) AS started, max(ts_ms), count(*), count(*) FILTER (WHERE name = '{PAGE_VIEW}'),
       arg_min(path, ts_ms)
FROM events WHERE {WINDOW} AND source = 'web' AND session_id IS NOT NULL
GROUP BY session_id ORDER BY started DESC LIMIT 100"""

SESSION_DISTRIBUTION_SQL: Final = f"""
WITH s AS (SELECT max(ts_ms) - min(ts_ms) AS duration FROM events
           WHERE {WINDOW} AND source = 'web' AND session_id IS NOT NULL GROUP BY session_id)
SELECT CASE WHEN duration < 10000 THEN 0 WHEN duration < 30000 THEN 1 WHEN duration < 60000 THEN 2
            WHEN duration < 180000 THEN 3 WHEN duration < 600000 THEN 4 WHEN duration < 1800000 THEN 5 ELSE 6 END AS b,
       count(*), median(duration)
FROM s GROUP BY b ORDER BY b"""

PAGES_SQL: Final = f"""
WITH v AS (SELECT session_id, path, ts_ms,
                  row_number() OVER (PARTITION BY session_id ORDER BY ts_ms) AS first_rank,
                  row_number() OVER (PARTITION BY session_id ORDER BY ts_ms DESC) AS last_rank,
                  count(*) OVER (PARTITION BY session_id) AS pages
           FROM events WHERE {WINDOW} AND name = '{PAGE_VIEW}' AND session_id IS NOT NULL)
SELECT path, count(*) AS views, count(*) FILTER (WHERE first_rank = 1), count(*) FILTER (WHERE last_rank = 1),
       count(*) FILTER (WHERE pages = 1)
FROM v GROUP BY path ORDER BY views DESC LIMIT 50"""

HEATMAP_SQL: Final = f"""
SELECT ((ts_ms // {DAY_MS}) + 4) % 7 AS day, (ts_ms % {DAY_MS}) // 3600000 AS hour, count(*),
       count(DISTINCT {ACTOR})
FROM events WHERE {WINDOW} GROUP BY ALL ORDER BY ALL"""

BREAKDOWN_SQL: Final = f"""
SELECT referrer, count(*) AS n, count(DISTINCT anonymous_id) FROM events
WHERE {WINDOW} AND name = '{PAGE_VIEW}' GROUP BY referrer ORDER BY n DESC LIMIT 20"""

PROPERTIES_SQL: Final = f"""
SELECT name, count(*) AS n, list_distinct(flatten(list(json_keys(properties)))) FROM events
WHERE {WINDOW} GROUP BY name ORDER BY n DESC"""

QUERY_SQL: Final = f"""
SELECT {DAY} AS day, traffic_source, count(*), count(DISTINCT anonymous_id) FROM events
WHERE {WINDOW} GROUP BY ALL ORDER BY ALL"""

LEAD_DETAIL_SQL: Final = (
    "SELECT * FROM leads WHERE gateway_id = $g AND id = $lead",
    """SELECT e.* FROM events e JOIN events l ON l.gateway_id = e.gateway_id AND l.session_id = e.session_id
WHERE l.gateway_id = $g AND l.id = 'lead_' || $lead ORDER BY e.ts_ms""",
)

MCP_SESSION_SQL: Final = (
    "SELECT * FROM mcp_sessions WHERE gateway_id = $g AND id = $session",
    "SELECT * FROM events WHERE gateway_id = $g AND session_id = $session ORDER BY ts_ms",
)

CONVERSIONS_SQL: Final = """
SELECT s.client_config, count(DISTINCT s.id), count(DISTINCT e.session_id)
FROM mcp_sessions s LEFT JOIN events e ON e.gateway_id = s.gateway_id AND e.session_id = s.id
     AND e.name = 'book_demo' AND e.success = 1 AND e.source = 'mcp'
WHERE s.gateway_id = $g AND s.started_at_ms >= $since AND s.started_at_ms < $until GROUP BY 1"""

ANOMALIES_SQL: Final = """
SELECT ($until - 1 - ts_ms) // 86400000 AS days_ago, count(*), count(DISTINCT anonymous_id),
       count(*) FILTER (WHERE name = '$lead'), count(*) FILTER (WHERE source = 'mcp' AND success = 0),
       quantile_disc(latency_ms, 0.95) FILTER (WHERE source = 'mcp')
FROM events WHERE gateway_id = $g AND ts_ms >= $week AND ts_ms < $until GROUP BY days_ago ORDER BY days_ago"""
"""The last 24 hours and the 7 days before them, by day: events, visitors, leads, MCP errors, MCP p95."""

DISTINCT_PROJECTS_SQL: Final = """
SELECT DISTINCT json_extract_string(properties, '$.project') FROM events
WHERE gateway_id = $g AND name = '$lead'"""


# --------------------------------------------------------------------------------------------------
# Checks: the SQLite answer against DuckDB's rows.
# --------------------------------------------------------------------------------------------------


def check_tools(answer: Json, results: list[Rows]) -> list[str]:
    """Calls and errors per primitive equal; p50/p95/p99 within the histogram's stated relative error."""
    problems = []
    exact = {(row[0], row[1]): row for row in results[0]}
    got = {(p["primitive_type"], p["name"]): p for p in answer["primitives"]}
    if set(exact) != set(got):
        problems.append(f"primitives differ: only DuckDB {set(exact) - set(got)}, only SQLite {set(got) - set(exact)}")
    tolerance = histogram.RELATIVE_ERROR + 1e-3  # quantile_disc and the nearest rank may pick neighbouring samples
    for key in set(exact) & set(got):
        row, stats = exact[key], got[key]
        if (stats["calls"], stats["errors"]) != (row[2], row[3]):
            problems.append(f"{key}: calls/errors {stats['calls']}/{stats['errors']} != {row[2]}/{row[3]}")
        for name, value in (("p50_ms", row[5]), ("p95_ms", row[6]), ("p99_ms", row[7])):
            if abs(stats[name] - value) > tolerance * value:
                problems.append(f"{key}: {name} {stats[name]:.2f} vs exact {value:.2f}")
    return problems


ESTIMATED: Final = frozenset({"unique_users", "unique_visitors", "sessions", "total_sessions"})
"""Distinct counts that big windows estimate from HyperLogLog sketches: equal within 4 standard errors."""


def same_fields(answer: Json, results: list[Rows], fields: dict[str, tuple[int, int]]) -> list[str]:
    """`answer[name]` equals DuckDB's first row of statement i, column j, for each name: (i, j); distinct
    counts (`ESTIMATED`) within 4 of the sketches' standard errors."""
    problems = []
    for name, (i, j) in fields.items():
        got, expected = answer[name], results[i][0][j]
        tolerance = 4 * sketch.STANDARD_ERROR * expected if name in ESTIMATED else 0
        if abs(got - expected) > tolerance:
            problems.append(f"{name} {got} != DuckDB's {expected}")
        elif got != expected:
            problems.append(f"{name} {got} vs DuckDB's {expected}: {got / expected - 1:+.2%}, within the estimate")
    return problems


def check_overview(answer: Json, results: list[Rows]) -> list[str]:
    """Events, web sessions, visitors, page views and leads equal (distinct counts within the estimate)."""
    fields = {"events": (0, 0), "sessions": (0, 1), "unique_visitors": (0, 2), "page_views": (0, 3), "leads": (1, 0)}
    return same_fields(answer, results, fields)


def check_stats(answer: Json, results: list[Rows]) -> list[str]:
    """Total events, users (visitors) and sessions of the window equal (distinct counts within the estimate)."""
    return same_fields(answer, results, {"total_events": (0, 0), "unique_users": (0, 1), "total_sessions": (0, 2)})


def check_funnel(answer: Json, results: list[Rows]) -> list[str]:
    """Users at each step equal; step 1, which a big window estimates from sketches, within 4 standard errors."""
    expected = list(results[0][0])
    steps = answer.get("steps", []) if isinstance(answer, dict) else []
    got = [step.get("users") for step in steps]
    if len(got) != len(expected) or got[1:] != expected[1:]:
        return [f"users per step {got} != DuckDB's {expected}"]
    if abs(got[0] - expected[0]) > 4 * sketch.STANDARD_ERROR * expected[0]:
        return [f"step 1 users {got[0]} != DuckDB's {expected[0]}"]
    if got[0] != expected[0]:
        return [
            f"step 1 users {got[0]} vs DuckDB's {expected[0]}: {got[0] / expected[0] - 1:+.2%}, within the estimate"
        ]
    return []


# --------------------------------------------------------------------------------------------------
# The questions.
# --------------------------------------------------------------------------------------------------

SPECS: Final = (
    Spec("GET", "/analytics/tools", windowed(), (TOOLS_SQL,), check=check_tools),
    Spec("GET", "/analytics/overview", windowed(), (OVERVIEW_SQL, LEADS_COUNT_SQL), check=check_overview),
    Spec("GET", "/analytics/sessions/daily", windowed(), (SESSIONS_DAILY_SQL,)),
    Spec("GET", "/analytics/clients", windowed(), (CLIENTS_SQL,)),
    Spec("GET", "/analytics/mcp/sessions", windowed(limit=50), (MCP_SESSIONS_SQL,)),
    Spec("GET", "/analytics/leads", windowed(limit=50), (LEADS_COUNT_SQL, LEADS_SQL)),
    Spec("GET", "/analytics/pages/top", windowed(limit=10), (PAGES_TOP_SQL,)),
    Spec("GET", "/analytics/sources", windowed(), (SOURCES_SQL,)),
    Spec("GET", "/stats", windowed(groupBy="day"), STATS_SQL, check=check_stats),
    Spec("GET", "/insights", windowed(), INSIGHTS_SQL),
    Spec("GET", "/live", lambda facts: {}, LIVE_SQL),
    Spec(
        "POST",
        "/funnel",
        windowed(steps=list(FUNNEL), conversion_window_hours=24),
        (FUNNEL_SQL,),
        heavy=True,
        check=check_funnel,
    ),
    Spec("GET", "/retention", windowed(granularity="day"), (RETENTION_SQL,), heavy=True),
    Spec("GET", "/analytics/anomalies", lambda facts: {"until": facts.now_ms}, (ANOMALIES_SQL,)),
    Spec("GET", "/analytics/geo", windowed(), (GEO_SQL,)),
    Spec("GET", "/analytics/engagement", windowed(), (ENGAGEMENT_SQL,)),
    Spec("GET", "/analytics/realtime", lambda facts: {}, LIVE_SQL),
    Spec("GET", "/analytics/leads/{lead_id}", lambda facts: {"lead_id": facts.lead_id}, LEAD_DETAIL_SQL),
    Spec("GET", "/analytics/leads/projects", windowed(), (DISTINCT_PROJECTS_SQL,)),
    Spec(
        "GET",
        "/analytics/mcp/sessions/{session_id}",
        lambda facts: {"session_id": facts.booked_session_id},
        MCP_SESSION_SQL,
    ),
    Spec("GET", "/analytics/mcp/conversions", windowed(), (CONVERSIONS_SQL,)),
    Spec("GET", "/events", windowed(limit=100), (EVENTS_SQL,)),
    Spec(
        "POST",
        "/query",
        windowed(metrics=["event_count", "unique_users"], group_by=["day", "traffic_source"]),
        (QUERY_SQL,),
    ),
    Spec("GET", "/properties", windowed(), (PROPERTIES_SQL,)),
    Spec("GET", "/breakdown", windowed(property="referrer", event=PAGE_VIEW, limit=20), (BREAKDOWN_SQL,)),
    Spec("GET", "/sessions", windowed(limit=100), (SESSIONS_SQL,)),
    Spec("GET", "/sessions/distribution", windowed(), (SESSION_DISTRIBUTION_SQL,)),
    Spec("GET", "/pages", windowed(), (PAGES_SQL,)),
    Spec("GET", "/heatmap", windowed(), (HEATMAP_SQL,)),
)


# --------------------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Measured:
    label: str
    goal_ms: float
    sqlite_s: list[float] = field(default_factory=list)
    duckdb_s: list[float] = field(default_factory=list)
    answer: Json = None
    duckdb_rows: list[Rows] = field(default_factory=list)
    checked: bool = False
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    def median_ms(self, samples: Sequence[float]) -> float | None:
        return statistics.median(samples) * 1000 if samples else None

    def p95_ms(self, samples: Sequence[float]) -> float | None:
        return percentile_ms(samples, 0.95) if samples else None


def affordable_runs(warmup_s: float, runs: int) -> int:
    """`runs`, or fewer (at least 2) for a question so slow that they would take over `SLOW_BUDGET_S`."""
    return max(2, min(runs, int(SLOW_BUDGET_S / max(warmup_s, 1e-9))))


async def answer_within(question: Question[Any], asked: Asked, args: Any, timeout_s: float) -> Any:
    """The question's answer; TimeoutError after `timeout_s`, its SQL interrupted (it runs on a reader thread)."""
    try:
        return await asyncio.wait_for(question.answer(asked, args), timeout_s)
    except TimeoutError:
        store = asked.store
        if isinstance(store, SQLiteStore):
            for connection in store._all_readers:  # the store offers no cancel; a bench may reach in
                connection.interrupt()
        raise TimeoutError(f"no answer within {timeout_s:.0f} s") from None


async def time_answer(
    question: Question[Any], asked: Asked, args: Any, runs: int, timeout_s: float
) -> tuple[list[float], Json]:
    """One warm-up, then `runs` timed calls of the answer function; the times and the answer as JSON."""
    started = time.perf_counter()
    answer = await answer_within(question, asked, args, timeout_s)
    times = []
    for _ in range(affordable_runs(time.perf_counter() - started, runs)):
        started = time.perf_counter()
        await answer_within(question, asked, args, timeout_s)
        times.append(time.perf_counter() - started)
    return times, to_jsonable_python(answer)


def time_duckdb(
    connection: duckdb.DuckDBPyConnection, statements: Sequence[str], params: dict[str, Any], runs: int
) -> tuple[list[float], list[Rows]]:
    """One warm-up, then `runs` timed runs of all the statements; the times and the warm-up's rows."""

    def run() -> list[Rows]:
        out = []
        for sql in statements:
            names = set(re.findall(r"\$([a-z]+)", re.sub(r"'[^']*'", "", sql)))  # not '$session_end'
            out.append(connection.execute(sql, {k: v for k, v in params.items() if k in names}).fetchall())
        return out

    started = time.perf_counter()
    rows = run()
    times = []
    for _ in range(affordable_runs(time.perf_counter() - started, runs)):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times, rows


def facts_of(dataset: Dataset) -> Facts:
    conn = sqlite3.connect(f"file:{dataset.sqlite_path}?mode=ro", uri=True)
    try:
        lead = conn.execute(
            "SELECT id FROM leads WHERE gateway_id = ? AND source = 'web' ORDER BY created_at_ms DESC LIMIT 1",
            (DEMO_GATEWAY_ID,),
        ).fetchone()
        session = conn.execute(
            "SELECT session_id FROM events WHERE gateway_id = ? AND source = 'mcp' AND primitive_type = 'tool'"
            " AND name = 'book_demo' ORDER BY ts_ms DESC LIMIT 1",
            (DEMO_GATEWAY_ID,),
        ).fetchone()
    finally:
        conn.close()
    return Facts(
        now_ms=dataset.now_ms,
        since_ms=dataset.now_ms - 30 * DAY_MS,
        lead_id=str(lead[0]) if lead else "none",
        booked_session_id=str(session[0]) if session else "none",
    )


def question_args(question: Question[Any], values: dict[str, Any]) -> Any:
    try:
        return question.args.model_validate(values)
    except ValidationError as exc:
        raise ValueError(f"arguments {values} rejected: {exc.errors()[0]['msg']} ({exc.errors()[0]['loc']})") from None


async def measure_one(
    row: Measured,
    question: Question[Any],
    spec: Spec | None,
    *,
    facts: Facts,
    asked: Asked,
    connection: duckdb.DuckDBPyConnection,
    runs: int,
    timeout_s: float,
) -> None:
    """Time one question on both engines into `row`, and check its answer where `spec` says how."""
    try:
        args = question_args(question, spec.args(facts) if spec else facts.window)
        row.sqlite_s, row.answer = await time_answer(question, asked, args, runs, timeout_s)
    except Exception as exc:  # a question being written may fail: report it, ask the others
        row.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    if spec is None or not spec.duckdb:
        return
    row.duckdb_s, row.duckdb_rows = time_duckdb(connection, spec.duckdb, facts.duckdb_params(), runs)
    if spec.check is not None and row.error is None:
        row.checked = True
        try:
            row.problems = spec.check(row.answer, row.duckdb_rows)
        except (KeyError, TypeError, IndexError) as exc:
            row.problems = [f"answer shape not as the check expects: {type(exc).__name__} {exc}"]


async def measure(
    dataset: Dataset, runs: int, timeout_s: float, only: Sequence[str] = (), database_url: str | None = None
) -> tuple[list[Measured], list[str]]:
    """Every registered question (or those whose path is in `only`), timed on both engines; notes about
    what was left out."""
    facts = facts_of(dataset)
    specs = {(spec.method, spec.path): spec for spec in SPECS if not only or spec.path in only}
    registered = {(q.method, q.path): q for q in QUESTIONS if not only or q.path in only}
    notes = [f"not registered yet: {m} {p}" for (m, p) in specs if (m, p) not in registered]
    notes += [
        f"no DuckDB reference (not in SPECS): {m} {p}, asked with the window only"
        for m, p in registered.keys() - specs.keys()
    ]
    store: Store = SQLiteStore(dataset.sqlite_path)
    if database_url is not None:
        await fill_postgres(dataset, database_url)
        store = PostgresStore(database_url)
    await store.open()  # applies migrations newer than the data set (e.g. a new index) before anything is timed
    connection = duckdb_connect(dataset.duckdb_path, read_only=True)
    measured: list[Measured] = []
    try:
        asked = Asked(store, DEMO_GATEWAY_ID, facts.now_ms)
        for (method, path), question in registered.items():
            spec = specs.get((method, path))
            row = Measured(f"POST {path}" if method == "POST" else path, spec.goal_ms if spec else DASHBOARD_GOAL_MS)
            measured.append(row)
            await measure_one(
                row, question, spec, facts=facts, asked=asked, connection=connection, runs=runs, timeout_s=timeout_s
            )
            took = fmt(row.median_ms(row.sqlite_s), ",.1f", " ms")
            print(f"  {row.label}: {row.error or took}", file=sys.stderr, flush=True)
    finally:
        connection.close()
        await store.close()
    return measured, notes


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------


BENCH_DATASET_SETTING: Final = "bench_dataset"
"""Which generated data set a PostgreSQL database was filled with (the cached file's name)."""


async def fill_postgres(dataset: Dataset, database_url: str) -> None:
    """Copy the data set into the PostgreSQL database unless it already holds it (`migrate-db`'s copy); refuse a
    database holding anything else."""
    store = PostgresStore(database_url)
    await store.open()
    try:
        holds = await store.get_setting(BENCH_DATASET_SETTING)
        empty = not await store.list_gateways()
    finally:
        await store.close()
    if holds == dataset.sqlite_path.name:
        return
    if not empty:
        raise SystemExit(f"the PostgreSQL database holds {holds or 'other data'}: give an empty database")
    started = time.perf_counter()
    copied = await copy_sqlite_to_postgres(dataset.sqlite_path, database_url)
    seconds = time.perf_counter() - started
    rows = sum(c.rows for c in copied)
    print(f"copied {rows:,} rows into PostgreSQL in {seconds:.0f} s ({rows / seconds:,.0f} rows/s)", file=sys.stderr)
    await store.open()
    try:
        await store.put_setting_if_absent(BENCH_DATASET_SETTING, dataset.sqlite_path.name)
    finally:
        await store.close()


def verdict(row: Measured) -> str:
    p95 = row.p95_ms(row.sqlite_s)
    if p95 is None:
        return "-"
    under = p95 < row.goal_ms
    duck = row.median_ms(row.duckdb_s)
    beats = duck is None or (row.median_ms(row.sqlite_s) or 0) < duck
    return "yes" if under and beats else ("no: slower than DuckDB" if under else "no")


def report(
    dataset: Dataset, measured: list[Measured], notes: list[str], runs: int, engine: str = "SQLite"
) -> list[str]:
    size_mb = dataset.sqlite_bytes / 1e6
    lines = [
        f"data set: {dataset.events:,} events ({dataset.rows.get('events.' + DEMO_GATEWAY_ID, 0):,} of gateway "
        f"{DEMO_GATEWAY_ID}, {dataset.rows.get('events.' + OTHER_GATEWAY_ID, 0):,} of {OTHER_GATEWAY_ID}), "
        f"{dataset.rows.get('mcp_sessions.' + DEMO_GATEWAY_ID, 0):,} MCP sessions, "
        f"{dataset.rows.get('leads.' + DEMO_GATEWAY_ID, 0):,} leads over 30 days",
        f"generated in {dataset.generate_s:.0f} s ({dataset.ingest_rate:,.0f} events/s through capture/capture_web), "
        f"SQLite file {size_mb:,.0f} MB; DuckDB copy loaded in {dataset.duckdb_load_s:.0f} s",
        f"each question: 1 warm-up + {runs} runs; goal p95 < {DASHBOARD_GOAL_MS:.0f} ms "
        f"(funnel/retention {HEAVY_GOAL_MS:.0f} ms) and a median below DuckDB's",
        "",
    ]
    head = ["question", "dashboard", f"{engine} p50 ms", "p95 ms", "DuckDB p50 ms", "p95 ms", f"{engine}/DuckDB"]
    head.append("goal ms")
    head.append("met")
    body = []
    for row in measured:
        sqlite_p50, duck_p50 = row.median_ms(row.sqlite_s), row.median_ms(row.duckdb_s)
        ratio = sqlite_p50 / duck_p50 if sqlite_p50 is not None and duck_p50 else None
        body.append(
            [
                row.label,
                "yes" if row.label in DASHBOARD_QUESTIONS else "",
                fmt(sqlite_p50, ",.1f"),
                fmt(row.p95_ms(row.sqlite_s), ",.1f"),
                fmt(duck_p50, ",.1f"),
                fmt(row.p95_ms(row.duckdb_s), ",.1f"),
                fmt(ratio, ".2f", "x"),
                f"{row.goal_ms:.0f}",
                "error" if row.error else verdict(row),
            ]
        )
    lines += table(head, body, left=2)
    for name, rows in (
        ("dashboard questions", [row for row in measured if row.label in DASHBOARD_QUESTIONS]),
        ("all questions", measured),
    ):
        met = sum(not row.error and verdict(row) == "yes" for row in rows)
        lines.append(f"{name} meeting the goal: {met} of {len(rows)}")
    checked = [row for row in measured if row.checked]
    lines += ["", "answers checked against DuckDB:" if checked else "no answer checked against DuckDB"]
    for row in checked:
        lines.append(f"  {row.label}: " + ("agrees" if not row.problems else "; ".join(row.problems[:5])))
    errors = [f"  {row.label}: {row.error}" for row in measured if row.error]
    if errors:
        lines += ["", "errors:", *errors]
    if notes:
        lines += ["", "notes:", *(f"  {note}" for note in notes)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=positive, default=DEFAULT_EVENTS, help="events to generate (1,000,000)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events: a smoke run")
    parser.add_argument("--runs", type=positive, default=DEFAULT_RUNS, help="timed runs per question (7)")
    parser.add_argument("--timeout", type=positive, default=60, help="seconds one answer may take (60)")
    parser.add_argument("--only", action="append", metavar="PATH", help="ask only this question (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data"), help="cache of generated data sets")
    parser.add_argument("--postgres", metavar="URL", help="ask PostgreSQL (filled from the data set if empty)")
    options = parser.parse_args()
    events = QUICK_EVENTS if options.quick else options.events
    dataset = cached_dataset(options.data_dir, events)
    measured, notes = asyncio.run(
        measure(dataset, options.runs, options.timeout, options.only or (), database_url=options.postgres)
    )
    engine = "PostgreSQL" if options.postgres else "SQLite"
    print("\n".join(report(dataset, measured, notes, options.runs, engine)))


if __name__ == "__main__":
    main()
