"""Personal data inside free text and URLs: found in linear time and replaced by its pseudonym.

**Emails** (`EMAIL_IN_TEXT`): `local@domain.tld`, the local part a run of at most 64 `[A-Za-z0-9._%+-]`,
hashed lower-cased. A match may only start where such a run starts (a negative lookbehind), so a long
run without `@` is read once, not once per starting position, and every quantifier is bounded: scanning
is linear in the text's length, and long text is scanned in chunks (`SCAN_CHUNK_CHARS`).

**Phones** (`PHONE_IN_TEXT`, then `looks_like_phone`): a token of digits with at most one space, dot
or hyphen between any two digits, optionally led by `+` and a country code and/or an area code in
parentheses, not touching other digits, letters, `+`, `:` or `/`. It is a phone when

- it starts with `+` and holds 8-15 digits (E.164: `+44 20 7946 0958`, `+15551234567`), or
- it holds 9-15 digits in at least three groups, or has an area code in parentheses
  (`555-123-4567`, `020 7946 0958`, `(555) 123 4567`), and does not start like a date
  (`2026-05-16-1234`).

So timestamps (`1733500000000`, `2026-05-16T19:00:00Z`, `2026-05-16 19:00:00`), ids (UUIDs,
`evt_123456789`, plain digit runs), prices (`$1,299.00`, `49.99`), versions and dates are left
alone; a number written in spaced groups of 9+ digits (`1 299 999 999`) and a dotted quad of 9+
digits (an IP address, personal data too) are hashed. A phone is hashed as its digits alone, so
`+1 (555) 123-4567` and `+15551234567` share one pseudonym. Each token is bounded (at most 17
digits, a 3-digit country code, a 5-digit area code) and may only start where a token starts, so
this scan is linear too.

**URLs** (`redact_url`; inside free text too, `redact_string`): in the query (and a fragment holding
`key=value` pairs, OAuth's `#access_token=`) the value of a parameter whose name is sensitive is
hashed, every other key and value is percent-decoded and scanned for emails and phones; the path
likewise; user info in the authority (`user:password@`) is hashed. Parts that hold nothing are kept
byte for byte.

A pseudonym (`sha256:` + 64 hex digits) holds neither an email nor a phone, so scanning twice
changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

HASH_PREFIX: Final = "sha256:"
HASHED: Final = re.compile(r"sha256:[0-9a-f]{64}")
"""A pseudonym as `hash_text` writes it."""

EMAIL_IN_TEXT: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
)
"""What an email address inside free text looks like (RFC 5321's lengths: a local part of at most 64 characters,
labels of at most 63); a match starts only where a run of local-part characters does."""

PHONE_IN_TEXT: Final = re.compile(
    r"[+(\d](?<![\w+.:/-].)"  # a token's first character (a set, which the engine skips to fast), where a token
    # starts: not inside a word, a number, a time or a path
    r"(?:(?<=\+)\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d"  # + country code, area code in parentheses, a digit
    r"|(?<=\()\d{1,5}\)[ .-]?\d"  # or area code in parentheses, a digit
    r"|(?<=\d))"  # or a digit
    r"(?:[ .-]?\d){5,16}"  # 6-17 digits in all, at most one separator between two
    r"(?![\w+]|[.:/-]?\d)"  # where it ends: not inside a word, a number or a time
)
"""Candidate phone numbers in free text; `looks_like_phone` decides."""

MAX_MATCH_CHARS: Final = 1024
"""More than the longest text either pattern can match or look at from where a match starts (665 for an email)."""

SCAN_CHUNK_CHARS: Final = 32_768
"""Longer text is scanned this many characters at a time: the regular expression engine holds the GIL for a whole
call, so a worker thread scanning a megabyte hands the event loop its turn between chunks (about a millisecond
each) instead of stalling it for the whole scan."""

URL_IN_TEXT: Final = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>]{1,8192}")
"""A URL inside free text (an error message quoting a resource URI, say); at most 8192 characters of it."""

_DATE_START: Final = re.compile(r"\d{4}[-./]\d{2}[-./]\d{2}|\d{2}[-./]\d{2}[-./]\d{4}")
_SEPARATORS: Final = frozenset(" .-")
_URL_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://")
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"

SensitiveKey = Callable[[str], bool]
"""Whether a parameter name is sensitive (`privacy.Redactor.is_sensitive`)."""

HashValue = Callable[[str, str], str]
"""The pseudonym of a value found under a key (`privacy.Redactor.hash_value`)."""


def hash_text(text: str) -> str:
    """`"sha256:" + hexdigest` of `text` (UTF-8; a lone surrogate is hashed as its own three bytes)."""
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def external_id_hash(value: str | None) -> str | None:
    """SHA-256 hex of an external or user id, trimmed and lower-cased (how events store `user_id`), None for none."""
    normalised = (value or "").strip().lower()
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest() if normalised else None


def phone_digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def looks_like_phone(candidate: str) -> bool:
    """Whether a `PHONE_IN_TEXT` match is a phone number (the rule in the module docstring)."""
    digits = len(phone_digits(candidate))
    if candidate.startswith("+"):
        return 8 <= digits <= 15
    if not 9 <= digits <= 15 or _DATE_START.match(candidate):
        return False
    return "(" in candidate or sum(c in _SEPARATORS for c in candidate) >= 2


def email_pseudonym(email: str) -> str:
    return hash_text(email.lower())


def phone_pseudonym(phone: str) -> str:
    return hash_text(phone_digits(phone))


def _sub(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str) -> str:
    """`pattern.sub(replace, text)`, in chunks of `SCAN_CHUNK_CHARS` when `text` is longer.

    A match is taken from a chunk's scan when it starts inside the chunk; the scan may read
    `MAX_MATCH_CHARS` past the chunk's end (and, for lookbehinds, before its start), which is all a
    match starting inside it can depend on, so the result is the same as one `sub` over the whole text.
    """
    if len(text) <= SCAN_CHUNK_CHARS:
        return pattern.sub(replace, text)
    parts: list[str] = []
    done = pos = 0
    while pos < len(text):
        chunk_end = pos + SCAN_CHUNK_CHARS
        for match in pattern.finditer(text, pos, chunk_end + MAX_MATCH_CHARS):
            if match.start() >= chunk_end:
                break
            parts += (text[done : match.start()], replace(match))
            done = match.end()
        pos = max(chunk_end, done)
    parts.append(text[done:])
    return "".join(parts)


def replace_personal(text: str, email: Callable[[str], str], phone: Callable[[str], str]) -> str:
    """`text` with each email address replaced by `email(address)` and each phone number by `phone(number)`."""
    if "@" in text:
        text = _sub(EMAIL_IN_TEXT, lambda match: email(match.group()), text)

    def phone_or_not(match: re.Match[str]) -> str:
        candidate = match.group()
        return phone(candidate) if looks_like_phone(candidate) else candidate

    return _sub(PHONE_IN_TEXT, phone_or_not, text)


def _email_match_pseudonym(match: re.Match[str]) -> str:
    return email_pseudonym(match.group())


def _phone_match_pseudonym(match: re.Match[str]) -> str:
    candidate = match.group()
    return phone_pseudonym(candidate) if looks_like_phone(candidate) else candidate


def redact_text(text: str) -> str:
    """`text` with every email address and phone number in it replaced by its pseudonym; linear time."""
    if "@" in text:
        text = _sub(EMAIL_IN_TEXT, _email_match_pseudonym, text)
    return _sub(PHONE_IN_TEXT, _phone_match_pseudonym, text)


def looks_like_url(text: str) -> bool:
    """`scheme://...`, or a path with a query (`/a?b=c`)."""
    if text.startswith("/"):
        return "?" in text
    return "://" in text[:40] and _URL_SCHEME.match(text) is not None


_MAYBE_PERSONAL: Final = re.compile(r"[@\d?]|://")
"""What text must hold for `redact_string` to change it: an email's `@`, a phone's digits, a URL's `://` or a path's
query `?`. Most short values (names, kinds, flags) hold none, and skip the scans with one search."""


def redact_string(text: str, sensitive: SensitiveKey, hash_value: HashValue) -> str:
    """A URL through `redact_url`; any other text through `redact_text`, after the URLs inside it (`URL_IN_TEXT`)."""
    if _MAYBE_PERSONAL.search(text) is None:
        return text
    if looks_like_url(text):
        return redact_url(text, sensitive, hash_value)
    if "://" in text:
        text = _sub(URL_IN_TEXT, lambda match: redact_url(match.group(), sensitive, hash_value), text)
    return redact_text(text)


def _redact_pairs(text: str, sensitive: SensitiveKey, hash_value: HashValue) -> str:
    """`a=b&c=d`: sensitive values hashed, emails and phones in the rest; untouched pairs kept as written."""
    pairs = text.split("&")
    changed = False
    for index, pair in enumerate(pairs):
        raw_key, equals, raw_value = pair.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        new_key = redact_text(key)
        new_value = hash_value(key, value) if value and sensitive(key) else redact_text(value)
        if new_key != key or new_value != value:
            pairs[index] = quote(new_key, safe="") + equals + quote(new_value, safe=":")
            changed = True
    return "&".join(pairs) if changed else text


def _redact_encoded(text: str) -> str:
    decoded = unquote(text)
    redacted = redact_text(decoded)
    return text if redacted == decoded else quote(redacted, safe=_PATH_SAFE)


def redact_url(url: str, sensitive: SensitiveKey, hash_value: HashValue) -> str:
    """`url` with personal data in its authority, path, query and fragment replaced by pseudonyms (module docstring)."""
    try:
        scheme, netloc, path, query, fragment = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in netloc:
        new_netloc = redact_text(netloc)
    elif EMAIL_IN_TEXT.fullmatch(netloc):
        new_netloc = email_pseudonym(netloc)
    else:
        userinfo, _, host = netloc.rpartition("@")
        new_netloc = (userinfo if HASHED.fullmatch(userinfo) else hash_text(userinfo)) + "@" + redact_text(host)
    new_path = _redact_encoded(path)
    new_query = _redact_pairs(query, sensitive, hash_value) if query else query
    if "=" in fragment:
        new_fragment = _redact_pairs(fragment, sensitive, hash_value)
    else:
        new_fragment = _redact_encoded(fragment) if fragment else fragment
    if (new_netloc, new_path, new_query, new_fragment) == (netloc, path, query, fragment):
        return url
    return urlunsplit((scheme, new_netloc, new_path, new_query, new_fragment))
