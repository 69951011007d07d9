"""Meta Conversions API: ``POST {endpoint}/{api_version}/{pixel_id}/events``.

Reference (the rules below come from these pages):

- payload and limits: https://developers.facebook.com/docs/marketing-api/conversions-api/using-the-api
  (``data`` holds at most 1,000 events; ``access_token`` and ``test_event_code`` sit beside it);
- server event fields: https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event
  (``event_time`` is a Unix time in seconds, at most 7 days old; ``action_source`` from a fixed list);
- https://developers.facebook.com/docs/marketing-api/conversions-api/parameters (``website`` events require
  ``client_user_agent``, ``action_source`` and ``event_source_url``);
- user data: https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
  (``em``/``ph``/``external_id`` SHA-256 hex, lists allowed; ``fbp``, ``fbc``, ``client_ip_address``,
  ``client_user_agent`` unhashed);
- errors: https://developers.facebook.com/docs/graph-api/guides/error-handling and
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting (codes 4, 17, 32, 613 are throttling;
  ``is_transient`` marks a temporary failure).

Meta answers a request as a whole (one error, or a count of events received), and refuses all of it for one
event older than 7 days or without any customer information. Such events (:func:`refusal`) travel in requests
of their own, one group per reason: Meta's answer fails them with Meta's own error, and cannot sink the rest.
``website`` events should carry ``event_source_url`` and ``client_user_agent`` (Meta's parameters page calls
them required; Meta still takes the event, but may not use it for optimisation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.integrations.platforms import _common
from mcp_gateway.integrations.platforms.base import ForwardedEvent, Outcome, OutgoingRequest, Verdict
from mcp_gateway.vocabulary import BOOK_DEMO, PAGE_VIEW, STANDARD_EVENTS

DEFAULT_ENDPOINT: Final = "https://graph.facebook.com"
DEFAULT_API_VERSION: Final = "v21.0"
MAX_BATCH: Final = 1000
MAX_AGE_S: Final = 7 * 24 * 3600
"""Meta refuses events older than seven days."""
ACTION_SOURCES: Final = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
THROTTLING_CODES: Final = frozenset({4, 17, 32, 613})
"""Graph API rate-limit error codes: the request may be retried later."""
TRANSIENT_CODES: Final = frozenset({1, 2})
"""Unknown error / service temporarily unavailable."""
DEFAULT_MAP: Final[Mapping[str, str]] = {
    **{name: name for name in STANDARD_EVENTS},
    "page_view": PAGE_VIEW,
    "$pageview": PAGE_VIEW,
    "$lead": "Lead",
    BOOK_DEMO: "Lead",
}
"""Our names are Meta's standard events already (seed 000); a captured lead (``$lead``) and an agent's booked demo
(``book_demo``, `store.outbox.is_agent_lead`) are a ``Lead``."""

_PIXEL_ID: Final = re.compile(r"[0-9]{1,32}")
_API_VERSION: Final = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")
_HASH: Final = re.compile(r"[0-9a-f]{64}")


class MetaPlatform:
    kind: str = "meta"
    max_batch: int = MAX_BATCH
    secret_fields: frozenset[str] = frozenset({"access_token"})

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        allowed = frozenset({"pixel_id", "access_token", "test_event_code", "api_version"})
        checked = _common.check_common(config, allowed=allowed, default_endpoint=DEFAULT_ENDPOINT)
        pixel_id = config.get("pixel_id")
        if not isinstance(pixel_id, str) or not _PIXEL_ID.fullmatch(pixel_id):
            raise InvalidInputError(
                "pixel_id must be the pixel's (dataset's) numeric id, as a string", field="pixel_id"
            )
        api_version = config.get("api_version") or DEFAULT_API_VERSION
        if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
            raise InvalidInputError("api_version looks like 'v21.0'", field="api_version")
        checked |= {
            "pixel_id": pixel_id,
            "access_token": _common.check_text(config, "access_token"),
            "test_event_code": _common.check_text(config, "test_event_code", required=False, max_chars=64),
            "api_version": api_version,
        }
        return checked

    def build_requests(
        self, config: Mapping[str, Any], events: Sequence[ForwardedEvent], *, now_ms: int
    ) -> list[OutgoingRequest]:
        # Each event's `data` element is built once, here: its `user_data` also decides whether Meta would refuse it.
        by_refusal: dict[str | None, list[tuple[ForwardedEvent, dict[str, Any]]]] = {None: []}
        for name, event in _common.select(config, events, DEFAULT_MAP):
            element = server_event(name, event)
            by_refusal.setdefault(refusal(event, now_ms, element["user_data"]), []).append((event, element))
        url = "/".join((config["endpoint"], config["api_version"], quote(config["pixel_id"], safe=""), "events"))
        requests = []
        for batch in (batch for group in by_refusal.values() for batch in _common.chunks(group, MAX_BATCH)):
            body: dict[str, Any] = {"data": [element for _, element in batch]}
            body["access_token"] = config["access_token"]
            if config.get("test_event_code"):
                body["test_event_code"] = config["test_event_code"]
            requests.append(
                OutgoingRequest(
                    method="POST",
                    url=url,
                    headers={"Content-Type": "application/json"},
                    body=_common.dumps(body),
                    event_ids=tuple(event.event_id for event, _ in batch),
                )
            )
        return requests

    def judge(self, status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
        answer = _common.loads(body)
        error = answer.get("error") if isinstance(answer, dict) else None
        if 200 <= status < 300 and not isinstance(error, dict):
            return Verdict(Outcome.DELIVERED)
        if not isinstance(error, dict):
            return _common.judge_http(status, body, headers) or Verdict(Outcome.FAILED, _common.excerpt(body))
        code = error.get("code")
        message = _common.excerpt(
            f"{error.get('type', 'Error')} {code}/{error.get('error_subcode', '-')}: "
            f"{error.get('error_user_msg') or error.get('message', '')} (fbtrace_id {error.get('fbtrace_id', '-')})"
        )
        transient = isinstance(code, int) and code in THROTTLING_CODES | TRANSIENT_CODES
        if status == 429 or status >= 500 or transient or error.get("is_transient") is True:
            return Verdict(Outcome.RETRY, message, _common.retry_after(headers))
        return Verdict(Outcome.FAILED, message)


def refusal(event: ForwardedEvent, now_ms: int, data: Mapping[str, Any] | None = None) -> str | None:
    """Why Meta would refuse ``event`` and with it the whole request that carries it, or None.

    The server-event page: "If any event_time in data is greater than 7 days in the past, we return an error for
    the entire request and process no events." The customer-information page: "You must provide at least one of
    the following user_data parameters" (an anonymous visitor's event forwarded later has none). ``data`` is the
    event's ``user_data`` when the caller has built it already. A user agent alone (the one every browser event
    keeps) does not count: Meta's valid combinations since Graph API v13 pair it with the client IP.
    """
    if event.event_time_ms < now_ms - MAX_AGE_S * 1000:
        return "event_time is more than 7 days old"
    if not set(user_data(event) if data is None else data) - {"client_user_agent"}:
        return "no customer information parameter"
    return None


def user_data(event: ForwardedEvent) -> dict[str, Any]:
    """Meta's ``user_data``: ``em``, ``ph`` and ``external_id`` as lists of SHA-256 hex, the rest unhashed."""
    user = event.user
    data: dict[str, Any] = {}
    for key in ("em", "ph", "external_id"):
        value = getattr(user, key)
        if value is not None and _HASH.fullmatch(value):
            data[key] = [value]
    for key in ("fbp", "fbc", "client_ip_address", "client_user_agent"):
        value = getattr(user, key)
        if value:
            data[key] = value
    return data


def server_event(name: str, event: ForwardedEvent) -> dict[str, Any]:
    """One element of ``data``: Meta's server event for ``event`` under the name ``name``."""
    action_source = event.action_source if event.action_source in ACTION_SOURCES else "other"
    data: dict[str, Any] = {
        "event_name": name,
        "event_time": event.event_time_ms // 1000,
        "event_id": event.event_id,
        "action_source": action_source,
        "user_data": user_data(event),
    }
    if event.event_source_url:
        data["event_source_url"] = event.event_source_url
    if event.custom_data:
        data["custom_data"] = dict(event.custom_data)
    return data


META: Final = MetaPlatform()
