"""Privacy: personal data is hashed before it leaves the wrapped process (and, in the gateway, before it is stored).

A key is sensitive when, lower-cased with `_` and `-` removed, it starts or ends with one of the
sensitive keys (normalised the same way): `email`, `user_email`, `userEmail`, `access_token`,
`X-Api-Key` and `passwordConfirmation` all match; `className` does not match `ssn`. Its value,
whatever its type, becomes `"sha256:" + hexdigest` of a normalised text: strings are trimmed
(and lower-cased under an email key), anything else is canonical JSON. The walk is recursive
through objects and arrays, and strings holding a JSON object or array are parsed, redacted and
re-encoded, so a tool's `content[].text` carrying JSON is covered too. `None` stays `None`.

Phone keys (`PHONE_KEY_WORDS`: `phone`, `mobile`, `tel`, `msisdn`, ...) are matched by word instead:
the first or last word of the key (split at `_`, `-`, spaces and camelCase) is one of them, so
`mobile`, `home_tel`, `telNumber` and `mobilePhone` match while `hotel`, `telemetry` and `automobile`
do not.

Strings are scanned too (`pii.py`, linear time): email addresses and phone numbers inside free text
(a tool's confirmation message, say) are hashed in place, and in a URL (`scheme://...`, or a path with
a query) the values of sensitive query parameters are hashed as well, so personal data never travels
or lands raw even where no key names it. A pseudonym (`sha256:...`) is left as it is, so redacting
twice changes nothing.

The hash is unsalted so the same address maps to the same value across sessions and servers:
it is a pseudonym for counting and joining, not protection against someone who guesses the
input (phone numbers are guessable). Keys that should not leave at all belong in a tool's
design, not here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import pii
from .pii import EMAIL_IN_TEXT, HASH_PREFIX, HASHED, PHONE_IN_TEXT, hash_text, redact_string, redact_text

__all__ = [
    "DEFAULT_SENSITIVE_KEYS",
    "EMAIL_IN_TEXT",
    "HASH_PREFIX",
    "MAX_INLINE_REDACTION_CHARS",
    "MAX_PAYLOAD_CHARS",
    "MAX_URL_CHARS",
    "PHONE_IN_TEXT",
    "PHONE_KEY_WORDS",
    "Redactor",
    "canonical_json",
    "cap_text",
    "exceeds",
    "hash_text",
    "redact_text",
]

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

PHONE_KEY_WORDS: Final[frozenset[str]] = frozenset(
    {"phone", "phonenumber", "mobile", "cell", "cellphone", "tel", "telephone", "msisdn", "fax", "whatsapp"}
)
"""Words naming a phone number: a key whose first or last word is one of them is sensitive."""

MAX_PAYLOAD_CHARS: Final = 16_384
"""Longest `args` / `result` string kept; longer ones are cut and marked."""

MAX_CACHED_KEYS: Final = 4096
"""Key names whose sensitivity a `Redactor` remembers (keys repeat: `content`, `text`, `type`, ...)."""
_KEY_WORDS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

MAX_DEPTH: Final = 32
"""Deepest nesting walked; anything below is replaced by `TOO_DEEP`."""

MAX_URL_CHARS: Final = 2048
"""Longest URL, path or referrer stored; cut after redacting, so a cut never leaves half an address unhashed."""

MAX_INLINE_REDACTION_CHARS: Final = 16_384
"""Largest value (about this many characters, `exceeds`) redacted where it is met; a bigger one is redacted on a
worker thread (`anyio.to_thread.run_sync`) so that no request's redaction holds the event loop for long."""

MAX_PARSE_CHARS: Final = 1_000_000
"""Longest JSON-looking string parsed for redaction; a longer one is replaced by a marker."""

TOO_DEEP: Final = "[omitted: nested too deep]"


def cap_text(value: str | None, limit: int = MAX_PAYLOAD_CHARS) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + f"…[truncated {len(value) - limit} chars]"


def _normalise_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _is_phone_key(key: str) -> bool:
    words = _KEY_WORDS.findall(key[:256])
    return bool(words) and (words[0].lower() in PHONE_KEY_WORDS or words[-1].lower() in PHONE_KEY_WORDS)


