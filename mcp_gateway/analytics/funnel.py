"""POST /funnel (seed 002): how many actors went through ordered steps, and where they dropped off.

    {"steps": ["page_view", "signup", {"event": "book_demo", "filters": [...]}], "conversion_window_hours": 24,
     "since": ..., "until": ..., "breakdown": "traffic_source", "source": "web"}
    -> {"steps": [{"step": 1, "event": "page_view", "users": 100, "conversion_rate": 1.0,
                   "overall_conversion_rate": 1.0, "drop_off": 0}, ...], "overall_conversion_rate": 0.12, ...}

The actor is `COALESCE(anonymous_id, session_id)`: the web visitor, else the session (an MCP session
is one agent). An actor reaches step k when they did steps 1..k in that order (each event after the
previous one: by time, equal times in stored order), all inside the window, and each step no later
than `conversion_window_hours` after the step-1 event that started the chain. Every step-1 event may
start a chain; an actor counts with the chain that gets furthest. Rates are 0-1: `conversion_rate`
from the previous step, `overall_conversion_rate` from step 1; `drop_off` is the actors lost since
the previous step.

A step is an event name (any source unless `source` is given), or an object with `filters` on a
column or `properties.<key>` (`eq`/`neq`, compared as text; `value` null tests for absence).

With `breakdown` (a column, or `properties.<key>`), each value gets its own funnel: the chains that
start with a step-1 event carrying that value. An actor whose step-1 events carry several values
counts under each, so the values' users may add up to more than the total.

How it stays fast at a million events: step 1 is usually the busiest event (page views), and an
actor who never did step 2 is done at step 1. So step 1 is counted apart: when it is a plain event
name of any source without a breakdown, from the writer's per-day sketches of each event name's
actors (±1.6%) once that estimate reaches `rollups.EXACT_BELOW`; otherwise in SQL
(`COUNT(DISTINCT actor)` over the covering index `events_by_name`). Steps 2.. come from the same
index (from step 3 on, only for actors who did step 2), and of step 1 only what can start a chain:
per step-2 event, the latest step-1 event before it within the conversion window (one seek on
`events_by_visitor` / `events_by_session` per step-2 event; a later start leaves more of the
conversion window, so it dominates every earlier one). One pass over each actor's few events in
time order then finds the furthest chain: for each step it keeps the latest start of a chain that
has reached it, which makes the walk linear. A pure-SQL version of "the best starting event" needs
a self-join per step, which is quadratic per actor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from ..openapi import name_or_prefixed
from .api import Asked, Question
from .events import BREAKDOWN_COLUMNS, MAX_NAME_CHARS, PROPERTY_PREFIX, Source, event_dimension
from .rollups import EXACT_BELOW, visitors_by
from .sql import HOUR_MS
from .window import Args, TimeWindow, WindowArgs

MIN_STEPS: Final = 2
MAX_STEPS: Final = 10
MAX_FILTERS: Final = 10
DEFAULT_CONVERSION_WINDOW_HOURS: Final = 24
MAX_CONVERSION_WINDOW_HOURS: Final = 720
MAX_BREAKDOWN_VALUES: Final = 20
"""Breakdown values answered, the most step-1 actors first; `breakdown_truncated` says when there were more."""

ACTOR: Final = "COALESCE(anonymous_id, session_id)"

_SOURCE_BRANCHES: Final[dict[str, str]] = {
    "web": "source = 'web' AND primitive_type IS NULL",
    "server": "source = 'server' AND primitive_type IS NULL",
    "mcp": "source = 'mcp' AND primitive_type IN ('tool', 'resource', 'prompt')",
}
"""Each source as the leading columns of `events_by_name` (gateway_id, source, primitive_type, name, ts_ms):
web and server events have no primitive type, MCP calls always have one."""
_ALL_SOURCES: Final = (
    "source IN ('web', 'server') AND primitive_type IS NULL",
    _SOURCE_BRANCHES["mcp"],
)


def _check_property(name: str) -> str:
    if name == PROPERTY_PREFIX:
        raise ValueError("name a property after 'properties.'")
    if not name.startswith(PROPERTY_PREFIX) and name not in BREAKDOWN_COLUMNS:
        raise ValueError(f"must be one of {', '.join(BREAKDOWN_COLUMNS)} or properties.<key>")
    return name


ColumnOrProperty = Annotated[
    str,
    name_or_prefixed(
        BREAKDOWN_COLUMNS,
        PROPERTY_PREFIX,
        max_length=MAX_NAME_CHARS,
        description="A column (" + ", ".join(BREAKDOWN_COLUMNS) + ") or a custom property (`properties.<key>`)",
    ),
]
"""What a step filter or a breakdown names; `_check_property` holds the route to it."""


class StepFilter(Args):
    property: ColumnOrProperty = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="A column (" + ", ".join(BREAKDOWN_COLUMNS) + ") or a custom property (`properties.<key>`)",
    )
    op: Literal["eq", "neq"] = Field("eq", description="eq: equal; neq: different or absent")
    value: str | None = Field(description="Compared as text; null: the property is absent (eq) or present (neq)")

    @field_validator("property")
    @classmethod
    def _known_property(cls, name: str) -> str:
        return _check_property(name)


class FunnelStep(Args):
    event: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="The event name")
    filters: list[StepFilter] = Field(
        default_factory=list, max_length=MAX_FILTERS, description="All must hold for an event to be this step"
    )


def _step_kind(step: object) -> str:
    return "event" if isinstance(step, str) else "step"


StepSpec = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), Tag("event")] | Annotated[FunnelStep, Tag("step")],
    Discriminator(_step_kind),
]
"""An event name, or {event, filters}; a bad one is reported as `steps.<i>.event` or `steps.<i>.step.<field>`."""


class FunnelArgs(WindowArgs):
    steps: list[StepSpec] = Field(
        min_length=MIN_STEPS, max_length=MAX_STEPS, description="Event names (or {event, filters}) in order"
    )
    conversion_window_hours: int = Field(
        DEFAULT_CONVERSION_WINDOW_HOURS,
        ge=1,
        le=MAX_CONVERSION_WINDOW_HOURS,
        description="Longest time from the step-1 event to the last step",
    )
    breakdown: ColumnOrProperty | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="A funnel per value of a column (" + ", ".join(BREAKDOWN_COLUMNS) + ") or `properties.<key>`",
    )
    source: Source | None = Field(None, description="Only events from MCP calls, web pages or servers")

    @field_validator("breakdown")
    @classmethod
    def _known_breakdown(cls, name: str | None) -> str | None:
        return None if name is None else _check_property(name)

    def step_list(self) -> list[FunnelStep]:
        return [FunnelStep(event=step) if isinstance(step, str) else step for step in self.steps]


@dataclass(frozen=True, slots=True)
class StepResult:
    step: int
    event: str
    users: int
    conversion_rate: float
    """From the previous step, 0-1 (step 1: 1.0 when anyone did it)."""
    overall_conversion_rate: float
    """From step 1, 0-1."""
    drop_off: int
    """Actors who reached the previous step but not this one."""


@dataclass(frozen=True, slots=True)
class BreakdownFunnel:
    value: str | None
    """null: step-1 events without the breakdown property."""
    steps: list[StepResult]
    overall_conversion_rate: float


@dataclass(frozen=True, slots=True)
class FunnelAnswer:
    gateway_id: str
    window: dict[str, int]
    conversion_window_hours: int
    steps: list[StepResult]
    overall_conversion_rate: float
    """Actors who reached the last step / actors who did step 1, 0-1."""
    breakdown: str | None
    breakdowns: list[BreakdownFunnel] | None
    breakdown_truncated: bool


# -- SQL ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sql:
    """An SQL fragment and its parameters."""

    text: str
    params: tuple[object, ...] = ()


def _step_condition(asked: Asked, step: FunnelStep) -> _Sql:
    parts = ["name = ?"]
    params: list[object] = [step.event]
    for flt in step.filters:
        expr, expr_params = event_dimension(asked, flt.property)
        if flt.value is None:
            parts.append(f"{expr} IS {'NULL' if flt.op == 'eq' else 'NOT NULL'}")
            params += expr_params
        elif flt.op == "eq":
            parts.append(f"{expr} = ?")
            params += [*expr_params, flt.value]
        else:
            parts.append(f"({expr} IS NULL OR {expr} <> ?)")
            params += [*expr_params, *expr_params, flt.value]
    return _Sql(" AND ".join(parts), tuple(params))


def _step_mask(conditions: Sequence[_Sql]) -> _Sql:
    """An integer whose bit j is set when the event is step j + 1."""
    terms = [f"(CASE WHEN {c.text} THEN {1 << j} ELSE 0 END)" for j, c in enumerate(conditions)]
    return _Sql(" + ".join(terms), tuple(p for c in conditions for p in c.params))


def _branches(source: str | None) -> tuple[str, ...]:
    return _ALL_SOURCES if source is None else (_SOURCE_BRANCHES[source],)


def _step_events(asked: Asked, window: TimeWindow, source: str | None, condition: _Sql, columns: _Sql) -> _Sql:
    """`columns` of one step's events in `window`: one indexed SELECT per source branch, UNION ALL."""
    selects = []
    params: list[object] = []
    for branch in _branches(source):
        selects.append(
            f"SELECT {columns.text} FROM events WHERE gateway_id = ? AND {branch}"
            f" AND ts_ms >= ? AND ts_ms < ? AND {condition.text}"
        )
        params += [*columns.params, asked.gateway_id, window.since_ms, window.until_ms, *condition.params]
    return _Sql(" UNION ALL ".join(selects), tuple(params))


