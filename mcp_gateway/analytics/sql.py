"""The SQL every question shares: the event filter and the few expressions SQLite and PostgreSQL spell differently.

Queries use `?` placeholders (the PostgreSQL store rewrites them) and integer milliseconds, so time
buckets are plain arithmetic: `ts_ms - ts_ms % 3600000` is the hour, in UTC, on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ..store import Dialect
from ..vocabulary import PAGE_VIEW_NAMES as PAGE_VIEWS
from .window import TimeWindow

HOUR_MS: Final = 3600 * 1000
DAY_MS: Final = 24 * HOUR_MS

USER_KEY: Final = "COALESCE(anonymous_id, user_id_hash)"
"""Who an event's user is: the web visitor (`anonymous_id`), else the hashed user id. MCP calls carry neither,
so they count no users: their unit is the session."""

PAGE_VIEW_NAMES: Final = tuple(sorted(PAGE_VIEWS))
"""The event names that are page views: seed 002 and `POST /track/event`, seed 000's tracker.js `page()`, seed 004
(one list, `vocabulary.PAGE_VIEW_NAMES`, shared with the writer)."""


def bucket(column: str, size_ms: int) -> str:
    """The start of the `size_ms` bucket `column` falls in (UTC)."""
    return f"({column} - {column} % {int(size_ms)})"


def property_text(dialect: Dialect, key: str) -> tuple[str, str]:
    """An expression for the text of `properties[key]` (NULL when absent), and its one parameter."""
    if dialect == "postgresql":
        return "(properties::jsonb ->> ?)", key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return "CAST(json_extract(properties, ?) AS TEXT)", f'$."{escaped}"'


def json_keys(dialect: Dialect, column: str, alias: str) -> str:
    """A table expression for the FROM clause: one row per top-level key of the JSON object in `column`,
    the key in `<alias>.key` (no rows when `column` is NULL)."""
    if dialect == "postgresql":
        return f"jsonb_object_keys({column}::jsonb) AS {alias}(key)"
    return f"json_each({column}) AS {alias}"


def property_number(dialect: Dialect, key: str) -> tuple[str, list[object]]:
    """An expression for `properties[key]` as a number, NULL when absent or not a JSON number; its parameters.

    Never fails on text a client sent where a number was expected (PostgreSQL's cast would).
    """
    if dialect == "postgresql":
        expr = "(CASE WHEN jsonb_typeof(properties::jsonb -> ?) = 'number' THEN (properties::jsonb ->> ?)::float8 END)"
        return expr, [key, key]
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    path = f'$."{escaped}"'
    expr = "(CASE WHEN json_type(properties, ?) IN ('integer', 'real') THEN json_extract(properties, ?) END)"
    return expr, [path, path]


def in_list(column: str, values: Sequence[object]) -> tuple[str, list[object]]:
    """`column IN (?, ?, ...)` and its parameters; for no values, a condition no row meets (PostgreSQL has no IN ())."""
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


@dataclass(slots=True)
class Where:
    """A WHERE clause built up condition by condition, with its parameters in order."""

    conditions: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, condition: str, *params: object) -> Where:
        self.conditions.append(condition)
        self.params.extend(params)
        return self

    def sql(self) -> str:
        return " AND ".join(self.conditions) or "1 = 1"


def events_where(
    gateway_id: str,
    window: TimeWindow,
    *,
    source: str | None = None,
    name: str | None = None,
    primitive_type: str | None = None,
) -> Where:
    """The events of one gateway in `window`, optionally of one source, event name or primitive type.

    Starts with `gateway_id` and `ts_ms`, so `events_by_time` (or `events_by_name`) serves it.
    """
    where = (
        Where().add("gateway_id = ?", gateway_id).add("ts_ms >= ?", window.since_ms).add("ts_ms < ?", window.until_ms)
    )
    if source is not None:
        where.add("source = ?", source)
    if name is not None:
        where.add("name = ?", name)
    if primitive_type is not None:
        where.add("primitive_type = ?", primitive_type)
    return where