def exceeds(value: Any, limit: int) -> bool:
    """Whether `value` (JSON-shaped) is bigger than about `limit` characters; stops counting past it.

    Each string counts its length, every other node at least 1, and a container counts its items before
    they are looked at, so the work is bounded by `limit` whatever the size of `value`: callers use it to
    decide cheaply where to redact something.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            if total > limit:
                return True
            stack.extend(item)
        elif type(item) is dict or isinstance(item, Mapping):  # `isinstance` against the Mapping ABC is slow
            total += 2 + 3 * len(item)
            if total > limit:
                return True
            for key, inner in item.items():
                total += len(key) if isinstance(key, str) else 8
                stack.append(inner)
        else:
            total += 8
        if total > limit:
            return True
    return False


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


_SCALARS: Final = (bool, int, float)
_MAPPINGS: Final = (dict, Mapping)
"""`dict` first: `isinstance` tries the plain type before the ABC's slower check."""


class Redactor:
    """Hashes the values of sensitive keys, recursively, in anything JSON-shaped."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self._keys = tuple(sorted({_normalise_key(k) for k in sensitive_keys if k.strip()}))
        self._verdicts: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            norm = _normalise_key(key)
            verdict = any(norm.startswith(k) or norm.endswith(k) for k in self._keys) or _is_phone_key(key)
            if len(self._verdicts) < MAX_CACHED_KEYS:
                self._verdicts[key] = verdict
        return verdict

    @staticmethod
    def hash_value(key: str, value: Any) -> str:
        """The pseudonym of `value` found under `key`; a pseudonym stays as it is, so redacting twice is harmless."""
        if isinstance(value, str) and HASHED.fullmatch(value):
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
        # JSON's own types first, by plain isinstance: the ABC checks below cost more than the rest of a leaf.
        if value is None or isinstance(value, _SCALARS):
            return value
        if isinstance(value, str):
            if parse_strings:
                parsed = self._redact_json_string(value, depth)
                if parsed is not None:
                    return parsed
            return redact_string(value, self.is_sensitive, self.hash_value)
        if isinstance(value, _MAPPINGS):
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
        return value

    def _redact_json_string(self, text: str, depth: int) -> str | None:
        """A string holding a JSON object or array, redacted (re-encoded if that changed it); None if it holds none."""
        stripped = text.lstrip()
        if not stripped.startswith(("{", "[")):
            return None
        if len(text) > MAX_PARSE_CHARS:
            # Too big to check, so it cannot be sent as it is.
            return f"[omitted: {len(text)} chars of JSON]"
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(parsed, dict | list):
            return None
        redacted = self._walk(parsed, depth + 1, True)
        return text if redacted == parsed else canonical_json(redacted)

    def to_json_text(self, value: Any, limit: int = MAX_PAYLOAD_CHARS) -> str:
        """`value` redacted, as compact JSON, capped at `limit` characters."""
        text = canonical_json(self.redact(value))
        capped = cap_text(text, limit)
        assert capped is not None
        return capped

    def redact_string(self, text: str) -> str:
        """A URL through `redact_url`, any other text with the emails, phones and URLs in it redacted."""
        return redact_string(text, self.is_sensitive, self.hash_value)

    def redact_url(self, url: str) -> str:
        """`url` with user info, sensitive query parameters and emails and phones anywhere in it hashed."""
        return pii.redact_url(url, self.is_sensitive, self.hash_value)

    def redact_json_text(self, text: str | None) -> str | None:
        """A JSON document held as text, redacted (re-encoded only when something changed: a document with
        nothing to hide keeps its bytes); text that is not JSON only has its emails, phones and URLs redacted."""
        if text is None:
            return None
        if text.lstrip().startswith(("{", "[")) and len(text) <= MAX_PARSE_CHARS:
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, dict | list):
                redacted = self._walk(parsed, 1, True)
                return text if redacted == parsed else canonical_json(redacted)
        walked: str = self.redact(text)
        return walked
