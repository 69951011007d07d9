"""Fixed-window rate limits, per key (a gateway, an IP, a route): the seeds' numbers.

A window of `seconds` starts at the first request of a key; `limit` requests fit in it. `limiter_for(store,
...)` picks where the windows live: in memory with SQLite (one process), and with PostgreSQL, which several
gateway processes may share, as rows of `rate_limit_windows`: every process counts against the same window,
and the row lock of one `INSERT ... ON CONFLICT DO UPDATE` makes adding to it atomic.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Final, Protocol

from .errors import RateLimitedError
from .store import Store

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
        """This verdict, or `RateLimitedError` (seed 000's 429 with the rate-limit headers) when not allowed."""
        if not self.allowed:
            raise RateLimitedError(
                f"Rate limit exceeded. Maximum {self.limit} requests per minute.",
                retry_after=self.reset_seconds,
                headers=self.headers(),
            )
        return self

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        headers["X-RateLimit-Reset"] = str(self.reset_seconds)
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter(Protocol):
    limit: int

    async def hit(self, key: str, cost: int = 1) -> Verdict:
        """Count `cost` requests of `key` if they fit in its window: whether they did, and what is left."""
        ...


def limiter_for(store: Store, limit: int, seconds: float, *, name: str) -> RateLimiter:
    """Windows in memory for a store one process owns (SQLite), in the database for one processes share."""
    if store.dialect == "postgresql":
        return SharedWindowLimiter(store, limit, seconds, name=name)
    return FixedWindowLimiter(limit, seconds)


class FixedWindowLimiter:
    """Windows in this process's memory."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, cost: int = 1) -> Verdict:
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


FORGET_EVERY_SECONDS: Final = 60.0
"""How often a process deletes the database's windows that ended (at most)."""

_ADD_HITS: Final = """
INSERT INTO rate_limit_windows (key, started_ms, hits) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    started_ms = CASE WHEN rate_limit_windows.started_ms <= ? THEN excluded.started_ms
        ELSE rate_limit_windows.started_ms END,
    hits = CASE WHEN rate_limit_windows.started_ms <= ? THEN excluded.hits
        ELSE rate_limit_windows.hits + excluded.hits END
WHERE rate_limit_windows.started_ms <= ? OR rate_limit_windows.hits + excluded.hits <= ?
RETURNING started_ms, hits
"""
"""Count the hits in the key's window, or start a new window if it ended; no row back when they do not fit."""


class SharedWindowLimiter:
    """Windows in the database (`rate_limit_windows`), shared by every process using it, as `FixedWindowLimiter`
    keeps them: a window starts at a key's first request. A row's key is the limiter's `name` and a hash of the
    limited key (client IPs are never stored as they are)."""

    def __init__(self, store: Store, limit: int, seconds: float, *, name: str) -> None:
        self.limit = limit
        self._store = store
        self._window_ms = max(1, int(seconds * 1000))
        self._name = name
        self._forgotten_at = 0.0

    async def hit(self, key: str, cost: int = 1) -> Verdict:
        now_ms = int(time.time() * 1000)
        ended = now_ms - self._window_ms  # a window that started then or before has ended
        row_key = f"{self._name}:{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}"
        rows = []
        if cost <= self.limit:
            rows = await self._store.execute_now(_ADD_HITS, (row_key, now_ms, cost, ended, ended, ended, self.limit))
        if rows:
            started_ms, used, allowed = int(rows[0][0]), int(rows[0][1]), True
        else:  # the window is too full for `cost` more
            found = await self._store.fetch("SELECT started_ms, hits FROM rate_limit_windows WHERE key = ?", (row_key,))
            started_ms, used = (int(found[0][0]), int(found[0][1])) if found else (now_ms, self.limit)
            allowed = False
        await self._forget_ended(ended)
        reset = max(1, math.ceil((started_ms + self._window_ms - now_ms) / 1000))
        return Verdict(allowed, self.limit, max(0, self.limit - used), reset)

    async def _forget_ended(self, ended_ms: int) -> None:
        if time.monotonic() - self._forgotten_at < FORGET_EVERY_SECONDS:
            return
        self._forgotten_at = time.monotonic()
        await self._store.execute_now(
            "DELETE FROM rate_limit_windows WHERE key LIKE ? AND started_ms <= ?", (self._name + ":%", ended_ms)
        )
