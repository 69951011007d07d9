"""A generic webhook: our events as JSON, signed the Standard Webhooks way (what Svix sends).

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

- ``webhook-id``: ``msg_`` + a digest of the event ids the message carries: the same on every retry, so a
  receiver drops duplicates by it (and by each event's ``event_id``);
- ``webhook-timestamp``: Unix seconds of this attempt (fresh on each retry, so ``build_requests`` is called per
  attempt; a stored request would go stale against the receiver's tolerance);
- ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"`` with the
  secret's bytes (``whsec_`` + base64 of 24 to 64 random bytes). Stripe signs ``"{timestamp}.{body}"``; the
  standard adds the id so a signature cannot be replayed under another message id.

The body is ``{"type": "events.forwarded", "timestamp": ISO 8601, "data": [event, ...]}``, each event our
:class:`ForwardedEvent` field for field (``event_name`` after the integration's map). A receiver checks a request
with :func:`verify_webhook`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.integrations.platforms import _common
from mcp_gateway.integrations.platforms.base import ForwardedEvent, Outcome, OutgoingRequest, Verdict

MAX_BATCH: Final = 100
SECRET_PREFIX: Final = "whsec_"
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
DEFAULT_TOLERANCE_S: Final = 300
"""How far a receiver lets ``webhook-timestamp`` stray from its clock (the spec's suggested five minutes)."""
EVENT_TYPE: Final = "events.forwarded"

_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,256}")


class WebhookVerificationError(ValueError):
    """A webhook request is not authentic, or too old or too new to accept."""


def new_secret() -> str:
    """A fresh signing secret in the standard's ``whsec_`` form (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_...`` secret; raises ``ValueError`` for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing secret is 'whsec_' + base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a signing secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (one ``v1,`` signature) for a message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now_s: float | None = None,
) -> str:
    """Check a received webhook; returns its ``webhook-id``, raises :class:`WebhookVerificationError`.

    The timestamp must be within ``tolerance_s`` of now (either way), so a captured request cannot be replayed
    later; within the window, drop repeats by the returned id. Any of the space-separated ``v1,`` signatures may
    match (the sender signs with each secret while rotating); comparisons are constant-time.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    message_id = lowered.get("webhook-id", "")
    raw_timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not _ID.fullmatch(message_id) or not raw_timestamp.isascii() or not raw_timestamp.isdigit() or not signatures:
        raise WebhookVerificationError("missing or malformed webhook-id, webhook-timestamp or webhook-signature")
    timestamp = int(raw_timestamp)
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance: a replay, or a skewed clock")
    try:
        expected = sign(secret, message_id, timestamp, body).encode()
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    for candidate in signatures.split(" "):
        if hmac.compare_digest(candidate.encode(), expected):
            return message_id
    raise WebhookVerificationError("no signature matches")


class WebhookPlatform:
    kind: str = "webhook"
    max_batch: int = MAX_BATCH
    secret_fields: frozenset[str] = frozenset({"secret"})

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = _common.check_common(config, allowed=frozenset({"url", "secret"}), default_endpoint=None)
        secret = config.get("secret")
        try:
            secret_bytes(secret if isinstance(secret, str) else "")
        except ValueError as exc:
            raise InvalidInputError(f"secret: {exc} (see `new_secret`)", field="secret") from exc
        checked |= {"url": _common.check_url(config.get("url"), "url", query=True), "secret": secret}
        return checked

    def build_requests(
        self, config: Mapping[str, Any], events: Sequence[ForwardedEvent], *, now_ms: int
    ) -> list[OutgoingRequest]:
        chosen = _common.select(config, events, {})
        timestamp = now_ms // 1000
        requests = []
        for batch in _common.chunks(chosen, MAX_BATCH):
            event_ids = tuple(event.event_id for _, event in batch)
            message_id = "msg_" + hashlib.sha256("\n".join(event_ids).encode()).hexdigest()[:32]
            body = _common.dumps(
                {
                    "type": EVENT_TYPE,
                    "timestamp": datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(),
                    "data": [as_json(name, event) for name, event in batch],
                }
            )
            headers = {
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(config["secret"], message_id, timestamp, body),
            }
            requests.append(OutgoingRequest("POST", config["url"], headers, body, event_ids))
        return requests

    def judge(self, status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
        if 300 <= status < 400:
            return Verdict(Outcome.FAILED, f"HTTP {status}: redirects are not followed; configure the final URL")
        return _common.judge_http(status, body, headers) or Verdict(Outcome.DELIVERED)


def as_json(name: str, event: ForwardedEvent) -> dict[str, Any]:
    fields = dataclasses.asdict(event)
    fields["event_name"] = name
    fields["custom_data"] = dict(event.custom_data)
    fields["user"] = {key: value for key, value in fields["user"].items() if value is not None}
    return fields


WEBHOOK: Final = WebhookPlatform()
