"""The interface between the platform adapters and the delivery outbox.

An adapter turns our events into the platform's HTTP requests (``build_requests``) and reads
the platform's answer into a :class:`Verdict` (``judge``). It does no I/O: the outbox worker
sends the requests, so retries, batching across time and durability live in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ForwardedUser:
    """Who did it, already hashed: raw identifiers are never kept for forwarding."""

    em: str | None = None  # SHA-256 hex of the normalised email (Meta's rule: trim, lowercase)
    ph: str | None = None  # SHA-256 hex of the normalised phone (digits only, with country code)
    external_id: str | None = None  # SHA-256 hex of the normalised external id
    fbp: str | None = None
    fbc: str | None = None
    client_ip_address: str | None = None  # only ever from the request in flight (synchronous forwarding); never stored
    client_user_agent: str | None = None
    client_id: str | None = None  # GA4 client_id / visitor id (not PII: our visitor id)


@dataclass(frozen=True)
class ForwardedEvent:
    """One of our events on its way out."""

    event_id: str  # stable; sent for dedup (Meta event_id, GA4 none, webhook id)
    event_name: str  # OUR name; the platform maps it with the integration's mapping
    event_time_ms: int
    action_source: str  # "website" | "app" | "system_generated" | ...
    event_source_url: str | None
    user: ForwardedUser
    custom_data: Mapping[str, Any]  # already redacted like everything we store
    gateway_id: str


@dataclass(frozen=True)
class OutgoingRequest:
    """One HTTP request for the worker to send."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    event_ids: tuple[str, ...]  # the events this request carries


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # 5xx, 429, timeout: try again later (retry_after_s if the platform said)
    FAILED = "failed"  # 4xx other than 429: permanent, keep the platform's error


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    error: str | None = None  # the platform's error message/body (truncated), for the admin API
    retry_after_s: float | None = None


class Platform(Protocol):
    """One destination kind. Implementations are stateless singletons in ``PLATFORMS``."""

    kind: str  # "meta" | "ga4" | "tiktok" | "webhook"
    max_batch: int  # events per request (Meta 1000, GA4 25, ...)
    secret_fields: frozenset[str]  # config keys that are secrets (access_token, api_secret, signing secret...)

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config validated and normalised; raises ``InvalidInputError(field=...)``."""
        ...

    def build_requests(
        self, config: Mapping[str, Any], events: Sequence[ForwardedEvent], *, now_ms: int
    ) -> list[OutgoingRequest]:
        """The requests carrying ``events`` (mapped and filtered by the config), at most ``max_batch`` each."""
        ...

    def judge(self, status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
        """What the platform's answer means for the events the request carried."""
        ...
