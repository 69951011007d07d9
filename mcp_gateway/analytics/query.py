"""POST /query (seed 002): metrics over events, grouped by columns, time buckets or custom properties, filtered.

    {"metrics": ["event_count", "unique_users"], "group_by": ["day", "properties.plan"],
     "filters": [{"field": "source", "op": "eq", "value": "web"}], "since": ..., "until": ..., "limit": 100}
    -> {"metrics": [...], "group_by": [...], "rows": [{"day": 1767225600000, "properties.plan": "pro",
                                                      "event_count": 12, "unique_users": 3}, ...]}

A row's keys are the echoed `group_by` names and `metrics` names. Metrics, columns and operators come
from fixed lists (`METRICS`, `COLUMNS`, `TIME_BUCKETS`); a custom property is `properties.<key>`, its key
bound as a parameter like every value, so nothing a client sends becomes SQL. Rows are ordered by
`order_by` (a metric or a group, default the first metric) with nulls last, then by the groups.

Filters: `eq`, `neq` (true for events without the field, too), `in` (a list), `contains`
(case-insensitive substring), `gt`/`lt` (numbers: `latency_ms`, or a property holding a JSON number).
Property values compare as text: the number 5 matches "5". `success` takes `eq`/`neq` with true or false.

Fast shapes, answered from the write-time rollups (`analytics.rollups`) instead of the events, with
filters only `eq` on `event`/`name` and `source`:
- `event_count` grouped by any of `event`/`name`, `source`, and one of `day`/`date`/`hour`;
- `event_count` grouped by one of path, traffic_source, traffic_medium, country, device_type, browser,
  os (events without a value, or with an empty one, form the null group), optionally by day or hour too;
  (a time bucket with other groups: under `MAX_ROLLUP_PIECES` buckets, each read from the rollups);
- `unique_users` and `session_count` (with `event_count`) grouped by `source` and/or a time bucket,
  with no event name filter. These come from `rollups.activity`: exact under its `EXACT_BELOW` distinct
  users or sessions, beyond that (windows spanning whole days, day buckets) HyperLogLog estimates
  (±1.6%), as /stats gives.
- `unique_users` (with `event_count`) grouped by `traffic_source`, optionally by day too, with no filter:
  from the writer's per-day visitor sketches (`rollups.visitors_by`, ±1.6%) once the window has
  `EXACT_BELOW` events; under that, from the events, exactly.
Every other query (unique users per other column values, custom properties, latency and error metrics, other
filters) scans the window's events, through the `(gateway_id, ts_ms)` index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import AliasChoices, Field

from ..errors import InvalidInputError
from ..openapi import name_or_prefixed
from ..store import Dialect
from .api import Asked, Question
from .events import BREAKDOWN_COLUMNS, MAX_NAME_CHARS, PROPERTY_PREFIX, number
from .rollups import EXACT_BELOW, activity, counts_by, counts_by_name, event_series, visitors_by
from .sql import DAY_MS, HOUR_MS, USER_KEY, bucket, events_where, property_number, property_text
from .window import Args, TimeWindow, WindowArgs

Metric = Literal[
    "event_count", "unique_users", "session_count", "avg_latency_ms", "max_latency_ms", "error_count", "error_rate"
]

METRICS: Final[dict[str, str]] = {
    "event_count": "COUNT(*)",
    "unique_users": "COUNT(DISTINCT user_key)",
    "session_count": "COUNT(DISTINCT session_id)",
    "avg_latency_ms": "AVG(latency_ms)",
    "max_latency_ms": "MAX(latency_ms)",
    "error_count": "SUM(CASE WHEN success = 0 THEN 1 ELSE 0 END)",
    "error_rate": "AVG(CASE WHEN success = 0 THEN 1.0 WHEN success = 1 THEN 0.0 END)",
}
"""Each metric over the columns the inner query selects. error_rate is 0-1 over events whose success is known
(MCP calls), null when there are none; the latency metrics are null without MCP calls too."""
COUNT_METRICS: Final = frozenset({"event_count", "unique_users", "session_count", "error_count"})

COLUMNS: Final = {**BREAKDOWN_COLUMNS, "operation": "operation", "session_id": "session_id"}
"""Text columns to group or filter by."""
TIME_SIZES: Final = {"day": DAY_MS, "date": DAY_MS, "hour": HOUR_MS}
TIME_BUCKETS: Final = {name: bucket("ts_ms", size) for name, size in TIME_SIZES.items()}
"""Groups by UTC day or hour; the value is the bucket's start in ms. Filter on time with since/until."""
NUMBER_COLUMNS: Final = {"latency_ms": "latency_ms"}
FLAG_COLUMNS: Final = {"success": "success"}

