"""Google Analytics 4 Measurement Protocol: ``POST {endpoint}/mp/collect?measurement_id=&api_secret=``.

GA4 answers 2xx even for a payload it drops, so the rules it documents are checked here, before sending:

- an event whose name GA4 refuses (after the map; unmapped names are snake_cased) or that has no ``client_id``
  is sent alone to the validation server, ``/debug/mp/collect``, which records nothing and names the problem
  in ``validationMessages``: ``judge`` fails it with GA4's own words, and the rest of the batch is delivered;
- an event older than 72 hours is not sent (GA4 would drop it without a word) and is logged;
- parameters GA4 refuses (bad or reserved names, nested objects) are left out and long values cut.

With ``debug`` on, every request goes to ``/debug/mp/collect``: nothing is recorded, each request is judged.

Reference (the rules below come from these pages):

- https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference (body: ``client_id``,
  ``user_id``, ``timestamp_micros``, ``events[]`` of ``{name, params}``; at most 25 events a request;
  ``timestamp_micros`` at most 72 hours in the past);
- https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events#limitations (names:
  at most 40 characters, letters, digits and underscores, starting with a letter; at most 25 parameters an
  event; parameter values at most 100 characters, ``page_location`` 1,000; reserved names and prefixes);
- https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events (the debug
  endpoint and its ``validationMessages``: ``fieldPath``, ``description``, ``validationCode``);
- https://developers.google.com/analytics/devguides/collection/ga4/reference/events (recommended event names).

GA4 takes no identifiers but ``client_id`` (our visitor id, or one derived from the hashed external id for a
server's event without a visitor: :func:`client_id_of`) and ``user_id`` (we send the hashed external id):
hashed email and phone go only through Google's user-provided-data feature, which we do not use.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.integrations.platforms import _common
from mcp_gateway.integrations.platforms.base import ForwardedEvent, ForwardedUser, Outcome, OutgoingRequest, Verdict
from mcp_gateway.vocabulary import BOOK_DEMO, PAGE_VIEW

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT: Final = "https://www.google-analytics.com"
MAX_BATCH: Final = 25
MAX_AGE_US: Final = 72 * 3600 * 1_000_000
MAX_NAME_CHARS: Final = 40
MAX_PARAMS: Final = 25
MAX_VALUE_CHARS: Final = 100
LONG_VALUE_CHARS: Final[Mapping[str, int]] = {"page_location": 1000, "page_referrer": 420, "page_title": 300}
RESERVED_EVENT_NAMES: Final = frozenset(
    {
        "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure", "app_background",
        "app_clear_data", "app_exception", "app_remove", "app_store_refund", "app_store_subscription_cancel",
        "app_store_subscription_convert", "app_store_subscription_renew", "app_update", "app_upgrade",
        "dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error", "firebase_campaign",
        "firebase_in_app_message_action", "firebase_in_app_message_dismiss", "firebase_in_app_message_impression",
        "first_open", "first_visit", "in_app_purchase", "notification_dismiss", "notification_foreground",
        "notification_open", "notification_receive", "notification_send", "os_update", "session_start",
        "screen_view", "user_engagement",
    }
)  # fmt: skip
"""Event names GA4 keeps for itself (sending-events#reserved_names)."""
RESERVED_PREFIXES: Final = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_PARAM_NAMES: Final = frozenset({"firebase_conversion"})
DEFAULT_MAP: Final[Mapping[str, str]] = {
    PAGE_VIEW: "page_view",
    "$pageview": "page_view",
    "ViewContent": "view_item",
    "Search": "search",
    "AddToCart": "add_to_cart",
    "AddToWishlist": "add_to_wishlist",
    "InitiateCheckout": "begin_checkout",
    "AddPaymentInfo": "add_payment_info",
    "Purchase": "purchase",
    "Lead": "generate_lead",
    "$lead": "generate_lead",
    BOOK_DEMO: "generate_lead",
    "CompleteRegistration": "sign_up",
}
"""Our (Meta's) standard names to GA4's recommended events; others are snake_cased (``StartTrial``: ``start_trial``)."""

CLIENT_ID_SALT: Final = b"ga4-client-id:"
"""Prefix of the hash a derived ``client_id`` comes from (:func:`client_id_of`), so it is not the user id hash."""

_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_MEASUREMENT_ID: Final = re.compile(r"G-[A-Z0-9]{4,20}")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def name_problem(name: str) -> str | None:
    """Why GA4 would refuse ``name`` as an event name, or None."""
    if not _NAME.fullmatch(name):
        return "must be at most 40 letters, digits or underscores, starting with a letter"
    if name in RESERVED_EVENT_NAMES or name.startswith(RESERVED_PREFIXES):
        return "is reserved by Google Analytics"
    return None


def param_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name):
        return "must be at most 40 letters, digits or underscores, starting with a letter"
    if name in RESERVED_PARAM_NAMES or name.startswith(RESERVED_PREFIXES):
        return "is reserved by Google Analytics"
    return None


def client_id_of(user: ForwardedUser) -> str | None:
    """GA4's ``client_id``: our visitor id (``anonymous_id``) when the event has one; else, for a server's event
    about a known user, one derived from the user's hashed external id, the same for every event of that user:
    ``<a>.<b>``, the first two 32-bit words of SHA-256(``"ga4-client-id:"`` + the hash), in the shape of the
    ``_ga`` cookie's client ids (nothing in it reads back to the user). None when the event has neither."""
    if user.client_id:
        return user.client_id
    if not user.external_id:
        return None
    digest = hashlib.sha256(CLIENT_ID_SALT + user.external_id.encode()).digest()
    return f"{int.from_bytes(digest[:4], 'big')}.{int.from_bytes(digest[4:8], 'big')}"


