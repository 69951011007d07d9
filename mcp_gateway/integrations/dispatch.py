"""Sending one integration's claimed deliveries: build the platform's requests, send them, judge the answers,
and say what becomes of each delivery (`store.outbox.Settlement`).

Both the delivery worker (`worker.py`) and synchronous forwarding (`sync.py`) send through a `Dispatcher`.
A platform's verdict decides: `DELIVERED` -> `sent`; `FAILED` (a 4xx other than 429) -> `failed`, with the
platform's error kept; `RETRY` (5xx, 429, a timeout, a network error) -> pending again after an exponential
backoff with jitter, at least the platform's `Retry-After`, or `dead` once `RetryPolicy.max_attempts` were made.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import httpx

from ..store.outbox import Delivery, DeliveryStatus, Settlement
from .crypto import SecretsKeyError
from .forwarded import decode
from .platforms import ForwardedEvent, Outcome, OutgoingRequest, Platform, Verdict
from .registry import Integration

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS: Final = 1000
"""A platform's error is kept up to this many characters."""

MAX_RETRY_AFTER_SECONDS: Final = 86_400.0
"""A platform's `Retry-After` is honoured up to a day."""

DISABLED_RECHECK_MS: Final = 60_000
"""A delivery claimed just as its integration was disabled is due again this much later (and then only claimed
once the integration is enabled again)."""

MAX_ANSWER_BYTES: Final = 64 * 1024
"""Most of a platform's answer read: enough for any error body, and a misbehaving endpoint cannot fill memory."""

CONCURRENT_REQUESTS: Final = 8
"""Requests one integration's batch sends at once."""


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _read_capped(response: httpx.Response) -> bytes:
    """The answer's body, at most `MAX_ANSWER_BYTES` of it: a platform's verdict needs no more."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: MAX_ANSWER_BYTES - len(body)]
        if len(body) >= MAX_ANSWER_BYTES:
            break
    return bytes(body)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds before retrying after failed try number `attempt` (1-based): "equal jitter" over an exponential
        backoff (half fixed, half random, so retries of many deliveries spread out), never less than the
        platform's `Retry-After`."""
        backoff = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 40))
        delay: float = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not a secret
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_SECONDS))
        return delay