async def _first_step_users(
    asked: Asked, window: TimeWindow, source: str | None, first: _Sql, value: _Sql | None
) -> tuple[int, dict[str | None, int]]:
    """Distinct actors who did step 1: in all, and per breakdown value."""
    columns = _Sql(f"{ACTOR} AS actor, {value.text if value else 'NULL'} AS value", value.params if value else ())
    inner = _step_events(asked, window, source, first, columns)
    if value is None:
        rows = await asked.store.fetch(
            f"SELECT COUNT(DISTINCT actor) FROM ({inner.text}) steps WHERE actor IS NOT NULL", inner.params
        )
        return int(rows[0][0]), {}
    rows = await asked.store.fetch(
        f"WITH steps AS ({inner.text})"
        " SELECT 0, NULL, COUNT(DISTINCT actor) FROM steps WHERE actor IS NOT NULL"
        " UNION ALL SELECT 1, value, COUNT(DISTINCT actor) FROM steps WHERE actor IS NOT NULL GROUP BY value",
        inner.params,
    )
    total = next(int(n) for kind, _, n in rows if kind == 0)
    return total, {None if v is None else str(v): int(n) for kind, v, n in rows if kind == 1}


async def _estimated_first_step_users(asked: Asked, args: FunnelArgs, window: TimeWindow, first: _Sql) -> int | None:
    """Step 1's actors estimated from the writer's per-day sketches of each event name's actors
    (`rollups.visitors_by`, ±1.6%), when step 1 is a plain event name of any source without a breakdown and
    the estimate is at least `EXACT_BELOW`; otherwise None, and they are counted exactly."""
    step = args.step_list()[0]
    if step.filters or args.source is not None or args.breakdown is not None:
        return None

    def edge_rows(piece: TimeWindow) -> tuple[str, Sequence[object]]:
        rows = _step_events(asked, piece, None, first, _Sql(f"name, {ACTOR} AS actor"))
        return f"SELECT DISTINCT name, actor FROM ({rows.text}) steps", rows.params

    estimates = await visitors_by(asked.store, asked.gateway_id, window, "event", [step.event], edge_rows)
    estimate = estimates[step.event]
    return estimate if estimate >= EXACT_BELOW else None


