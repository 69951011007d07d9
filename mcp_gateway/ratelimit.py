"""Fixed-window rate limits, per key (a gateway, an IP, a route): the seeds' numbers, in memory.

A window of `seconds` starts at the first request of a key; `limit` requests fit in it. Limits
are per process: with several processes each enforces its own window (shared limits come with
the PostgreSQL deployment).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final

from .web import ApiError

MAX_KEYS: Final = 100_000
"""Keys remembered; past this the expired windows are forgotten, then the oldest."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the window resets."""

    def enforce(self) -> Verdict:
        """This verdict, or 429 with seed 000's body and the rate-limit headers when not allowed."""
        if not self.allowed:
            raise ApiError(
                429,
                f"Rate limit exceeded. Maximum {self.limit} requests per minute.",
                headers=self.headers(),
                retry_after=self.reset_seconds,
            )
        return self

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        headers["X-RateLimit-Reset"] = str(self.reset_seconds)
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class FixedWindowLimiter:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, cost: int = 1) -> Verdict:
        now = time.monotonic()
        start, used = self._windows.get(key, (now, 0))
        if now - start >= self.seconds:
            start, used = now, 0
        allowed = used + cost <= self.limit
        if allowed:
            used += cost
        if key not in self._windows and len(self._windows) >= MAX_KEYS:
            self._forget(now)
        self._windows[key] = (start, used)
        reset = max(1, math.ceil(start + self.seconds - now))
        return Verdict(allowed, self.limit, max(0, self.limit - used), reset)

    def _forget(self, now: float) -> None:
        expired = [key for key, (start, _) in self._windows.items() if now - start >= self.seconds]
        for key in expired:
            del self._windows[key]
        while len(self._windows) >= MAX_KEYS:
            del self._windows[next(iter(self._windows))]