@dataclass(slots=True)
class DispatchStats:
    """What this process's dispatcher did, per delivery, told a group at a time (a Meta request settles up to
    1,000 deliveries: one call, not 1,000): `listeners(kind, outcome, count, latencies_ms)` hear of each group
    (`forwarding.py` counts them for `/metrics`); `outcomes` counts by (platform kind, outcome)."""

    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    listeners: list[Callable[[str, str, int, Sequence[int]], None]] = field(default_factory=list)

    def record(self, kind: str, outcome: str, count: int, latencies_ms: Sequence[int] = ()) -> None:
        if count <= 0:
            return
        key = (kind, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + count
        for listener in self.listeners:
            listener(kind, outcome, count, latencies_ms)


class Dispatcher:
    def __init__(self, client: httpx.AsyncClient, policy: RetryPolicy, *, timeout_s: float) -> None:
        self._client = client
        self.policy = policy
        self._timeout_s = timeout_s
        self.stats = DispatchStats()

    async def send(self, platform: Platform, request: OutgoingRequest) -> Verdict:
        """One request's verdict; a timeout or a network error is a `RETRY`, never an exception."""
        outgoing = self._client.build_request(
            request.method, request.url, headers=dict(request.headers), content=request.body, timeout=self._timeout_s
        )
        try:
            with anyio.fail_after(self._timeout_s):  # the whole exchange, however slowly the answer trickles
                response = await self._client.send(outgoing, stream=True)
                try:
                    body = await _read_capped(response)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            return Verdict(Outcome.RETRY, error=f"timed out after {self._timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Verdict(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
        try:
            return platform.judge(response.status_code, body, response.headers)
        except Exception:
            logger.exception("%s: judging a %d answer failed", platform.kind, response.status_code)
            return Verdict(Outcome.RETRY, error=f"HTTP {response.status_code}: the answer could not be read")

    async def deliver(
        self,
        integration: Integration | SecretsKeyError | None,
        platform: Platform | None,
        deliveries: Sequence[Delivery],
        *,
        adapt: Callable[[ForwardedEvent], ForwardedEvent] = lambda event: event,
    ) -> list[Settlement]:
        """Send `deliveries` (all of one integration) and settle each; an integration whose secrets cannot be
        decrypted is retried (and dead-lettered in the end), like a platform that does not answer."""
        if integration is None:
            return self._settle(deliveries, "skipped", "the integration was deleted", kind="unknown")
        if isinstance(integration, SecretsKeyError):
            return self._judged("unknown", deliveries, Verdict(Outcome.RETRY, error=str(integration)))
        if not integration.enabled:  # disabled since the claim: left for when it is enabled again
            due = _now_ms() + DISABLED_RECHECK_MS
            return [Settlement(d.seq, d.integration_id, "pending", due) for d in deliveries]
        if platform is None:
            return self._settle(deliveries, "failed", f"no platform {integration.kind!r}", kind=integration.kind)
        by_event: dict[str, list[Delivery]] = {}
        events: list[ForwardedEvent] = []
        unreadable: list[Delivery] = []
        for delivery in deliveries:  # parsed here, not in the claim's write transaction
            if delivery.event_id not in by_event:
                try:
                    events.append(adapt(decode(json.loads(delivery.payload))))
                except (ValueError, KeyError, TypeError):  # cannot happen to what `enqueue` wrote; fails alone
                    unreadable.append(delivery)
                    continue
            by_event.setdefault(delivery.event_id, []).append(delivery)
        settlements = self._settle(unreadable, "failed", "the stored payload cannot be read", kind=integration.kind)
        requests: list[OutgoingRequest] = []
        try:
            for start in range(0, len(events), max(1, platform.max_batch)):
                chunk = events[start : start + max(1, platform.max_batch)]
                requests.extend(platform.build_requests(integration.config, chunk, now_ms=_now_ms()))
        except Exception as exc:
            logger.exception("%s: building the requests of integration %s failed", platform.kind, integration.id)
            readable = [d for ds in by_event.values() for d in ds]
            failed = self._settle(readable, "failed", f"cannot build the request: {exc}", kind=integration.kind)
            return settlements + failed
        carried = {event_id for request in requests for event_id in request.event_ids}
        skipped = [d for event_id, ds in by_event.items() if event_id not in carried for d in ds]
        settlements += self._settle(skipped, "skipped", None, kind=integration.kind)
        limit = anyio.Semaphore(CONCURRENT_REQUESTS)

        async def one(request: OutgoingRequest) -> None:
            async with limit:
                verdict = await self.send(platform, request)
            carried_deliveries = [d for event_id in request.event_ids for d in by_event.get(event_id, ())]
            settlements.extend(self._judged(integration.kind, carried_deliveries, verdict))

        async with anyio.create_task_group() as tg:
            for request in requests:
                tg.start_soon(one, request)
        return settlements

    def _judged(self, kind: str, deliveries: Sequence[Delivery], verdict: Verdict) -> list[Settlement]:
        error = None if verdict.error is None else verdict.error[:MAX_ERROR_CHARS]
        if verdict.outcome is Outcome.DELIVERED:
            return self._settle(deliveries, "sent", None, kind=kind)
        if verdict.outcome is Outcome.FAILED:
            return self._settle(deliveries, "failed", error or "refused by the platform", kind=kind)
        now = _now_ms()
        out: list[Settlement] = []
        for delivery in deliveries:
            if delivery.attempts >= self.policy.max_attempts:
                dead_error = f"gave up after {delivery.attempts} tries: {error or 'retry'}"[:MAX_ERROR_CHARS]
                out += self._settle([delivery], "dead", dead_error, kind=kind)
                continue
            due = now + int(self.policy.delay_s(delivery.attempts, verdict.retry_after_s) * 1000)
            out.append(Settlement(delivery.seq, delivery.integration_id, "pending", due, error or "retry"))
        self.stats.record(kind, "retry", sum(s.status == "pending" for s in out))
        return out

    def _settle(
        self, deliveries: Sequence[Delivery], status: DeliveryStatus, error: str | None, *, kind: str
    ) -> list[Settlement]:
        now = _now_ms()
        sent = status == "sent"
        out = [
            Settlement(d.seq, d.integration_id, status, now, error, latency_ms=now - d.created_at_ms if sent else None)
            for d in deliveries
        ]
        latencies = [s.latency_ms for s in out if s.latency_ms is not None]
        self.stats.record(kind, status, len(out), latencies)
        return out
