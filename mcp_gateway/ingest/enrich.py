"""What the server adds to every web and server event before it is stored.

- **Identities**: `email`, `phone` and `external_id` are normalised (trimmed; email and
  external_id lower-cased; phone reduced to its E.164 digits without leading zeros, as Meta wants) and
  stored only as SHA-256 hex.
- **Match quality** (EMQ): the sum of the seed's points for the identifiers present — email 2.5,
  phone 2.0, fbp 1.5, fbc 1.5, external_id 1.0, client IP 0.5, user agent 0.3 (at most 9.3).
- **Device**: device type, browser and OS from the User-Agent (the maintained `ua-parser`).
- **Attribution**: source / medium / campaign from the landing URL and referrer, by the first
  rule of `TRAFFIC_RULES` that matches; the rule's id and its confidence (high, medium, low) are
  stored with the result (seed 004's `source_rule_id` and `source_confidence`).
- **IP**: only the daily-salted HMAC (`privacy.IpHasher`) is kept, with the country (`geo`) and the cloud
  provider whose ranges hold it (`ipkind`), both derived before the address is hashed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

import ua_parser

from ..pii import external_id_hash

MATCH_POINTS: Final = {
    "email": 2.5,
    "phone": 2.0,
    "fbp": 1.5,
    "fbc": 1.5,
    "external_id": 1.0,
    "client_ip_address": 0.5,
    "client_user_agent": 0.3,
}
"""Event match quality points per identifier present (seed 000's user object table)."""


_NOT_DIGIT: Final = re.compile(r"[^0-9]")
"""Everything but ASCII digits (``\\D`` would keep other scripts' digits, which Meta's rule does not)."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_email(email: str | None) -> str | None:
    email = (email or "").strip().lower()
    return sha256_hex(email) if email else None


def hash_phone(phone: str | None) -> str | None:
    """SHA-256 hex of the phone as Meta normalises it: ASCII digits only, leading zeros removed.

    ``+44 20 7946 0958`` and ``0044 20 7946 0958`` (an international call prefix) are the same number, ``442079460958``.
    The country code must be in the input: a national number (``020 ...``) cannot be completed here.
    """
    digits = _NOT_DIGIT.sub("", phone or "").lstrip("0")
    return sha256_hex(digits) if digits else None


def hash_external_id(external_id: str | None) -> str | None:
    return external_id_hash(external_id)


def match_quality(present: set[str]) -> float:
    return round(sum(points for name, points in MATCH_POINTS.items() if name in present), 2)


# -- attribution -------------------------------------------------------------------------------------

SEARCH_ENGINES: Final = {
    "google": "google",
    "bing": "bing",
    "duckduckgo": "duckduckgo",
    "yahoo": "yahoo",
    "baidu": "baidu",
    "yandex": "yandex",
    "ecosia": "ecosia",
}
SOCIAL_SITES: Final = {
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "instagram.com": "instagram",
    "t.co": "twitter",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "linkedin.com": "linkedin",
    "lnkd.in": "linkedin",
    "reddit.com": "reddit",
    "youtube.com": "youtube",
    "tiktok.com": "tiktok",
    "news.ycombinator.com": "hackernews",
}
AI_ASSISTANTS: Final = {
    "chatgpt.com": "chatgpt",
    "chat.openai.com": "chatgpt",
    "perplexity.ai": "perplexity",
    "claude.ai": "claude",
    "gemini.google.com": "gemini",
    "copilot.microsoft.com": "copilot",
}

Confidence = Literal["high", "medium", "low"]
"""How sure a classification is (seed 004's `source_confidence`): a signal for downstream filters."""

TRAFFIC_RULES: Final[tuple[tuple[str, Confidence, str], ...]] = (
    ("gclid", "high", "a gclid in the URL: google / cpc"),
    ("msclkid", "high", "an msclkid in the URL: bing / cpc"),
    ("utm", "high", "utm_source in the URL: utm_source / utm_medium (or 'referral') / utm_campaign"),
    ("fbclid_redirect", "high", "an fbclid without utm_*, through Facebook's link redirect: facebook / paid_social"),
    ("fbclid", "medium", "an fbclid without utm_*, from anywhere else: facebook / paid_social"),
    ("ai", "medium", "referrer is an AI assistant (chatgpt.com, perplexity.ai, claude.ai, ...): name / ai"),
    ("search", "medium", "referrer is a search engine: engine / organic"),
    ("social", "medium", "referrer is a social site: site / social"),
    ("internal", "low", "referrer on the same host as the URL: (internal) / (none)"),
    ("referral", "low", "any other referrer: its host / referral"),
    ("direct", "low", "no referrer and no campaign parameters: (direct) / (none)"),
)
"""The attribution rules, in the order they are tried, with their confidence; the first that matches wins. Its id
is stored as the event's `traffic_rule` (seed 004's `source_rule_id`), its confidence as `traffic_confidence`."""

RULE_CONFIDENCE: Final[dict[str, Confidence]] = {rule: confidence for rule, confidence, _ in TRAFFIC_RULES}


@dataclass(frozen=True, slots=True)
class Traffic:
    source: str
    medium: str
    campaign: str | None
    rule: str

    @property
    def confidence(self) -> Confidence:
        """The confidence of the rule that fired."""
        return RULE_CONFIDENCE[self.rule]


def _host(url: str | None) -> str:
    try:
        host = urlsplit(url or "").hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.").removeprefix("m.").removeprefix("l.").removeprefix("lm.")


def _site(host: str, table: dict[str, str]) -> str | None:
    for domain, name in table.items():
        if host == domain or host.endswith("." + domain):
            return name
    return None


def classify_traffic(url: str | None, referrer: str | None) -> Traffic:
    try:
        params = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url or "").query).items() if v}
    except ValueError:
        params = {}
    campaign = params.get("utm_campaign")
    if "gclid" in params:
        return Traffic("google", "cpc", campaign, "gclid")
    if "msclkid" in params:
        return Traffic("bing", "cpc", campaign, "msclkid")
    if "utm_source" in params:
        return Traffic(params["utm_source"].lower(), params.get("utm_medium", "referral").lower(), campaign, "utm")
    ref_host = _host(referrer)
    if "fbclid" in params:
        rule = "fbclid_redirect" if _site(ref_host, {"facebook.com": "facebook"}) else "fbclid"
        return Traffic("facebook", "paid_social", campaign, rule)
    if ref_host:
        if name := _site(ref_host, AI_ASSISTANTS):
            return Traffic(name, "ai", None, "ai")
        engine = next((name for key, name in SEARCH_ENGINES.items() if re.search(rf"(^|\.){key}\.", ref_host)), None)
        if engine:
            return Traffic(engine, "organic", None, "search")
        if name := _site(ref_host, SOCIAL_SITES):
            return Traffic(name, "social", None, "social")
        if ref_host == _host(url):
            return Traffic("(internal)", "(none)", None, "internal")
        return Traffic(ref_host, "referral", None, "referral")
    return Traffic("(direct)", "(none)", None, "direct")


# -- device ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    type: str | None
    browser: str | None
    os: str | None


def parse_user_agent(user_agent: str | None) -> Device:
    if not user_agent:
        return Device(None, None, None)
    parsed = ua_parser.parse(user_agent[:1000])
    browser = parsed.user_agent.family if parsed.user_agent else None
    os_family = parsed.os.family if parsed.os else None
    device = parsed.device.family if parsed.device else ""
    lowered = user_agent.lower()
    if device == "Spider" or "bot" in lowered or "crawler" in lowered:
        kind = "bot"
    elif "ipad" in lowered or "tablet" in lowered or (os_family == "Android" and "mobile" not in lowered):
        kind = "tablet"
    elif os_family in ("iOS", "Android") or "mobile" in lowered:
        kind = "mobile"
    else:
        kind = "desktop"
    return Device(kind, None if browser == "Other" else browser, None if os_family == "Other" else os_family)
