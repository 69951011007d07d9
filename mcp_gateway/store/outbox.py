"""The outbox: what each stored event owes its gateway's integrations, in the same transaction as the event.

`enqueue` runs inside the write transaction that stores new web and server events (`SQLStore.capture_web`), and
new MCP events that booked a lead (`is_agent_lead`: a `book_demo` call, Meta's `Lead`; `SQLStore.capture`): for
every enabled integration of the event's gateway whose `events` filter wants the event, one `deliveries` row
holding the event as the platforms get it (`forward_payload`: hashed identifiers only, the redacted properties;
never the raw email, phone, external id or IP, which never reach the store). So a committed event has its
deliveries committed too, and a crash loses neither.

A delivery is `pending` until the worker (`integrations.worker`) settles it: `sent`, `failed` (the platform
refused it for good), `dead` (retried too many times) or `skipped` (the integration's filter no longer wants it).
`claim` hands due deliveries out under a lease: it moves `due_at_ms` forward by the lease, so a delivery whose
worker died is due again once the lease ends and is sent again (at least once; `event_id` lets the platform
drop the duplicate). An integration with `sync` gets its deliveries due only after `SYNC_HOLD_MS`: the request
that stored the event sends them itself (with the client's IP and user agent, which are never stored), and the
worker only takes over if that request died.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from mcp_gateway_tracking.pii import HASH_PREFIX

from ..vocabulary import BOOK_DEMO
from .base import Connection, EventRow, WebFields
from .redaction import redact_text

DeliveryStatus = Literal["pending", "sent", "failed", "dead", "skipped"]
DELIVERY_STATUSES: Final[tuple[DeliveryStatus, ...]] = ("pending", "sent", "failed", "dead", "skipped")

SYNC_HOLD_MS: Final = 30_000
"""A synchronous integration's new delivery is left to the request that stored its event for this long."""

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False)
"""A payload is built from a stored event (parsed JSON, no cycles): the cycle check would only cost time."""

_CHUNK: Final = 500
"""Deliveries per `IN (...)` list (SQLite allows 32766 parameters)."""


@dataclass(frozen=True, slots=True)
class ForwardHints:
    """What the platforms want of an event that the event's row does not keep: Meta's browser and click ids
    (`_fbp`, `_fbc` cookies or the body's `user.fbp`/`user.fbc`), sent as they are (Meta wants them unhashed),
    and a browser event's user agent (Meta's `client_user_agent`, which its parameters page requires of `website`
    events; the worker has no request in flight to take it from). They are kept in the delivery's payload only."""

    fbp: str | None = None
    fbc: str | None = None
    user_agent: str | None = None


MAX_USER_AGENT_CHARS: Final = 1024
"""Longest user agent kept in a delivery (the same bound `/track`'s `user.client_user_agent` has)."""


def hints_of(source: str, fbp: str | None, fbc: str | None, user_agent: str | None) -> ForwardHints | None:
    """The hints of an event from `source`, redacted like everything the store keeps (an email or a phone in them
    is hashed). A server's request carries the server's user agent, not the visitor's: only a browser (`web`)
    event's is kept."""
    agent = user_agent[:MAX_USER_AGENT_CHARS] if user_agent and source == "web" else None
    if not (fbp or fbc or agent):
        return None
    return ForwardHints(redact_text(fbp), redact_text(fbc), redact_text(agent))


def action_source(source: str) -> str:
    """Meta's `action_source` of one of our event sources: browser events happened on a `website`; an agent's
    MCP tool call happened in a conversation (`chat`: "made via a messaging app, SMS, or online messaging
    feature"); events a server sent with a secret key are the business's own systems' (`system_generated`)."""
    return {"web": "website", "mcp": "chat"}.get(source, "system_generated")


def is_agent_lead(event: EventRow) -> bool:
    """A `book_demo` call that booked a new lead (its recorded result says `"status": "booked"`): the one MCP
    event the outbox takes, a conversion the platforms want (Meta's `Lead`). Other tool calls, resource reads and
    a booking that found its lead already booked are the agent's traffic, not conversions."""
    if event.source != "mcp" or event.name != BOOK_DEMO or event.success is not True or not event.result:
        return False
    try:
        result = json.loads(event.result)
    except ValueError:
        return False
    structured = result.get("structuredContent") if isinstance(result, dict) else None
    return isinstance(structured, dict) and structured.get("status") == "booked"


