"""Seed 002's `tier_limits`, as the operator sets them (`Settings`; None is unlimited) and as they are enforced.

    projects_limit        Settings.max_projects          POST /projects past it: 403 `projects_limit_reached`
    max_events_lifetime   Settings.max_events_lifetime   ingest of a project whose account stored that many events
                                                         in all (`project_usage`): 403 `events_limit_reached`
    rate_limit_rpm        Settings.api_rate_limit        requests a minute per key on the keyed APIs: 429
    retention_days        Settings.event_retention_days  raw events older than this are deleted (0: null, kept)

403, not 429, for the two counts: waiting does not lift them (429 says "retry later", and tracking clients
do), the operator must raise the limit or the account must delete projects. The event count is checked before a
batch is stored and read at most once per `cache_seconds` per account, so a batch that crosses the limit is
stored whole and the last `cache_seconds` of a fast sender may pass it: a limit, not an exact quota.
"""

from __future__ import annotations

import time
from typing import Final

from ..config import Settings
from ..errors import LimitReachedError
from ..store import Store
from .projects import Projects

EVENTS_LIMIT_CODE: Final = "events_limit_reached"
PROJECTS_LIMIT_CODE: Final = "projects_limit_reached"


class EventQuota:
    """Refuses a gateway's events once its account stored `limit` events in all (`WebIngestor(admit=...)`)."""

    def __init__(self, store: Store, limit: int, *, cache_seconds: float) -> None:
        self._store = store
        self._projects = Projects(store)
        self.limit = limit
        self._cache_seconds = cache_seconds
        self._owner: dict[str, tuple[float, str | None]] = {}
        self._totals: dict[str, tuple[float, int]] = {}

    async def __call__(self, gateway_id: str) -> None:
        account_id = await self._account_of(gateway_id)
        if account_id is None:
            return
        total = await self._total(account_id)
        if total >= self.limit:
            raise LimitReachedError(
                f"This account stored {total} events, its limit (max_events_lifetime) is {self.limit}: "
                "events are refused until the operator raises it",
                limit="max_events_lifetime",
                value=self.limit,
                code=EVENTS_LIMIT_CODE,
            )

    async def _account_of(self, gateway_id: str) -> str | None:
        now = time.monotonic()
        hit = self._owner.get(gateway_id)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        rows = await self._store.fetch("SELECT account_id FROM gateways WHERE id = ?", (gateway_id,))
        account_id = str(rows[0][0]) if rows else None
        self._owner[gateway_id] = (now, account_id)
        return account_id

    async def _total(self, account_id: str) -> int:
        now = time.monotonic()
        hit = self._totals.get(account_id)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        total = await self._projects.events_total(account_id)
        self._totals[account_id] = (now, total)
        return total


def event_quota(store: Store, settings: Settings) -> EventQuota | None:
    """The ingest admission check `settings` ask for, None when events are unlimited."""
    if settings.max_events_lifetime is None:
        return None
    return EventQuota(store, settings.max_events_lifetime, cache_seconds=settings.gateway_cache_seconds)


def retention_days(settings: Settings) -> int | None:
    """How long raw events are kept, None for forever."""
    return settings.event_retention_days or None
