"""The time range of a question: `since`/`until` (ms since the epoch or ISO 8601) or `period=7d|30d|90d`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ..web import ApiError

PERIODS: Final = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
"""Named periods, in days (24h is one day)."""
DEFAULT_PERIOD: Final = "7d"
DAY_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TimeWindow:
    since_ms: int
    until_ms: int

    def as_json(self) -> dict[str, int]:
        return {"since": self.since_ms, "until": self.until_ms}


def _instant(name: str, raw: str) -> int:
    if raw.isdecimal() and len(raw) <= 15:
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be milliseconds since the epoch or an ISO 8601 time", field=name) from None
    return int(parsed.timestamp() * 1000)


def parse_window(query: Mapping[str, str], now_ms: int | None = None) -> TimeWindow:
    """The window a query asks for; 400 naming `period`, `since` or `until` when it makes no sense."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    until_ms = _instant("until", query["until"]) if "until" in query else now_ms
    if "since" in query:
        since_ms = _instant("since", query["since"])
    else:
        period = query.get("period", DEFAULT_PERIOD)
        if period not in PERIODS:
            raise ApiError(400, f"period must be one of {', '.join(PERIODS)}", field="period")
        since_ms = until_ms - PERIODS[period] * DAY_MS
    if since_ms >= until_ms:
        raise ApiError(400, "since must be before until", field="since")
    return TimeWindow(since_ms, until_ms)
