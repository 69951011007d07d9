"""How each tool, resource and prompt did: calls, errors, latency percentiles — from the rollups.

Whole days come from the daily rollups, whole hours from the hourly ones, the partial hours at the
window's ends from the events (`rollups.split`), so counts are exact. Percentiles come from the
merged log-bucketed histograms, within `store.histogram.RELATIVE_ERROR` (±2.5%) of the exact value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..store import RollupRow, Store, histogram
from .api import Asked, Question
from .rollups import DAYS, split
from .sql import events_where
from .window import TimeWindow, WindowArgs

PrimitiveType = Literal["tool", "resource", "prompt"]


@dataclass(frozen=True, slots=True)
class PrimitiveStats:
    primitive_type: str
    name: str
    calls: int
    errors: int
    error_rate: float
    avg_latency_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_latency_ms: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def primitive_stats(
    store: Store, gateway_id: str, window: TimeWindow, *, primitive_type: str | None = None, operation: str = "call"
) -> list[PrimitiveStats]:
    """Per primitive (busiest first): calls, errors, error rate and latency over `window`."""
    parts = split(window)
    rows: list[RollupRow] = []
    for level, period in parts.rollups:
        rows += await store.mcp_rollups(
            gateway_id,
            since_ms=period.since_ms,
            until_ms=period.until_ms,
            primitive_type=primitive_type,
            daily=level is DAYS,
        )
    for edge in parts.edges:
        rows += await _edge_rows(store, gateway_id, edge, primitive_type)
    grouped: dict[tuple[str, str], list[RollupRow]] = {}
    for row in rows:
        if row.operation != operation:
            continue
        grouped.setdefault((row.primitive_type, row.name), []).append(row)
    stats = []
    for (kind, name), group in grouped.items():
        calls = sum(r.calls for r in group)
        errors = sum(r.errors for r in group)
        merged = histogram.merge(r.histogram for r in group)
        stats.append(
            PrimitiveStats(
                primitive_type=kind,
                name=name,
                calls=calls,
                errors=errors,
                error_rate=errors / calls if calls else 0.0,
                avg_latency_ms=sum(r.latency_sum_ms for r in group) / calls if calls else 0.0,
                p50_ms=histogram.percentile(merged, 0.50),
                p95_ms=histogram.percentile(merged, 0.95),
                p99_ms=histogram.percentile(merged, 0.99),
                max_latency_ms=max(r.latency_max_ms for r in group),
            )
        )
    return sorted(stats, key=lambda s: (-s.calls, s.primitive_type, s.name))


async def _edge_rows(store: Store, gateway_id: str, edge: TimeWindow, primitive_type: str | None) -> list[RollupRow]:
    """The MCP events of a partial hour, each as a one-call rollup row."""
    where = events_where(gateway_id, edge, source="mcp", primitive_type=primitive_type)
    where.add("primitive_type IS NOT NULL")
    rows = await store.fetch(
        "SELECT primitive_type, name, COALESCE(operation, 'call'), latency_ms, success"
        f" FROM events WHERE {where.sql()}",
        where.params,
    )
    return [
        RollupRow(
            gateway_id,
            edge.since_ms,
            kind,
            name,
            operation,
            calls=1,
            errors=0 if success else 1,
            latency_sum_ms=latency or 0.0,
            latency_max_ms=latency or 0.0,
            histogram={histogram.bucket(latency or 0.0): 1},
        )
        for kind, name, operation, latency, success in rows
    ]


class ToolsArgs(WindowArgs):
    primitive: PrimitiveType | None = None
    """Only tools, resources or prompts."""


@dataclass(frozen=True, slots=True)
class ToolsAnswer:
    gateway_id: str
    window: dict[str, int]
    latency_relative_error: float
    primitives: list[PrimitiveStats]


async def tools(asked: Asked, args: ToolsArgs) -> ToolsAnswer:
    window = args.window(asked.now_ms)
    stats = await primitive_stats(asked.store, asked.gateway_id, window, primitive_type=args.primitive)
    return ToolsAnswer(asked.gateway_id, window.as_json(), round(histogram.RELATIVE_ERROR, 4), stats)


QUESTIONS = [
    Question(
        "/analytics/tools",
        "Per tool, resource and prompt: calls, errors, error rate, average and p50/p95/p99 latency",
        ToolsArgs,
        tools,
        ToolsAnswer,
    )
]
