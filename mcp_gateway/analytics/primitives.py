"""How each tool, resource and prompt did: calls, errors, latency percentiles — from the hourly rollups.

Hours are whole: a window starting mid-hour includes that hour's rollup. Percentiles come from the
merged log-bucketed histograms, within `store.histogram.RELATIVE_ERROR` (±2.5%) of the exact value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..store import Store, histogram
from ..store.base import HOUR_MS
from .api import Asked, Question
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
    rows = await store.mcp_rollups(
        gateway_id,
        since_ms=window.since_ms - window.since_ms % HOUR_MS,
        until_ms=window.until_ms,
        primitive_type=primitive_type,
    )
    grouped: dict[tuple[str, str], list[Any]] = {}
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