MAX_GROUPS: Final = 3
MAX_FILTERS: Final = 20
MAX_IN_VALUES: Final = 100
MAX_FIELD_CHARS: Final = len(PROPERTY_PREFIX) + MAX_NAME_CHARS

Scalar = Annotated[str, Field(max_length=1000)] | int | float | bool
FieldName = Annotated[str, Field(min_length=1, max_length=MAX_FIELD_CHARS)]
GroupName = Annotated[
    FieldName,
    name_or_prefixed(
        [*COLUMNS, *TIME_BUCKETS],
        PROPERTY_PREFIX,
        max_length=MAX_FIELD_CHARS,
        description="A column, day/hour, or properties.<key>",
    ),
]
FilterName = Annotated[
    FieldName,
    name_or_prefixed(
        [*COLUMNS, *NUMBER_COLUMNS, *FLAG_COLUMNS],
        PROPERTY_PREFIX,
        max_length=MAX_FIELD_CHARS,
        description="A column or properties.<key>",
    ),
]
Kind = Literal["text", "time", "number", "flag", "property"]


class QueryFilter(Args):
    field: FilterName
    op: Literal["eq", "neq", "in", "contains", "gt", "lt"] = "eq"
    value: Scalar | list[Scalar]


class QueryArgs(WindowArgs):
    metrics: list[Metric] = Field(
        default_factory=lambda: list[Metric](["event_count"]),
        min_length=1,
        max_length=len(METRICS),
        description="What to compute",
    )
    group_by: list[GroupName] = Field(
        default_factory=list,
        max_length=MAX_GROUPS,
        validation_alias=AliasChoices("group_by", "groupBy"),
        description="Columns, day/hour, or properties.<key>",
    )
    filters: list[QueryFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    order_by: FieldName | None = Field(None, description="A requested metric or group; default the first metric")
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(100, ge=1, le=1000, description="Most rows to answer")


@dataclass(frozen=True, slots=True)
class _Field:
    sql: str
    params: list[object]
    kind: Kind
    key: str | None = None
    """The custom property's key."""


def _field(dialect: Dialect, name: str) -> _Field | None:
    if name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX):
        key = name.removeprefix(PROPERTY_PREFIX)
        expr, param = property_text(dialect, key)
        return _Field(expr, [param], "property", key)
    if name in COLUMNS:
        return _Field(COLUMNS[name], [], "text")
    if name in TIME_BUCKETS:
        return _Field(TIME_BUCKETS[name], [], "time")
    if name in NUMBER_COLUMNS:
        return _Field(NUMBER_COLUMNS[name], [], "number")
    if name in FLAG_COLUMNS:
        return _Field(FLAG_COLUMNS[name], [], "flag")
    return None


def _group(dialect: Dialect, index: int, name: str) -> _Field:
    field = _field(dialect, name)
    if field is None or field.kind not in ("text", "time", "property"):
        raise InvalidInputError(f"Cannot group by {name!r}", field=f"group_by.{index}")
    return field


def _bad_value(loc: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"Invalid {loc}.value: {why}", field=f"{loc}.value")


def _scalar(loc: str, kind: Kind, value: object) -> object:
    """`value` as the filtered field compares it."""
    if kind == "flag":
        if not isinstance(value, bool):
            raise _bad_value(loc, "must be true or false")
        return int(value)
    if isinstance(value, bool) or isinstance(value, list):
        raise _bad_value(loc, "must be a string or a number")
    if kind == "number":
        if not isinstance(value, int | float):
            raise _bad_value(loc, "must be a number")
        return value
    return value if isinstance(value, str) else json.dumps(value)


