"""Log-bucketed latency histograms: percentiles from hourly rollups within a stated error.

A latency of `v` ms lands in bucket `floor(log(v / MIN_MS) / log(RATIO))`; a percentile is read
as the geometric middle of its bucket, so it is within `RELATIVE_ERROR` (±2.5%) of the exact
value for every latency from `MIN_MS` up (smaller ones count as `MIN_MS`). Histograms are sparse
`{bucket: count}` maps and merge by adding counts, so any range of hours combines exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

RATIO: Final = 1.05
MIN_MS: Final = 0.01
RELATIVE_ERROR: Final = math.sqrt(RATIO) - 1
"""Worst-case relative error of a percentile read from a histogram (about 0.025)."""

_LOG_RATIO: Final = math.log(RATIO)

Histogram = dict[int, int]


def bucket(latency_ms: float) -> int:
    return max(0, math.floor(math.log(max(latency_ms, MIN_MS) / MIN_MS) / _LOG_RATIO))


def bucket_value(index: int) -> float:
    """The geometric middle of a bucket: its representative latency."""
    value: float = MIN_MS * RATIO ** (index + 0.5)
    return value


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    total: Histogram = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The `q` quantile (0-1) by the nearest-rank rule, or None for an empty histogram."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(histogram))