def _later_steps(asked: Asked, window: TimeWindow, source: str | None, conditions: Sequence[_Sql]) -> _Sql:
    """Rows (actor, ts_ms, seq, step index, NULL) of steps 2.. in the window; from step 3 on, only for actors
    who did step 2 (the CTE `second`)."""
    selects = ["SELECT COALESCE(s_visitor, s_session), s_ts, s_seq, 1, NULL FROM second"]
    params: list[object] = []
    for j, condition in enumerate(conditions[2:], start=2):
        inner = _step_events(asked, window, source, condition, _Sql(f"{ACTOR} AS actor, ts_ms, seq"))
        selects.append(
            f"SELECT actor, ts_ms, seq, {j}, NULL FROM ({inner.text}) later"
            " WHERE actor IN (SELECT COALESCE(s_visitor, s_session) FROM second)"
        )
        params += inner.params
    return _Sql(" UNION ALL ".join(selects), tuple(params))


_BY_ACTOR: Final = (
    ("anonymous_id = s_visitor", "s_visitor IS NOT NULL"),
    ("anonymous_id IS NULL AND session_id = s_session", "s_visitor IS NULL AND s_session IS NOT NULL"),
)
"""How a step-2 event's actor finds its own earlier events: the visitor through `events_by_visitor`, else
the session (events without a visitor) through `events_by_session`."""