def _condition(dialect: Dialect, index: int, spec: QueryFilter) -> tuple[str, list[object]]:
    loc = f"filters.{index}"
    field = _field(dialect, spec.field)
    if field is None or field.kind == "time":
        raise InvalidInputError(f"Cannot filter on {spec.field!r}", field=f"{loc}.field")
    expr, params = field.sql, field.params
    if spec.op in ("gt", "lt"):
        if field.kind == "property" and field.key is not None:
            expr, params = property_number(dialect, field.key)
        elif field.kind != "number":
            raise InvalidInputError(f"{spec.op} needs a number field", field=f"{loc}.op")
        if isinstance(spec.value, bool) or not isinstance(spec.value, int | float):
            raise _bad_value(loc, "must be a number")
        return f"{expr} {'>' if spec.op == 'gt' else '<'} ?", [*params, spec.value]
    if field.kind == "flag" and spec.op not in ("eq", "neq"):
        raise InvalidInputError(f"{spec.op} does not apply to {spec.field!r}", field=f"{loc}.op")
    if spec.op == "in":
        if not isinstance(spec.value, list) or not 1 <= len(spec.value) <= MAX_IN_VALUES:
            raise _bad_value(loc, f"must be a list of 1 to {MAX_IN_VALUES} values")
        values = [_scalar(loc, field.kind, item) for item in spec.value]
        return f"{expr} IN ({', '.join('?' for _ in values)})", [*params, *values]
    if spec.op == "contains":
        if field.kind not in ("text", "property") or not isinstance(spec.value, str):
            raise _bad_value(loc, "contains needs a text field and a string")
        escaped = spec.value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"LOWER({expr}) LIKE ? ESCAPE '\\'", [*params, f"%{escaped}%"]
    value = _scalar(loc, field.kind, spec.value)
    if spec.op == "eq":
        return f"{expr} = ?", [*params, value]
    return f"({expr} IS NULL OR {expr} <> ?)", [*params, *params, value]


# -- the shapes the rollups answer -----------------------------------------------------------------------

ROLLUP_DIMENSIONS: Final = frozenset(
    {"path", "traffic_source", "traffic_medium", "country", "device_type", "browser", "os"}
)
"""Columns the rollups count events by (`rollups.counts_by`), under the same names."""
NAME_GROUPS: Final = frozenset({"event", "name"})
SOURCES: Final = ("mcp", "web", "server")
ACTIVITY_METRICS: Final = frozenset({"unique_users", "session_count"})
SKETCHED_DIMENSION: Final = "traffic_source"
"""The dimension the writer keeps users per day of (`store.rollups.VISITOR_DIMENSIONS`): unique users grouped by
it (and by day) come from sketches."""
MAX_ROLLUP_PIECES: Final = 2200
"""Most time buckets the rollups are read for one by one (90 days by hour is 2,160); beyond, the events."""

