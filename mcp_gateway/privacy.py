"""Hashing personal data before it is stored or sent: sensitive keys, emails, phones, client IPs.

A value under a sensitive key is replaced by `sha256:<hex>` of its normalised form (emails
lower-cased and trimmed, phones reduced to `+` and digits), so equal inputs still match without
the raw value ever being kept. A key is sensitive when its words (snake, kebab or camelCase) end
with a listed term: `email`, `userEmail` and `contact-email` all are; `max_tokens` is not.
Already-hashed values pass through unchanged, so redacting twice is harmless.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
from collections.abc import Collection
from typing import Any, Final

DEFAULT_SENSITIVE_KEYS: Final = frozenset(
    {
        "email",
        "phone",
        "phone_number",
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "ssn",
        "credit_card",
        "card_number",
    }
)
HASH_PREFIX: Final = "sha256:"

_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _key_words(key: str) -> list[str]:
    return [word.lower() for word in _WORDS.findall(key)]


def is_sensitive(key: str, terms: Collection[str] = DEFAULT_SENSITIVE_KEYS) -> bool:
    words = _key_words(key)
    return any("_".join(words[start:]) in terms for start in range(len(words)))


def normalise(key: str, value: str) -> str:
    value = value.strip()
    words = _key_words(key)
    if "email" in words:
        return value.lower()
    if "phone" in words:
        digits = re.sub(r"\D", "", value)
        return "+" + digits if digits else value
    return value


def hash_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if text.startswith(HASH_PREFIX):
        return text
    return HASH_PREFIX + hashlib.sha256(normalise(key, text).encode()).hexdigest()


def redact(value: Any, terms: Collection[str] = DEFAULT_SENSITIVE_KEYS) -> Any:
    """A copy of `value` with every value under a sensitive key hashed, at any depth."""
    if isinstance(value, dict):
        return {
            key: (
                hash_value(key, item)
                if item is not None and isinstance(key, str) and is_sensitive(key, terms)
                else redact(item, terms)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, terms) for item in value]
    return value


def redact_json_text(text: str | None, terms: Collection[str] = DEFAULT_SENSITIVE_KEYS) -> str | None:
    """`redact` applied to a JSON document held as text; text that is not JSON is left as it is."""
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if not isinstance(parsed, dict | list):
        return text
    redacted = redact(parsed, terms)
    return text if redacted == parsed else json.dumps(redacted, separators=(",", ":"))


class IpHasher:
    """Client IPs as a daily-salted HMAC: stable within a UTC day (for unique counts), unlinkable across days.

    The secret is the server's own, loaded from the store at start (`use`); until then nothing is hashed.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret

    def use(self, secret: bytes) -> None:
        self._secret = secret

    def __call__(self, ip: str, day: datetime.date | None = None) -> str | None:
        if not ip:
            return None
        if self._secret is None:
            raise RuntimeError("IpHasher has no secret yet")
        day = day or datetime.datetime.now(datetime.UTC).date()
        return hmac.new(self._secret, f"{day.isoformat()}|{ip}".encode(), hashlib.sha256).hexdigest()[:32]