def _earlier_first_steps(asked: Asked, args: FunnelArgs, actor: str, first: _Sql) -> _Sql:
    """The condition on an event of the actor of a step-2 event (columns s_*) for being a step-1 event
    before it (by time, then stored order), at most the conversion window earlier."""
    source = " AND source = ?" if args.source else ""
    return _Sql(
        f"gateway_id = ? AND {actor} AND ts_ms <= s_ts AND ts_ms >= s_ts - ? AND (ts_ms < s_ts OR seq < s_seq)"
        f" AND {first.text}{source}",
        (
            asked.gateway_id,
            args.conversion_window_hours * HOUR_MS,
            *first.params,
            *((args.source,) if args.source else ()),
        ),
    )


def _chain_starts(asked: Asked, args: FunnelArgs, first: _Sql, value: _Sql | None) -> tuple[_Sql, _Sql]:
    """The step-1 events that can start a chain, as a CTE body (named `starts`, over the CTE `second`) and
    the rows (actor, ts_ms, seq, 0, breakdown value) read from it.

    Per step-2 event, the latest step-1 event before it within the conversion window (with a breakdown:
    every such event, as the latest one of each value is needed). An earlier start is dominated by a
    later one, so the walk over these alone reaches what it would over all step-1 events. Without a
    breakdown this is one seek per step-2 event; the start's time is then read by its rowid, outside the
    lookup (a join on the looked-up `seq` makes SQLite build a Bloom filter over the whole table, and
    a window bound inside it lures SQLite onto `events_by_time`), so the CTE must be MATERIALIZED for
    the lookup to run once."""
    selects = []
    params: list[object] = []
    for actor, has_actor in _BY_ACTOR:
        earlier = _earlier_first_steps(asked, args, actor, first)
        if value is None:
            selects.append(
                f"SELECT COALESCE(s_visitor, s_session) AS actor, (SELECT seq FROM events WHERE {earlier.text}"
                f" ORDER BY ts_ms DESC, seq DESC LIMIT 1) AS start_seq FROM second WHERE {has_actor}"
            )
            params += earlier.params
        else:
            selects.append(
                f"SELECT DISTINCT {ACTOR} AS actor, ts_ms, seq, {value.text} AS value"
                f" FROM second JOIN events ON {earlier.text} WHERE {has_actor}"
            )
            params += [*value.params, *earlier.params]
    if value is None:
        rows = _Sql(
            "SELECT actor, (SELECT ts_ms FROM events WHERE seq = start_seq), start_seq, 0, NULL"
            " FROM starts WHERE start_seq IS NOT NULL"
        )
        return _Sql("MATERIALIZED (" + " UNION ALL ".join(selects) + ")", tuple(params)), rows
    return _Sql("(" + " UNION ALL ".join(selects) + ")", tuple(params)), _Sql(
        "SELECT actor, ts_ms, seq, 0, value FROM starts"
    )


async def _chains_events(
    asked: Asked, args: FunnelArgs, window: TimeWindow, conditions: Sequence[_Sql], value: _Sql | None
) -> dict[str, list[tuple[int, int, int, str | None]]]:
    """Per actor who did step 2 in the window: the events that can matter to their chains, as
    (ts_ms, seq, step mask, breakdown value of a step-1 event)."""
    second = _step_events(
        asked,
        window,
        args.source,
        conditions[1],
        _Sql("anonymous_id AS s_visitor, session_id AS s_session, ts_ms AS s_ts, seq AS s_seq"),
    )
    starts, start_rows = _chain_starts(asked, args, conditions[0], value)
    later = _later_steps(asked, window, args.source, conditions)
    rows = await asked.store.fetch(
        f"WITH second AS ({second.text}), starts AS {starts.text} {start_rows.text} UNION ALL {later.text}",
        [*second.params, *starts.params, *later.params],
    )
    # One event may be several steps (one name with different filters): its bits are merged by `seq`.
    by_seq: dict[int, tuple[str, int, int, str | None]] = {}
    for actor, ts_ms, seq, step, step_value in rows:
        if actor is None or ts_ms < window.since_ms:  # a start before the window
            continue
        known = by_seq.get(seq)
        mask = (known[2] if known else 0) | (1 << step)
        if step == 0:
            kept_value = None if step_value is None else str(step_value)
        else:
            kept_value = known[3] if known else None
        by_seq[seq] = (str(actor), int(ts_ms), mask, kept_value)
    by_actor: dict[str, list[tuple[int, int, int, str | None]]] = defaultdict(list)
    for seq, (actor, ts_ms, mask, step_value) in by_seq.items():
        by_actor[actor].append((ts_ms, seq, mask, step_value))
    return by_actor


