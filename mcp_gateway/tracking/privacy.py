"""Privacy: values under sensitive keys are hashed before anything leaves the process.

A key is sensitive when, lower-cased with `_` and `-` removed, it starts or ends with one of the
sensitive keys (normalised the same way): `email`, `user_email`, `userEmail`, `access_token`,
`X-Api-Key` and `passwordConfirmation` all match; `className` does not match `ssn`. Its value,
whatever its type, becomes `"sha256:" + hexdigest` of a normalised text: strings are trimmed
(and lower-cased under an email key), anything else is canonical JSON. The walk is recursive
through objects and arrays, and strings holding a JSON object or array are parsed, redacted and
re-encoded, so a tool's `content[].text` carrying JSON is covered too. `None` stays `None`.

The hash is unsalted so the same address maps to the same value across sessions and servers:
it is a pseudonym for counting and joining, not protection against someone who guesses the
input (phone numbers are guessable). Keys that should not leave at all belong in a tool's
design, not here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .wire import MAX_PAYLOAD_CHARS, cap_text

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

HASH_PREFIX: Final = "sha256:"

MAX_DEPTH: Final = 32
"""Deepest nesting walked; anything below is replaced by `TOO_DEEP`."""

MAX_PARSE_CHARS: Final = 1_000_000
"""Longest JSON-looking string parsed for redaction; a longer one is replaced by a marker."""

TOO_DEEP: Final = "[omitted: nested too deep]"


def _normalise_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def hash_text(text: str) -> str:
    """`"sha256:" + hexdigest` of `text` (UTF-8)."""
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys; anything JSON cannot hold becomes its `str()`."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class Redactor:
    """Hashes the values of sensitive keys, recursively, in anything JSON-shaped."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self._keys = tuple(sorted({_normalise_key(k) for k in sensitive_keys if k.strip()}))

    def is_sensitive(self, key: str) -> bool:
        norm = _normalise_key(key)
        return any(norm.startswith(k) or norm.endswith(k) for k in self._keys)

    @staticmethod
    def hash_value(key: str, value: Any) -> str:
        """The pseudonym of `value` found under `key`."""
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
        if isinstance(value, str) and parse_strings:
            return self._redact_json_string(value, depth)
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