def _agent_lead_user(event: EventRow) -> dict[str, Any]:
    """The booked person as the platforms take them: the stored `email` argument is already `sha256:` of the
    trimmed, lower-cased address (the redaction policy's rule for an `email` key, Meta's normalisation); the
    agent's MCP session stands for the visitor (GA4's `client_id`)."""
    try:
        args = json.loads(event.args) if event.args else None
    except ValueError:
        args = None
    email = args.get("email") if isinstance(args, dict) else None
    hashed = email.removeprefix(HASH_PREFIX) if isinstance(email, str) and email.startswith(HASH_PREFIX) else None
    return {"em": hashed, "client_id": event.session_id}


def forward_payload(event: EventRow, hints: ForwardHints | None) -> dict[str, Any]:
    """`event` (as stored: redacted, identifiers hashed) in `integrations.platforms.base.ForwardedEvent`'s fields,
    as the outbox keeps it; `integrations.forwarded.decode` reads it back."""
    if event.source == "mcp":
        user = {key: value for key, value in _agent_lead_user(event).items() if value is not None}
        return {
            "event_id": event.id,
            "event_name": event.name,
            "event_time_ms": event.ts_ms,
            "action_source": action_source(event.source),
            "event_source_url": None,
            "user": user,
            "custom_data": {"content_name": event.name},
            "gateway_id": event.gateway_id,
        }
    web = event.web or WebFields()
    user = {
        "em": web.email_hash,
        "ph": web.phone_hash,
        "external_id": web.external_id_hash or web.user_id_hash,
        "fbp": hints.fbp if hints else None,
        "fbc": hints.fbc if hints else None,
        "client_user_agent": hints.user_agent if hints else None,
        "client_id": web.anonymous_id,
    }
    return {
        "event_id": event.id,
        "event_name": event.name,
        "event_time_ms": event.ts_ms,
        "action_source": action_source(event.source),
        "event_source_url": web.url,
        "user": {key: value for key, value in user.items() if value is not None},
        "custom_data": event.properties or {},
        "gateway_id": event.gateway_id,
    }