def ga4_name(name: str, mapping: Mapping[str, str]) -> str:
    """The GA4 name of one of our events: the integration's map, the default map, else snake_case."""
    return mapping.get(name) or DEFAULT_MAP.get(name) or _CAMEL.sub("_", name).lower()


class Ga4Platform:
    kind: str = "ga4"
    max_batch: int = MAX_BATCH
    secret_fields: frozenset[str] = frozenset({"api_secret"})

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        allowed = frozenset({"measurement_id", "api_secret", "debug"})
        checked = _common.check_common(config, allowed=allowed, default_endpoint=DEFAULT_ENDPOINT)
        for theirs in checked["event_map"].values():
            problem = name_problem(theirs)
            if problem:
                raise InvalidInputError(f"event_map: GA4 event name {theirs!r} {problem}", field="event_map")
        measurement_id = config.get("measurement_id")
        if not isinstance(measurement_id, str) or not _MEASUREMENT_ID.fullmatch(measurement_id):
            raise InvalidInputError("measurement_id is a web stream's 'G-XXXXXXX' id", field="measurement_id")
        debug = config.get("debug")
        debug = False if debug is None else debug
        if not isinstance(debug, bool):
            raise InvalidInputError("debug must be true or false", field="debug")
        checked |= {
            "measurement_id": measurement_id,
            "api_secret": _common.check_text(config, "api_secret", max_chars=128),
            "debug": debug,
        }
        return checked

    def build_requests(
        self, config: Mapping[str, Any], events: Sequence[ForwardedEvent], *, now_ms: int
    ) -> list[OutgoingRequest]:
        mapping: Mapping[str, str] = config.get("event_map") or {}
        groups: dict[tuple[str, str | None], list[tuple[str, ForwardedEvent]]] = {}
        invalid: list[tuple[str, ForwardedEvent]] = []
        for _, event in _common.select(config, events, DEFAULT_MAP):
            name = ga4_name(event.event_name, mapping)
            if event.event_time_ms * 1000 < now_ms * 1000 - MAX_AGE_US:
                logger.warning("ga4: event %s is older than 72 hours; GA4 would drop it, not sent", event.event_id)
                continue
            client_id = client_id_of(event.user)
            if name_problem(name) or not client_id:
                invalid.append((name, event))
            else:
                groups.setdefault((client_id, event.user.external_id), []).append((name, event))
        query = "?" + urlencode({"measurement_id": config["measurement_id"], "api_secret": config["api_secret"]})
        url = config["endpoint"] + ("/debug/mp/collect" if config.get("debug") else "/mp/collect") + query
        requests = [
            _request(url, client_id, user_id, batch)
            for (client_id, user_id), named in groups.items()
            for batch in _common.chunks(named, MAX_BATCH)
        ]
        debug_url = config["endpoint"] + "/debug/mp/collect" + query
        requests += [_request(debug_url, client_id_of(event.user), event.user.external_id, [item]) for item in invalid]
        return requests

    def judge(self, status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
        verdict = _common.judge_http(status, body, headers)
        if verdict is not None:
            return verdict
        answer = _common.loads(body) if body.strip() else None
        messages = answer.get("validationMessages") if isinstance(answer, dict) else None
        if messages:
            return Verdict(Outcome.FAILED, _common.excerpt(_common.dumps(messages)))
        return Verdict(Outcome.DELIVERED)


def _request(
    url: str, client_id: str | None, user_id: str | None, batch: Sequence[tuple[str, ForwardedEvent]]
) -> OutgoingRequest:
    body: dict[str, Any] = {}
    if client_id:
        body["client_id"] = client_id
    if user_id:
        body["user_id"] = user_id
    body["timestamp_micros"] = min(event.event_time_ms for _, event in batch) * 1000
    body["events"] = [
        {"name": name, "timestamp_micros": event.event_time_ms * 1000, "params": params(event)} for name, event in batch
    ]
    return OutgoingRequest(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=_common.dumps(body),
        event_ids=tuple(event.event_id for _, event in batch),
    )


def params(event: ForwardedEvent) -> dict[str, Any]:
    """The event's parameters as GA4 accepts them: scalars (strings cut to GA4's lengths) and ``items``.

    Parameters GA4 would refuse (bad or reserved names, nested objects) are left out; at most 25 are kept, the
    page's URL first.
    """
    kept: dict[str, Any] = {}
    if event.event_source_url:
        kept["page_location"] = event.event_source_url[: LONG_VALUE_CHARS["page_location"]]
    for key, value in event.custom_data.items():
        if len(kept) >= MAX_PARAMS:
            break
        if key in kept or param_problem(key):
            continue
        if key == "items" and isinstance(value, list):
            kept[key] = [_scalars(item) for item in value[:200] if isinstance(item, Mapping)]
        elif _is_scalar(value):
            kept[key] = _cut(key, value)
    return kept


def _scalars(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _cut(key, value) for key, value in item.items() if not param_problem(key) and _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _cut(key: str, value: Any) -> Any:
    return value[: LONG_VALUE_CHARS.get(key, MAX_VALUE_CHARS)] if isinstance(value, str) else value


GA4: Final = Ga4Platform()
