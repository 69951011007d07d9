"""The one redaction policy, applied where any session or event enters the store (`SQLStore.capture`, `capture_web`).

Whatever route or sink a row came through, every field a sender controls is redacted here (the tracking
SDK's `privacy.Redactor` and `pii`) before it is written, folded into rollups or sketches, or answered:

- `args`, `result` (JSON text): sensitive keys hashed, emails and phones in strings hashed, then cut
  at `privacy.MAX_PAYLOAD_CHARS` (redacting first: a cut document could not be parsed);
- `properties` (web and server events), a session's `user_data`: walked the same way;
- `url`, `referrer`, `path`, an MCP resource URI (the event's `name`): user info, sensitive query
  parameters and emails and phones anywhere in them hashed (`pii.redact_url`), then URLs cut at
  `privacy.MAX_URL_CHARS`;
- every other text (ids, event names, `error_type`, campaign and source, client name, tool names):
  emails and phones hashed, and URLs inside it redacted like those (`pii.redact_string`).

The hashed identity columns (`email_hash`, `phone_hash`, ...) and IP hashes are left as they are,
and so is any pseudonym already in a value: redacting twice changes nothing. A batch whose values
are bigger than `privacy.MAX_INLINE_REDACTION_CHARS` is redacted on a worker thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

import anyio.to_thread
from mcp_gateway_tracking.privacy import MAX_INLINE_REDACTION_CHARS, MAX_URL_CHARS, Redactor, cap_text, exceeds

from .base import EventRow, SessionRow, WebFields

_redactor: Final = Redactor()


def _text(value: str | None) -> str | None:
    """A URL, a path or any other text, by what it looks like."""
    return None if value is None else _redactor.redact_string(value)


def redact_text(value: str | None) -> str | None:
    """Any other text the store keeps (a delivery's `fbp`, `fbc` and user agent): emails and phones hashed."""
    return _text(value)


def stored_id(value: str) -> str:
    """An event's or session's id as the store keeps it (an id holding an email or a phone is kept redacted), so a
    look-up by the id a client sent finds what was written under it."""
    return _redactor.redact_string(value)


def _url(value: str | None) -> str | None:
    """Redacted, then cut at `MAX_URL_CHARS`."""
    return None if value is None else _redactor.redact_url(value)[:MAX_URL_CHARS]


def _json_text(value: str | None) -> str | None:
    return cap_text(_redactor.redact_json_text(value))


def _mapping(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    redacted: dict[str, Any] = _redactor.redact(value)
    return redacted


def redact_session(row: SessionRow) -> SessionRow:
    return dataclasses.replace(
        row,
        id=stored_id(row.id),
        client_config=_text(row.client_config) or "",
        connection_type=_text(row.connection_type) or "",
        transport=_text(row.transport),
        tools=tuple(_text(name) or "" for name in row.tools),
        user_data=_mapping(row.user_data),
    )


def _web(web: WebFields) -> WebFields:
    return dataclasses.replace(
        web,
        anonymous_id=_text(web.anonymous_id),
        url=_url(web.url),
        path=_url(web.path),
        referrer=_url(web.referrer),
        traffic_source=_text(web.traffic_source),
        traffic_campaign=_text(web.traffic_campaign),
    )


def redact_event(row: EventRow) -> EventRow:
    return dataclasses.replace(
        row,
        id=stored_id(row.id),
        session_id=_text(row.session_id),
        name=_text(row.name) or row.name,
        error_type=_text(row.error_type),
        args=_json_text(row.args),
        result=_json_text(row.result),
        properties=_mapping(row.properties),
        web=None if row.web is None else _web(row.web),
    )


def _size_of(event: EventRow) -> list[Any]:
    web = event.web
    return [event.args, event.result, event.properties, event.name, web and (web.url, web.path, web.referrer)]


def _large(sessions: Sequence[SessionRow], events: Sequence[EventRow]) -> bool:
    values = [s.user_data for s in sessions] + [_size_of(e) for e in events]
    return exceeds(values, MAX_INLINE_REDACTION_CHARS)


def _redact_all(sessions: Sequence[SessionRow], events: Sequence[EventRow]) -> tuple[list[SessionRow], list[EventRow]]:
    return [redact_session(s) for s in sessions], [redact_event(e) for e in events]


async def redact_rows(
    sessions: Sequence[SessionRow], events: Sequence[EventRow]
) -> tuple[list[SessionRow], list[EventRow]]:
    """`sessions` and `events` as the store may keep them; on a worker thread when they are big."""
    if _large(sessions, events):
        return await anyio.to_thread.run_sync(_redact_all, sessions, events)
    return _redact_all(sessions, events)