GroupKey = tuple[str | int | None, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A query the rollups answer: its event name and source filters, time bucket and dimension."""

    name: str | None
    source: str | None
    bucket_ms: int | None
    dimension: str | None


def _rollup_plan(window: TimeWindow, metrics: list[str], groups: list[str], filters: list[QueryFilter]) -> _Plan | None:
    """How the rollups answer this query, or None when only the events can."""
    wanted: dict[str, str] = {}
    for spec in filters:
        field = "name" if spec.field in NAME_GROUPS else spec.field
        if field not in ("name", "source") or spec.op != "eq" or not isinstance(spec.value, str):
            return None
        if wanted.setdefault(field, spec.value) != spec.value:
            return None
    times = [TIME_SIZES[g] for g in groups if g in TIME_SIZES]
    dimensions = [g for g in groups if g in ROLLUP_DIMENSIONS]
    by_name = any(g in NAME_GROUPS for g in groups)
    if (
        len(times) > 1
        or len(dimensions) > 1
        or len(times) + len(dimensions) + by_name + ("source" in groups) < len(groups)
    ):
        return None
    bucket_ms = times[0] if times else None
    if dimensions == [SKETCHED_DIMENSION] and "unique_users" in metrics:
        visitors_shape = set(metrics) <= {"event_count", "unique_users"} and bucket_ms in (None, DAY_MS)
        if not visitors_shape or wanted or by_name or "source" in groups:
            return None
    elif ACTIVITY_METRICS & set(metrics):
        if set(metrics) - ACTIVITY_METRICS - {"event_count"} or dimensions or by_name or "name" in wanted:
            return None
    elif metrics != ["event_count"]:
        return None
    if dimensions and (by_name or "source" in groups):
        return None
    by_piece = dimensions or by_name or "source" in groups
    if by_piece and bucket_ms is not None and (window.until_ms - window.since_ms) // bucket_ms >= MAX_ROLLUP_PIECES:
        return None
    return _Plan(wanted.get("name"), wanted.get("source"), bucket_ms, dimensions[0] if dimensions else None)


def _pieces(window: TimeWindow, bucket_ms: int) -> list[tuple[int, TimeWindow]]:
    """Each bucket's start and its part of `window`."""
    start = window.since_ms - window.since_ms % bucket_ms
    return [
        (at, TimeWindow(max(at, window.since_ms), min(at + bucket_ms, window.until_ms)))
        for at in range(start, window.until_ms, bucket_ms)
    ]


def _key(
    groups: list[str],
    *,
    at: int | None = None,
    source: str | None = None,
    name: str | None = None,
    value: str | None = None,
) -> GroupKey:
    """A group's values in `groups` order."""
    picked: list[str | int | None] = []
    for group in groups:
        if group in TIME_SIZES:
            picked.append(at)
        elif group in NAME_GROUPS:
            picked.append(name)
        elif group == "source":
            picked.append(source)
        else:
            picked.append(value)
    return tuple(picked)


async def _counts(asked: Asked, window: TimeWindow, plan: _Plan, groups: list[str]) -> dict[GroupKey, dict[str, int]]:
    """event_count per group, from `rollups.counts_by_name`, `event_series` and `counts_by`."""
    store, gateway_id = asked.store, asked.gateway_id
    found: dict[GroupKey, dict[str, int]] = {}

    def add(key: GroupKey, n: int) -> None:
        if n:
            found.setdefault(key, {"event_count": 0})["event_count"] += n

    async def names_in(piece: TimeWindow) -> list[tuple[tuple[str, str], int]]:
        by_name = await counts_by_name(store, gateway_id, piece, source=plan.source)
        return [(sn, n) for sn, n in by_name.items() if plan.name is None or sn[1] == plan.name]

    if plan.dimension is not None:
        pieces = [(None, window)] if plan.bucket_ms is None else _pieces(window, plan.bucket_ms)
        for at, piece in pieces:
            total = sum(n for _, n in await names_in(piece))
            values = await counts_by(store, gateway_id, piece, plan.dimension, source=plan.source, name=plan.name)
            for value, n in values.items():
                add(_key(groups, at=at, value=value), n)
            add(_key(groups, at=at), total - sum(values.values()))
    elif plan.bucket_ms is None:
        for (source, name), n in await names_in(window):
            add(_key(groups, source=source, name=name), n)
    elif any(g in NAME_GROUPS or g == "source" for g in groups):
        for at, piece in _pieces(window, plan.bucket_ms):
            for (source, name), n in await names_in(piece):
                add(_key(groups, at=at, source=source, name=name), n)
    else:
        series = await event_series(store, gateway_id, window, plan.bucket_ms, source=plan.source, name=plan.name)
        for at, n in series.items():
            add(_key(groups, at=at), n)
    return found


async def _visitors(
    asked: Asked, window: TimeWindow, plan: _Plan, groups: list[str]
) -> dict[GroupKey, dict[str, int]] | None:
    """unique_users (and event_count) per traffic source and day, from the writer's visitor sketches
    (`rollups.visitors_by`); the null group is the users of events without one. None under `EXACT_BELOW`
    events: the events answer, exactly."""
    found = await _counts(asked, window, plan, groups)
    if sum(row["event_count"] for row in found.values()) < EXACT_BELOW:
        return None
    value_at = groups.index(SKETCHED_DIMENSION)
    time_at = next((i for i, group in enumerate(groups) if group in TIME_SIZES), None)
    pieces = [(None, window)] if plan.bucket_ms is None else _pieces(window, plan.bucket_ms)
    for at, piece in pieces:
        values = sorted({str(key[value_at] or "") for key in found if time_at is None or key[time_at] == at})
        for value, users in (await visitors_by(asked.store, asked.gateway_id, piece, "traffic_source", values)).items():
            key = _key(groups, at=at, value=value or None)
            if key in found:
                found[key]["unique_users"] = users
    return found


async def _activity(asked: Asked, window: TimeWindow, plan: _Plan, groups: list[str]) -> dict[GroupKey, dict[str, int]]:
    """unique_users and session_count (and event_count) per time bucket and source, from `rollups.activity`."""
    found = await _counts(asked, window, plan, groups)
    by_source = "source" in groups
    for source in SOURCES if by_source and plan.source is None else (plan.source,):
        for point in await activity(asked.store, asked.gateway_id, window, source=source, bucket_ms=plan.bucket_ms):
            at = None if plan.bucket_ms is None else point.bucket_ms
            key = _key(groups, at=at, source=source)
            if point.actors or point.sessions or key in found:
                row = found.setdefault(key, {"event_count": 0})
                row["unique_users"], row["session_count"] = point.actors, point.sessions
    return found


async def _from_rollups(
    asked: Asked, window: TimeWindow, plan: _Plan, metrics: list[str], groups: list[str]
) -> list[tuple[GroupKey, dict[str, int]]] | None:
    """Every group's metrics; with no groups, the one row an aggregate over no events still has. None when the
    events should answer: unique users per traffic source over fewer than `EXACT_BELOW` events, counted exactly."""
    if plan.dimension == SKETCHED_DIMENSION and "unique_users" in metrics:
        visitors = await _visitors(asked, window, plan, groups)
        if visitors is None:
            return None
        found = visitors
    elif ACTIVITY_METRICS & set(metrics):
        found = await _activity(asked, window, plan, groups)
    else:
        found = await _counts(asked, window, plan, groups)
    if not groups and not found:
        found[()] = {}
    return [(key, {m: values.get(m, 0) for m in metrics}) for key, values in found.items()]


def _ordered(rows: list[dict[str, Any]], order_by: str, descending: bool, groups: list[str]) -> list[dict[str, Any]]:
    """`rows` as the SQL orders them: by `order_by` with nulls last, then by each group ascending, nulls last."""
    rows = sorted(rows, key=lambda row: tuple((row[g] is None, row[g] if row[g] is not None else 0) for g in groups))
    present = sorted(
        (row for row in rows if row[order_by] is not None), key=lambda row: row[order_by], reverse=descending
    )
    return present + [row for row in rows if row[order_by] is None]


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    window: dict[str, int]
    metrics: list[str]
    group_by: list[str]
    order_by: str
    order: str
    rows: list[dict[str, Any]]
    """One object per group: each `group_by` name and each `metrics` name as a key."""


def _metric_value(metric: str, value: Any) -> Any:
    if metric in COUNT_METRICS:
        return int(value or 0)
    return None if value is None else float(number(value))


async def query(asked: Asked, args: QueryArgs) -> QueryAnswer:
    window = args.window(asked.now_ms)
    dialect = asked.store.dialect
    metrics: list[str] = list(dict.fromkeys(args.metrics))
    groups = list(dict.fromkeys(args.group_by))
    fields = [_group(dialect, i, name) for i, name in enumerate(groups)]
    where = events_where(asked.gateway_id, window)
    for index, spec in enumerate(args.filters):
        condition, params = _condition(dialect, index, spec)
        where.add(condition, *params)

    order_by = args.order_by or metrics[0]
    if order_by in metrics:
        order_column = f"m{metrics.index(order_by)}"
    elif order_by in groups:
        order_column = f"d{groups.index(order_by)}"
    else:
        raise InvalidInputError("order_by must be one of the requested metrics or group_by", field="order_by")

    plan = _rollup_plan(window, metrics, groups, args.filters)
    found = None if plan is None else await _from_rollups(asked, window, plan, metrics, groups)
    if found is not None:
        rows_by_group = [{**dict(zip(groups, key, strict=True)), **values} for key, values in found]
        ordered = _ordered(rows_by_group, order_by, args.order == "desc", groups)
        return QueryAnswer(window.as_json(), metrics, groups, order_by, args.order, ordered[: args.limit])

    dims = [f"d{i}" for i in range(len(fields))]
    inner = ", ".join([*(f"{f.sql} AS {d}" for f, d in zip(fields, dims, strict=True)), f"{USER_KEY} AS user_key"])
    outer = ", ".join([*dims, *(f"{METRICS[m]} AS m{i}" for i, m in enumerate(metrics))])
    group_clause = f"GROUP BY {', '.join(dims)}" if dims else ""
    tie_breaks = "".join(f", CASE WHEN {d} IS NULL THEN 1 ELSE 0 END, {d}" for d in dims)
    sql = f"""
        SELECT * FROM (
            SELECT {outer} FROM (
                SELECT {inner}, session_id, latency_ms, success FROM events WHERE {where.sql()}
            ) AS picked {group_clause}
        ) AS grouped
        ORDER BY CASE WHEN {order_column} IS NULL THEN 1 ELSE 0 END, {order_column} {args.order.upper()}{tie_breaks}
        LIMIT ?
    """
    rows = await asked.store.fetch(sql, [*(p for f in fields for p in f.params), *where.params, args.limit])
    answer_rows = []
    for row in rows:
        values = dict(zip(groups, row[: len(groups)], strict=True))
        for metric, value in zip(metrics, row[len(groups) :], strict=True):
            values[metric] = _metric_value(metric, value)
        answer_rows.append(values)
    return QueryAnswer(window.as_json(), metrics, groups, order_by, args.order, answer_rows)


QUESTIONS: list[Question[Any]] = [
    Question(
        "/query",
        "Flexible analytics query: metrics grouped by columns, day/hour or custom properties, with filters",
        QueryArgs,
        query,
        QueryAnswer,
        method="POST",
    )
]
