"""Privacy: personal data is hashed before it leaves the wrapped process or lands in the store.

A key is sensitive when, lower-cased with `_` and `-` removed, it starts or ends with one of the
sensitive keys (normalised the same way): `email`, `user_email`, `userEmail`, `access_token`,
`X-Api-Key` and `passwordConfirmation` all match; `className` does not match `ssn`. Its value,
whatever its type, becomes `"sha256:" + hexdigest` of a normalised text: strings are trimmed
(and lower-cased under an email key), anything else is canonical JSON. The walk is recursive
through objects and arrays, and strings holding a JSON object or array are parsed, redacted and
re-encoded, so a tool's `content[].text` carrying JSON is covered too. `None` stays `None`.

Email addresses inside free text (a tool's confirmation message, say) are hashed in place too,
so an address never travels or lands raw even where no key names it.

The hash is unsalted so the same address maps to the same value across sessions and servers:
it is a pseudonym for counting and joining, not protection against someone who guesses the
input (phone numbers are guessable). Keys that should not leave at all belong in a tool's
design, not here.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

DEFAULT_SENSITIVE_KEYS: Final[frozenset[str]] = frozenset(
    {
        "email",
        "phone",
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "ssn",
        "credit_card",
        "card_number",
    }
)
"""Keys whose values are hashed, matched as a prefix or suffix of the normalised key."""

MAX_PAYLOAD_CHARS: Final = 16_384
"""Longest `args` / `result` string kept; longer ones are cut and marked."""

HASH_PREFIX: Final = "sha256:"
MAX_CACHED_KEYS: Final = 4096
"""Key names whose sensitivity a `Redactor` remembers (keys repeat: `content`, `text`, `type`, ...)."""
_HASHED: Final = re.compile(r"sha256:[0-9a-f]{64}")

MAX_DEPTH: Final = 32
"""Deepest nesting walked; anything below is replaced by `TOO_DEEP`."""

MAX_PARSE_CHARS: Final = 1_000_000
"""Longest JSON-looking string parsed for redaction; a longer one is replaced by a marker."""

TOO_DEEP: Final = "[omitted: nested too deep]"

EMAIL_IN_TEXT: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
"""What an email address inside free text looks like."""


def cap_text(value: str | None, limit: int = MAX_PAYLOAD_CHARS) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + f"…[truncated {len(value) - limit} chars]"


def _normalise_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def hash_text(text: str) -> str:
    """`"sha256:" + hexdigest` of `text` (UTF-8; a lone surrogate is hashed as its own three bytes)."""
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys; anything JSON cannot hold becomes its `str()`.

    Text holding a lone surrogate (a `"\\ud800"` escape parsed from JSON) cannot be stored as UTF-8,
    so such a document is written with every non-ASCII character escaped instead.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return text


class Redactor:
    """Hashes the values of sensitive keys, recursively, in anything JSON-shaped."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self._keys = tuple(sorted({_normalise_key(k) for k in sensitive_keys if k.strip()}))
        self._verdicts: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            norm = _normalise_key(key)
            verdict = any(norm.startswith(k) or norm.endswith(k) for k in self._keys)
            if len(self._verdicts) < MAX_CACHED_KEYS:
                self._verdicts[key] = verdict
        return verdict

    @staticmethod
    def hash_value(key: str, value: Any) -> str:
        """The pseudonym of `value` found under `key`; a pseudonym stays as it is, so redacting twice is harmless."""
        if isinstance(value, str) and _HASHED.fullmatch(value):
            return value
        if isinstance(value, str):
            text = value.strip()
            if "email" in _normalise_key(key):
                text = text.lower()
        else:
            text = canonical_json(value)
        return hash_text(text)

    def redact(self, value: Any, *, parse_strings: bool = True) -> Any:
        """A copy of `value` with every sensitive key's value hashed."""
        return self._walk(value, 0, parse_strings)

    def _walk(self, value: Any, depth: int, parse_strings: bool) -> Any:
        if depth > MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for raw_key, item in value.items():
                key = str(raw_key)
                if item is not None and self.is_sensitive(key):
                    out[key] = self.hash_value(key, item)
                else:
                    out[key] = self._walk(item, depth + 1, parse_strings)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, depth + 1, parse_strings) for item in value]
        if isinstance(value, str):
            text = self._redact_json_string(value, depth) if parse_strings else value
            return EMAIL_IN_TEXT.sub(lambda match: hash_text(match.group().lower()), text)
        return value

    def _redact_json_string(self, text: str, depth: int) -> str:
        stripped = text.lstrip()
        if not stripped.startswith(("{", "[")):
            return text
        if len(text) > MAX_PARSE_CHARS:
            # Too big to check, so it cannot be sent as it is.
            return f"[omitted: {len(text)} chars of JSON]"
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return text
        if not isinstance(parsed, dict | list):
            return text
        return canonical_json(self._walk(parsed, depth + 1, True))

    def to_json_text(self, value: Any, limit: int = MAX_PAYLOAD_CHARS) -> str:
        """`value` redacted, as compact JSON, capped at `limit` characters."""
        text = canonical_json(self.redact(value))
        capped = cap_text(text, limit)
        assert capped is not None
        return capped

    def redact_json_text(self, text: str | None) -> str | None:
        """A JSON document held as text, redacted; text that is not JSON only has its emails hashed."""
        if text is None:
            return None
        redacted: str = self.redact(text)
        return redacted


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
