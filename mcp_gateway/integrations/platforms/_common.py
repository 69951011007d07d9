"""What every adapter shares: the common config keys, the event-name mapping and filter, batching, JSON.

Common config keys (validated by :func:`check_common`):

- ``event_map``: ``{our name: their name}``, merged over the adapter's default map;
- ``events``: the list of our event names to forward, or ``None`` for all of them;
- ``endpoint``: the base URL (``http://`` or ``https://``, no query), default the platform's real host.

An optional key given as ``null`` means its default.

Which events go (:func:`select`): with an ``events`` filter, exactly the names it lists; without one, every
event except the gateway's bookkeeping (names starting with ``$``, and ``Identify``) that no map names. An
event that goes is renamed by the integration's map, then the default map, else keeps its name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.integrations.platforms.base import ForwardedEvent, Outcome, Verdict
from mcp_gateway.vocabulary import IDENTIFY

COMMON_FIELDS: Final = frozenset({"event_map", "events", "endpoint"})
T = TypeVar("T")

MAX_ERROR_CHARS: Final = 1000
"""Longest platform error kept in a :class:`Verdict` (the admin API shows it)."""
MAX_NAME_CHARS: Final = 200
"""Longest event name accepted in ``event_map`` and ``events``."""
MAX_MAPPED_EVENTS: Final = 500
"""Most entries in ``event_map`` or ``events``."""


def check_common(config: Mapping[str, Any], *, allowed: frozenset[str], default_endpoint: str | None) -> dict[str, Any]:
    """The common keys validated and normalised; unknown keys are refused so a typo never goes unnoticed."""
    if not isinstance(config, Mapping):
        raise InvalidInputError("an integration's config must be a JSON object")
    unknown = sorted(str(key) for key in config if key not in allowed | COMMON_FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown config key {unknown[0]!r}", field=unknown[0])
    checked: dict[str, Any] = {"event_map": _event_map(config.get("event_map")), "events": _events(config)}
    endpoint = config.get("endpoint")
    if default_endpoint is not None:
        checked["endpoint"] = check_url(default_endpoint if endpoint is None else endpoint, "endpoint").rstrip("/")
    elif endpoint is not None:
        raise InvalidInputError("this platform takes no endpoint", field="endpoint")
    return checked


def _event_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_MAPPED_EVENTS:
        raise InvalidInputError(f"event_map must be an object of at most {MAX_MAPPED_EVENTS} names", field="event_map")
    for ours, theirs in value.items():
        if not _is_name(ours) or not _is_name(theirs):
            raise InvalidInputError("event_map maps event names to event names", field="event_map")
    return dict(value)


def _events(config: Mapping[str, Any]) -> list[str] | None:
    value = config.get("events")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_MAPPED_EVENTS or not all(_is_name(name) for name in value):
        raise InvalidInputError(
            f"events must be a list of at most {MAX_MAPPED_EVENTS} event names, or null", field="events"
        )
    return list(dict.fromkeys(value))


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.strip() == value


def check_url(value: Any, field: str, *, query: bool = False) -> str:
    """An ``http(s)`` URL with a host and no fragment (nor a query unless ``query``)."""
    if not isinstance(value, str) or len(value) > 2048 or value.strip() != value:
        raise InvalidInputError(f"{field} must be an http(s) URL of at most 2048 characters", field=field)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or parts.fragment or (parts.query and not query):
        where = "without fragment" if query else "without query or fragment"
        raise InvalidInputError(f"{field} must be an http(s) URL with a host, {where}", field=field)
    return value


def check_text(config: Mapping[str, Any], field: str, *, required: bool = True, max_chars: int = 512) -> str | None:
    value = config.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars or value.strip() != value:
        raise InvalidInputError(f"{field} must be a non-empty string of at most {max_chars} characters", field=field)
    return value


def is_internal(name: str) -> bool:
    """The gateway's own bookkeeping: not a conversion a platform wants unless a map or filter names it."""
    return name.startswith("$") or name == IDENTIFY


def select(
    config: Mapping[str, Any], events: Sequence[ForwardedEvent], default_map: Mapping[str, str]
) -> list[tuple[str, ForwardedEvent]]:
    """``(their name, event)`` for each event the integration forwards, in order (module docstring)."""
    mapping: Mapping[str, str] = config.get("event_map") or {}
    listed = config.get("events")
    wanted = None if listed is None else frozenset(listed)
    chosen: list[tuple[str, ForwardedEvent]] = []
    for event in events:
        name = event.event_name
        if wanted is not None:
            if name not in wanted:
                continue
        elif is_internal(name) and name not in mapping and name not in default_map:
            continue
        chosen.append((mapping.get(name) or default_map.get(name) or name, event))
    return chosen


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
"""Without the cycle check (a third faster on a Meta batch): what the adapters serialise is built from JSON the
outbox read back, which has no cycles."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities (not JSON) become null, anything else not JSON its ``str``."""
    try:
        return _ENCODER.encode(value).encode()
    except (ValueError, TypeError):  # NaN, infinity, a non-dict mapping, a tuple key...: walk it only then
        cleaned = _finite(value)
        return json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _finite(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(inner) for inner in value]
    return value


def loads(body: bytes) -> Any:
    """The answer's JSON, or None when it is not JSON (or nested too deep to read)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date is ignored), at most a day."""
    lowered = {key.lower(): value for key, value in headers.items()}
    raw = lowered.get("retry-after", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return min(seconds, 86_400.0) if math.isfinite(seconds) and seconds >= 0 else None


def judge_http(status: int, body: bytes, headers: Mapping[str, str]) -> Verdict | None:
    """The verdict HTTP alone decides (429 and 5xx retry, 408 too; other non-2xx fail), None for a 2xx."""
    if 200 <= status < 300:
        return None
    if status in (408, 429) or status >= 500:
        return Verdict(Outcome.RETRY, excerpt(body) or f"HTTP {status}", retry_after(headers))
    return Verdict(Outcome.FAILED, excerpt(body) or f"HTTP {status}")