def enqueue(conn: Connection, events: Sequence[tuple[EventRow, ForwardHints | None]], now_ms: int) -> int:
    """Insert the deliveries `events` (just stored, in this transaction) owe their gateways' enabled integrations;
    how many."""
    wanted: dict[str, list[tuple[str, frozenset[str] | None, bool]]] = {}
    for gateway_id in {event.gateway_id for event, _ in events}:
        wanted[gateway_id] = [
            (row[0], None if row[1] is None else frozenset(json.loads(row[1])), bool(row[2]))
            for row in conn.execute(
                "SELECT id, event_filter, sync FROM integrations WHERE gateway_id = ? AND enabled = 1", (gateway_id,)
            )
        ]
    rows: list[tuple[object, ...]] = []
    for event, hints in events:
        targets = [(iid, sync) for iid, names, sync in wanted[event.gateway_id] if names is None or event.name in names]
        if not targets:
            continue
        payload = _ENCODER.encode(forward_payload(event, hints))
        for integration_id, sync in targets:
            due = now_ms + SYNC_HOLD_MS if sync else now_ms
            rows.append((integration_id, event.gateway_id, event.id, event.ts_ms, payload, due, now_ms, now_ms))
    if rows:
        conn.executemany(
            "INSERT INTO deliveries (integration_id, gateway_id, event_id, event_ts_ms, payload, status, attempts,"
            " due_at_ms, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            rows,
        )
    return len(rows)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery, as claimed: `attempts` counts this one. `payload` is the JSON text as stored
    (`forward_payload`'s): it is parsed by whoever sends it, not in the write transaction that claims it, which
    holds the store's one writer."""

    seq: int
    integration_id: str
    gateway_id: str
    event_id: str
    payload: str
    attempts: int
    created_at_ms: int


_DELIVERY_COLUMNS: Final = "seq, integration_id, gateway_id, event_id, payload, attempts, created_at_ms"

DUE: Final = (
    "status = 'pending' AND due_at_ms <= ? AND integration_id IN (SELECT id FROM integrations WHERE enabled = 1)"
)
"""The deliveries a worker may claim at a time (`?`): pending, due, of an enabled integration (a disabled one's
wait until it is enabled again)."""


def _delivery(row: Sequence[Any], *, claimed: bool) -> Delivery:
    return Delivery(
        seq=int(row[0]),
        integration_id=row[1],
        gateway_id=row[2],
        event_id=row[3],
        payload=str(row[4]),
        attempts=int(row[5]) + claimed,
        created_at_ms=int(row[6]),
    )


def _in_chunks(seqs: Sequence[int]) -> list[tuple[str, list[int]]]:
    return [
        (", ".join("?" * len(chunk)), list(chunk))
        for chunk in (seqs[start : start + _CHUNK] for start in range(0, len(seqs), _CHUNK))
    ]


def claim(conn: Connection, *, now_ms: int, limit: int, lease_ms: int, skip_locked: bool) -> list[Delivery]:
    """Take up to `limit` due pending deliveries, oldest due first, for `lease_ms`, in one statement; on PostgreSQL
    rows another transaction holds are skipped (`FOR UPDATE SKIP LOCKED`), so several workers never wait on each
    other. `updated_at_ms` is left alone: it says when a delivery was last settled."""
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    rows = conn.execute(
        "UPDATE deliveries SET due_at_ms = ?, attempts = attempts + 1 WHERE seq IN"
        f" (SELECT seq FROM deliveries WHERE {DUE} ORDER BY due_at_ms, seq LIMIT ?{lock})"
        f" RETURNING {_DELIVERY_COLUMNS}",
        (now_ms + lease_ms, now_ms, limit),
    ).fetchall()
    return sorted((_delivery(row, claimed=False) for row in rows), key=lambda d: d.seq)


def pending_for(conn: Connection, gateway_id: str, event_id: str, integration_ids: Sequence[str]) -> list[Delivery]:
    """The pending deliveries of one event to these integrations (the synchronous path's), claimed as one attempt."""
    if not integration_ids:
        return []
    marks = ", ".join("?" * len(integration_ids))
    rows = conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE gateway_id = ? AND event_id = ? AND status = 'pending'"
        f" AND integration_id IN ({marks})",
        (gateway_id, event_id, *integration_ids),
    ).fetchall()
    claimed = [_delivery(row, claimed=True) for row in rows]
    for marks, chunk in _in_chunks([d.seq for d in claimed]):
        conn.execute(f"UPDATE deliveries SET attempts = attempts + 1 WHERE seq IN ({marks})", chunk)
    return claimed


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one claimed delivery: `pending` again (a retry, due at `due_at_ms`) or final."""

    seq: int
    integration_id: str
    status: DeliveryStatus
    due_at_ms: int
    error: str | None = None
    latency_ms: int | None = None


def settle(conn: Connection, settlements: Sequence[Settlement], now_ms: int) -> None:
    """Record what became of claimed deliveries, and each integration's latest error. Final outcomes go in one
    statement per (status, error) and 500 deliveries (a sent one's latency counted from its `created_at_ms`);
    retries one by one (each has its own due time)."""
    retries = [s for s in settlements if s.status == "pending"]
    conn.executemany(
        "UPDATE deliveries SET due_at_ms = ?, last_error = ?, updated_at_ms = ? WHERE seq = ? AND status = 'pending'",
        [(s.due_at_ms, s.error, now_ms, s.seq) for s in retries],
    )
    final: dict[tuple[DeliveryStatus, str | None], list[int]] = {}
    for s in settlements:
        if s.status != "pending":
            final.setdefault((s.status, s.error), []).append(s.seq)
    for (status, error), seqs in final.items():
        sent = status == "sent"
        latency = "latency_ms = ? - created_at_ms, " if sent else ""
        for marks, chunk in _in_chunks(seqs):
            conn.execute(
                f"UPDATE deliveries SET {latency}status = ?, last_error = ?, updated_at_ms = ?"
                f" WHERE status = 'pending' AND seq IN ({marks})",
                (*((now_ms,) if sent else ()), status, error, now_ms, *chunk),
            )
    errors = {s.integration_id: s.error for s in settlements if s.error is not None}
    for integration_id, error in errors.items():
        conn.execute(
            "UPDATE integrations SET last_error = ?, last_error_at_ms = ? WHERE id = ?", (error, now_ms, integration_id)
        )


def replay(conn: Connection, integration_id: str, *, since_ms: int, until_ms: int, now_ms: int) -> int:
    """Send again every delivery of `integration_id` whose event happened in [since_ms, until_ms), whatever became
    of it; how many."""
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'pending', attempts = 0, due_at_ms = ?, updated_at_ms = ?"
        " WHERE integration_id = ? AND event_ts_ms >= ? AND event_ts_ms < ?",
        (now_ms, now_ms, integration_id, since_ms, until_ms),
    )
    return int(cursor.rowcount)
