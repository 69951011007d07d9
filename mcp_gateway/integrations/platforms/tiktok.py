"""TikTok Events API 2.0: ``POST {endpoint}/open_api/v1.3/event/track/`` with an ``Access-Token`` header.

Chosen over LinkedIn's Conversions API because it has the same shape as Meta's (one pixel, standard event
names, hashed email/phone/external id, unhashed IP and user agent, ``event_id`` dedup with the browser pixel),
so it reuses what ingest stores; LinkedIn needs a conversion rule URN created per event in Campaign Manager and
a versioned ``LinkedIn-Version`` header, and matches on email only (plus its own first-party cookie).

Reference (the rules below come from these pages):

- https://business-api.tiktok.com/portal/docs?id=1771100865818625 (Events API for Web: ``event_source: "web"``,
  ``event_source_id`` the pixel code, ``test_event_code``, ``data[]`` with ``event``, ``event_time`` in Unix
  seconds, ``event_id``, ``user`` {``email``, ``phone``, ``external_id`` SHA-256; ``ip``, ``user_agent``},
  ``page`` {``url``}, ``properties``; up to 1,000 events a request);
- https://github.com/tiktok/gtm-template-eapi ``template.js`` (TikTok's own server-side template: its map from
  standard names to TikTok's, ``Pageview``, ``CompletePayment``, ...; email and phone trimmed, lower-cased, SHA-256);
- the Business API return codes linked from the page above (the HTTP status is 200 and the body's ``code`` is 0 on
  success; ``40100`` is the rate limit, ``5xxxx`` are server errors): our reading, not checked against a live API.

Not sent: ``ttp`` and ``ttclid`` (TikTok's cookie and click id), which ingest does not capture yet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.integrations.platforms import _common
from mcp_gateway.integrations.platforms.base import ForwardedEvent, Outcome, OutgoingRequest, Verdict
from mcp_gateway.vocabulary import BOOK_DEMO, PAGE_VIEW

DEFAULT_ENDPOINT: Final = "https://business-api.tiktok.com"
PATH: Final = "/open_api/v1.3/event/track/"
MAX_BATCH: Final = 1000
RETRY_CODES: Final = frozenset({40100, 40133, 40200, 40201, 40202, 50000, 50001, 50002})
"""Rate limits (401xx/402xx "too many requests", "task busy") and server errors: try again later."""
DEFAULT_MAP: Final[Mapping[str, str]] = {
    PAGE_VIEW: "Pageview",
    "$pageview": "Pageview",
    "ViewContent": "ViewContent",
    "Search": "Search",
    "AddToCart": "AddToCart",
    "AddToWishlist": "AddToWishlist",
    "InitiateCheckout": "InitiateCheckout",
    "AddPaymentInfo": "AddPaymentInfo",
    "Purchase": "CompletePayment",
    "Lead": "SubmitForm",
    "$lead": "SubmitForm",
    BOOK_DEMO: "SubmitForm",
    "CompleteRegistration": "CompleteRegistration",
    "Contact": "Contact",
    "Subscribe": "Subscribe",
}
"""Our (Meta's) standard names to TikTok's standard events, as TikTok's own server-side GTM template maps them."""

_PIXEL_CODE: Final = re.compile(r"[A-Z0-9]{8,32}")
_HASH: Final = re.compile(r"[0-9a-f]{64}")


class TikTokPlatform:
    kind: str = "tiktok"
    max_batch: int = MAX_BATCH
    secret_fields: frozenset[str] = frozenset({"access_token"})

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        allowed = frozenset({"pixel_code", "access_token", "test_event_code"})
        checked = _common.check_common(config, allowed=allowed, default_endpoint=DEFAULT_ENDPOINT)
        pixel_code = config.get("pixel_code")
        if not isinstance(pixel_code, str) or not _PIXEL_CODE.fullmatch(pixel_code):
            raise InvalidInputError("pixel_code is the TikTok pixel's code (capitals and digits)", field="pixel_code")
        checked |= {
            "pixel_code": pixel_code,
            "access_token": _common.check_text(config, "access_token"),
            "test_event_code": _common.check_text(config, "test_event_code", required=False, max_chars=64),
        }
        return checked

    def build_requests(
        self, config: Mapping[str, Any], events: Sequence[ForwardedEvent], *, now_ms: int
    ) -> list[OutgoingRequest]:
        chosen = _common.select(config, events, DEFAULT_MAP)
        requests = []
        for batch in _common.chunks(chosen, MAX_BATCH):
            body: dict[str, Any] = {
                "event_source": "web",
                "event_source_id": config["pixel_code"],
                "data": [web_event(name, event) for name, event in batch],
            }
            if config.get("test_event_code"):
                body["test_event_code"] = config["test_event_code"]
            requests.append(
                OutgoingRequest(
                    method="POST",
                    url=config["endpoint"] + PATH,
                    headers={"Content-Type": "application/json", "Access-Token": config["access_token"]},
                    body=_common.dumps(body),
                    event_ids=tuple(event.event_id for _, event in batch),
                )
            )
        return requests

    def judge(self, status: int, body: bytes, headers: Mapping[str, str]) -> Verdict:
        verdict = _common.judge_http(status, body, headers)
        if verdict is not None:
            return verdict
        answer = _common.loads(body)
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(code, int) or isinstance(code, bool):
            return Verdict(
                Outcome.RETRY, _common.excerpt("TikTok answered without a return code: " + _common.excerpt(body))
            )
        if code == 0:
            return Verdict(Outcome.DELIVERED)
        message = _common.excerpt(
            f"TikTok code {code}: {answer.get('message', '')} (request_id {answer.get('request_id', '-')})"
        )
        if code in RETRY_CODES or code >= 50000:
            return Verdict(Outcome.RETRY, message, _common.retry_after(headers))
        return Verdict(Outcome.FAILED, message)


def web_event(name: str, event: ForwardedEvent) -> dict[str, Any]:
    """One element of ``data``: TikTok's web event for ``event`` under the name ``name``."""
    user: dict[str, Any] = {}
    for ours, theirs in (("em", "email"), ("ph", "phone"), ("external_id", "external_id")):
        value = getattr(event.user, ours)
        if value is not None and _HASH.fullmatch(value):
            user[theirs] = value
    if event.user.client_ip_address:
        user["ip"] = event.user.client_ip_address
    if event.user.client_user_agent:
        user["user_agent"] = event.user.client_user_agent
    data: dict[str, Any] = {
        "event": name,
        "event_time": event.event_time_ms // 1000,
        "event_id": event.event_id,
        "user": user,
        "properties": dict(event.custom_data),
    }
    if event.event_source_url:
        data["page"] = {"url": event.event_source_url}
    return data


TIKTOK: Final = TikTokPlatform()