# -- the walk -----------------------------------------------------------------------------------------


def furthest_steps(events: Iterable[tuple[int, int, str | None]], steps: int, window_ms: int) -> dict[str | None, int]:
    """For one actor's events (ts_ms, step mask, value of the event), in time order: per value of the
    step-1 event that starts a chain, how many steps the furthest such chain reached."""
    latest_start: dict[str | None, list[int | None]] = {}
    for ts_ms, mask, value in events:
        for j in range(steps - 1, 0, -1):
            if not mask & (1 << j):
                continue
            for starts in latest_start.values():
                start = starts[j - 1]
                reached = starts[j]
                if start is not None and ts_ms - start <= window_ms and (reached is None or reached < start):
                    starts[j] = start
        if mask & 1:
            latest_start.setdefault(value, [None] * steps)[0] = ts_ms
    return {
        value: max(j + 1 for j, start in enumerate(starts) if start is not None)
        for value, starts in latest_start.items()
    }


def _results(events: Sequence[str], reached: Sequence[int]) -> list[StepResult]:
    """Step results from the actors reaching each step."""
    first = reached[0]
    results = []
    for j, (event, users) in enumerate(zip(events, reached, strict=True)):
        previous = reached[j - 1] if j else first
        results.append(
            StepResult(
                step=j + 1,
                event=event,
                users=users,
                conversion_rate=users / previous if previous else 0.0,
                overall_conversion_rate=users / first if first else 0.0,
                drop_off=previous - users,
            )
        )
    return results


def _overall(reached: Sequence[int]) -> float:
    return reached[-1] / reached[0] if reached[0] else 0.0


async def funnel(asked: Asked, args: FunnelArgs) -> FunnelAnswer:
    window = args.window(asked.now_ms)
    steps = args.step_list()
    conditions = [_step_condition(asked, step) for step in steps]
    value = None
    if args.breakdown is not None:
        expr, expr_params = event_dimension(asked, args.breakdown)
        value = _Sql(expr, tuple(expr_params))
    first_total = await _estimated_first_step_users(asked, args, window, conditions[0])
    first_by_value: dict[str | None, int] = {}
    if first_total is None:
        first_total, first_by_value = await _first_step_users(asked, window, args.source, conditions[0], value)
    by_actor = await _chains_events(asked, args, window, conditions, value)

    window_ms = args.conversion_window_hours * HOUR_MS
    deepest: list[int] = []
    deepest_by_value: dict[str | None, list[int]] = defaultdict(list)
    for events in by_actor.values():
        events.sort()
        timeline = [(ts_ms, mask, step_value) for ts_ms, _, mask, step_value in events]
        overall = furthest_steps(((ts, mask, None) for ts, mask, _ in timeline), len(steps), window_ms)
        deepest.append(overall.get(None, 0))
        if value is not None:
            for step_value, depth in furthest_steps(timeline, len(steps), window_ms).items():
                deepest_by_value[step_value].append(depth)

    names = [step.event for step in steps]
    reached = _reached(first_total, deepest, len(steps))
    breakdowns = None
    truncated = False
    if value is not None:
        ranked = sorted(first_by_value.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
        truncated = len(ranked) > MAX_BREAKDOWN_VALUES
        breakdowns = []
        for step_value, users in ranked[:MAX_BREAKDOWN_VALUES]:
            value_reached = _reached(users, deepest_by_value.get(step_value, []), len(steps))
            breakdowns.append(BreakdownFunnel(step_value, _results(names, value_reached), _overall(value_reached)))
    return FunnelAnswer(
        gateway_id=asked.gateway_id,
        window=window.as_json(),
        conversion_window_hours=args.conversion_window_hours,
        steps=_results(names, reached),
        overall_conversion_rate=_overall(reached),
        breakdown=args.breakdown,
        breakdowns=breakdowns,
        breakdown_truncated=truncated,
    )


def _reached(first_step_users: int, deepest: Iterable[int], steps: int) -> list[int]:
    """Actors reaching each step: step 1 from SQL, the later ones from the walked actors' furthest steps."""
    reached = [first_step_users] + [0] * (steps - 1)
    for depth in deepest:
        for j in range(1, depth):
            reached[j] += 1
    return reached


QUESTIONS: list[Question[Any]] = [
    Question(
        "/funnel",
        "Funnel: actors completing ordered steps within a conversion window, per step and per breakdown value",
        FunnelArgs,
        funnel,
        FunnelAnswer,
        method="POST",
    )
]
