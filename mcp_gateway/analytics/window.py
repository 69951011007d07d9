"""The time range of a question: `since`/`until` (ms since the epoch or ISO 8601) or `period=24h|7d|30d|90d`,
and the base model every question's parameters extend."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..errors import InvalidInputError

PERIODS: Final = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
"""Named periods, in days (24h is one day)."""
DEFAULT_PERIOD: Final = "7d"
DAY_MS: Final = 24 * 3600 * 1000
HOUR_MS: Final = 3600 * 1000

Period = Literal["24h", "7d", "30d", "90d"]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """[since_ms, until_ms): what a question counts."""

    since_ms: int
    until_ms: int

    @property
    def length_ms(self) -> int:
        return self.until_ms - self.since_ms

    def previous(self) -> TimeWindow:
        """The window of the same length just before this one (what insights compare with)."""
        return TimeWindow(self.since_ms - self.length_ms, self.since_ms)

    def as_json(self) -> dict[str, int]:
        return {"since": self.since_ms, "until": self.until_ms}


def _instant(raw: object) -> object:
    """ms since the epoch, or an ISO 8601 time (a naive one is UTC), as ms."""
    if not isinstance(raw, str):
        return raw
    if raw.isdecimal() and len(raw) <= MAX_INSTANT_DIGITS:
        return int(raw)
    try:  # upper(): RFC 3339 allows a lower-case `t` and `z`, which fromisoformat does not read
        parsed = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be milliseconds since the epoch or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


MAX_INSTANT_DIGITS: Final = 15
"""Digits of a time given as milliseconds in a string (a query parameter): 15 reach past the year 30000."""

MAX_INSTANT_MS: Final = 253_370_764_800_000
"""The latest time a question takes, 9999-01-01T00:00:00Z: answers name days and hours as dates, which end with
the year 9999 (a later `until` was a 500 found by the fuzz test)."""

INSTANT_SCHEMA: Final = {
    "anyOf": [
        {"type": "string", "pattern": f"^[0-9]{{1,{MAX_INSTANT_DIGITS}}}$"},
        {"type": "integer", "minimum": 0, "maximum": MAX_INSTANT_MS},
        {"type": "string", "format": "date-time"},
    ],
    "description": "Milliseconds since the epoch (`1767225600000`), or an ISO 8601 time (`2026-01-01T00:00:00Z`;"
    " RFC 3339 date-times, and also a date alone or a time without a zone, which is UTC), up to 9999-01-01",
}
"""How `Instant` is documented: what `_instant` reads."""

Instant = Annotated[int, BeforeValidator(_instant), Field(ge=0, le=MAX_INSTANT_MS), WithJsonSchema(INSTANT_SCHEMA)]


class Args(BaseModel):
    """The parameters of a question: the query string of a GET, the JSON body of a POST.

    Unknown parameters are ignored (clients of the seeds' APIs send `project` and the like).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


class WindowArgs(Args):
    """A question over a time range: `since`/`until`, or `period` ending now (default 7d)."""

    period: Period | None = None
    since: Instant | None = None
    until: Instant | None = None

    def window(self, now_ms: int | None = None) -> TimeWindow:
        """The window asked for; 400 naming `since` when it is not before `until`."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        until_ms = self.until if self.until is not None else now_ms
        if self.since is not None:
            since_ms = self.since
        else:
            since_ms = until_ms - PERIODS[self.period or DEFAULT_PERIOD] * DAY_MS
        if since_ms >= until_ms:
            raise InvalidInputError("since must be before until", field="since")
        return TimeWindow(since_ms, until_ms)
