"""What both stores share: every `Store` method, as SQL with `?` placeholders that SQLite runs as it is and the
PostgreSQL store rewrites (`postgres.py`).

A store subclass brings its connections: `write(job)` runs `job(conn)` in the group-commit writer's next
transaction (`writer.py`) and `fetch(sql, params)` runs one read. Reads see the last commit and never wait for
the writer.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from ..errors import ConflictError, NotFoundError, StorageError
from ..vocabulary import IDENTITY_LINK
from .base import (
    SESSION_INACTIVITY_MS,
    WEB_FIELD_NAMES,
    CaptureStatus,
    Connection,
    Dialect,
    EventRow,
    GatewayRecord,
    KeyRecord,
    LeadRecord,
    RollupRow,
    SessionRow,
    WebFields,
    WriterStats,
)
from .experiment_users import add_to_experiment_users
from .lookup import rows_by_ids
from .outbox import ForwardHints, is_agent_lead
from .outbox import enqueue as enqueue_deliveries
from .redaction import redact_rows, stored_id
from .rollups import add_to_rollups, hist_of
from .usage import add_to_usage
from .writer import GroupCommitWriter

T = TypeVar("T")


def _gateway(row: Sequence[Any]) -> GatewayRecord:
    return GatewayRecord(
        id=row[0],
        name=row[1],
        allowed_origins=tuple(json.loads(row[2])),
        manifest=json.loads(row[3]),
        created_at_ms=row[4],
        updated_at_ms=row[5],
    )


def _lead(row: Sequence[Any]) -> LeadRecord:
    return LeadRecord(*row)


def _key(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(*row)


def _session(row: Sequence[Any]) -> SessionRow:
    values = list(row)
    values[6] = tuple(json.loads(values[6]))
    values[7] = None if values[7] is None else json.loads(values[7])
    return SessionRow(*values)


_COMMON_EVENT_FIELDS: Final = tuple(name for name in EventRow.__dataclass_fields__ if name not in ("web", "seq"))
_WEB_START: Final = len(_COMMON_EVENT_FIELDS)
"""Index of the first `WebFields` column in an event row."""


def _event(row: Sequence[Any]) -> EventRow:
    values = list(row)
    values[8] = None if values[8] is None else bool(values[8])
    values[12] = None if values[12] is None else json.loads(values[12])
    web_values = values[_WEB_START : _WEB_START + len(WEB_FIELD_NAMES)]
    web = WebFields(*web_values) if any(v is not None for v in web_values) else None
    common = dict(zip(_COMMON_EVENT_FIELDS, values[:_WEB_START], strict=True))
    return EventRow(**common, web=web, seq=values[_WEB_START + len(WEB_FIELD_NAMES)])


def _event_values(event: EventRow) -> tuple[object, ...]:
    return (
        event.gateway_id,
        event.id,
        event.source,
        event.session_id,
        event.name,
        event.primitive_type,
        event.operation,
        event.latency_ms,
        None if event.success is None else int(event.success),
        event.error_type,
        event.args,
        event.result,
        None if event.properties is None else _json_text(event.properties),
        event.ts_ms,
        event.received_at_ms,
        *(_NO_WEB_VALUES if event.web is None else _web_values(event.web)),
    )


_web_values: Final = operator.attrgetter(*WEB_FIELD_NAMES)
"""A `WebFields`' values in column order; shallow (they are all scalars), unlike `dataclasses.astuple`, which
deep-copies each value and cost more than the rest of building an event's row."""
_NO_WEB_VALUES: Final[tuple[object, ...]] = _web_values(WebFields())


def _json_text(value: Any) -> str:
    """`value` as JSON text, with U+FFFD for any NUL character in it: PostgreSQL's jsonb, which the analytics read
    properties as, refuses `\\u0000`, and one such row would fail every question over its events. Both databases
    store the same text."""
    text = json.dumps(value)
    return json.dumps(_without_nul(value)) if "\\u0000" in text else text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


_ROWS_PER_INSERT: Final = 500
"""Events per multi-row INSERT (33 parameters each; SQLite allows 32766, PostgreSQL 65535)."""


def _insert_events(conn: Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Insert `_event_values` rows unless (gateway, id) exists, 500 per statement; how many went in.

    One statement is one step of the database (SQLite) or one round trip (PostgreSQL), so the writer thread
    gives up and takes back the GIL once per 500 events instead of once per event, which under load (the
    event loop holds the GIL) is where its time went.
    """
    inserted = 0
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        cursor = conn.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES {', '.join([f'({_EVENT_PLACEHOLDERS})'] * len(chunk))}"
            " ON CONFLICT (gateway_id, id) DO NOTHING",
            [value for row in chunk for value in row],
        )
        inserted += cursor.rowcount
    return inserted


def _existing(conn: Connection, table: str, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (gateway_id, id) keys `table` holds."""
    return {
        (row[0], row[1])
        for row in rows_by_ids(conn, f"SELECT gateway_id, id FROM {table} WHERE gateway_id = ? AND id IN", keys)
    }


def _insert_event(conn: Connection, event: EventRow) -> bool:
    """Insert unless (gateway, id) exists; True if inserted."""
    cursor = conn.execute(
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_PLACEHOLDERS}) ON CONFLICT (gateway_id, id) DO NOTHING",
        _event_values(event),
    )
    return cursor.rowcount > 0


_KEY_COLUMNS: Final = "id, gateway_id, kind, name, key_hash, prefix, created_at_ms, revoked_at_ms"
_SESSION_COLUMNS: Final = (
    "gateway_id, id, client_config, connection_type, transport, ip_hash, tools, user_data, started_at_ms,"
    " received_at_ms, country, ip_kind"
)
_EVENT_COLUMNS: Final = (
    "gateway_id, id, source, session_id, name, primitive_type, operation, latency_ms, success, error_type, args,"
    " result, properties, ts_ms, received_at_ms, " + ", ".join(WEB_FIELD_NAMES)
)
_EVENT_PLACEHOLDERS: Final = ", ".join("?" * (_WEB_START + len(WEB_FIELD_NAMES)))
_GATEWAY_COLUMNS: Final = "id, name, allowed_origins, manifest, created_at_ms, updated_at_ms"
_LEAD_COLUMNS: Final = "id, gateway_id, name, email, company, message, source, created_at_ms, crm_lead_id"


class SQLStore:
    """The `Store` methods over `write` and `fetch`: a subclass starts the writer (`_writer`, on its own
    connection) and provides `fetch` for its database."""

    dialect: Dialect

    def __init__(self) -> None:
        self.writer_stats = WriterStats()
        self._writer: GroupCommitWriter[Any] | None = None
        self._batch_events: list[EventRow] = []
        """Events the jobs of the writer's current transaction stored: their rollups are folded in once, before
        the transaction commits (`fold_batch`), not job by job; on PostgreSQL every statement is a round trip."""

    def writer_queue_depth(self) -> int:
        return 0 if self._writer is None else self._writer.queue_depth()

    async def write(self, job: Callable[[Connection], T], *, background: bool = False) -> T:
        """Run `job` in the writer's next transaction; return once that transaction committed."""
        if self._writer is None:
            raise StorageError("store is not open")
        return await self._writer.write(job, background=background)

    async def _stop_writer(self) -> None:
        """Commit what is queued and close the writer's connection (the store is closing)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query (`?` placeholders) and return its rows."""
        raise NotImplementedError

    async def execute_now(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement committed on its own and return its rows (of a RETURNING clause, say): small state
        that processes share, kept right by the database's row locks, such as rate-limit windows. On SQLite it
        is a job of the writer; PostgreSQL runs it beside the writer's turns, on a connection of the read pool."""
        return await self.write(lambda conn: conn.execute(sql, tuple(params)).fetchall())

    def fold_batch(self, conn: Connection) -> None:
        """The writer's `before_commit`: add the transaction's stored events to the rollups and the usage counts."""
        events, self._batch_events = self._batch_events, []
        add_to_rollups(conn, events)
        add_to_usage(conn, events)
        add_to_experiment_users(conn, events)

    def drop_batch(self) -> None:
        """The writer's `after_failure`: the transaction's events were rolled back, and so are their rollups."""
        self._batch_events = []

    async def _fetch_one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    # -- gateways --------------------------------------------------------------------------------

    async def get_gateway(self, gateway_id: str) -> GatewayRecord | None:
        row = await self._fetch_one(f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = ?", (gateway_id,))
        return None if row is None else _gateway(row)

    async def list_gateways(self) -> list[GatewayRecord]:
        return [_gateway(row) for row in await self.fetch(f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id")]

    async def create_gateway(self, record: GatewayRecord) -> None:
        def job(conn: Connection) -> None:
            cursor = conn.execute(
                f"INSERT INTO gateways ({_GATEWAY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    record.id,
                    record.name,
                    json.dumps(list(record.allowed_origins)),
                    json.dumps(record.manifest),
                    record.created_at_ms,
                    record.updated_at_ms,
                ),
            )
            if cursor.rowcount == 0:
                raise ConflictError(f"gateway {record.id!r} already exists")

        await self.write(job)

    async def update_gateway(
        self,
        gateway_id: str,
        *,
        name: str | None = None,
        allowed_origins: tuple[str, ...] | None = None,
        manifest: dict[str, Any] | None = None,
        now_ms: int,
    ) -> GatewayRecord:
        changes: dict[str, object] = {"updated_at_ms": now_ms}
        if name is not None:
            changes["name"] = name
        if allowed_origins is not None:
            changes["allowed_origins"] = json.dumps(list(allowed_origins))
        if manifest is not None:
            changes["manifest"] = json.dumps(manifest)
        assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours, not input

        def job(conn: Connection) -> GatewayRecord:
            row = conn.execute(
                f"UPDATE gateways SET {assignments} WHERE id = ? RETURNING {_GATEWAY_COLUMNS}",
                (*changes.values(), gateway_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"gateway {gateway_id!r} does not exist")
            return _gateway(row)

        return await self.write(job)

    # -- leads -----------------------------------------------------------------------------------

    async def book_lead(self, lead: LeadRecord, *, dedupe_window_ms: int) -> tuple[LeadRecord, bool]:
        def job(conn: Connection) -> tuple[LeadRecord, bool]:
            earlier = conn.execute(
                f"SELECT {_LEAD_COLUMNS} FROM leads WHERE gateway_id = ? AND email = ? AND created_at_ms >= ?"
                " ORDER BY created_at_ms LIMIT 1",
                (lead.gateway_id, lead.email, lead.created_at_ms - dedupe_window_ms),
            ).fetchone()
            if earlier is not None:
                return _lead(earlier), False
            conn.execute(
                f"INSERT INTO leads ({_LEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lead.id,
                    lead.gateway_id,
                    lead.name,
                    lead.email,
                    lead.company,
                    lead.message,
                    lead.source,
                    lead.created_at_ms,
                    lead.crm_lead_id,
                ),
            )
            return lead, True

        return await self.write(job)

    async def get_lead(self, lead_id: str) -> LeadRecord | None:
        row = await self._fetch_one(f"SELECT {_LEAD_COLUMNS} FROM leads WHERE id = ?", (lead_id,))
        return None if row is None else _lead(row)

    async def set_lead_crm_id(self, gateway_id: str, lead_id: str, crm_lead_id: str) -> LeadRecord | None:
        def job(conn: Connection) -> LeadRecord | None:
            conn.execute(
                "UPDATE leads SET crm_lead_id = ? WHERE gateway_id = ? AND id = ?", (crm_lead_id, gateway_id, lead_id)
            )
            row = conn.execute(
                f"SELECT {_LEAD_COLUMNS} FROM leads WHERE gateway_id = ? AND id = ?", (gateway_id, lead_id)
            ).fetchone()
            return None if row is None else _lead(row)

        return await self.write(job)

    async def list_leads(self, gateway_id: str, *, limit: int = 100) -> list[LeadRecord]:
        rows = await self.fetch(
            f"SELECT {_LEAD_COLUMNS} FROM leads WHERE gateway_id = ? ORDER BY created_at_ms DESC, id LIMIT ?",
            (gateway_id, limit),
        )
        return [_lead(row) for row in rows]

    # -- settings --------------------------------------------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        row = await self._fetch_one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        def job(conn: Connection) -> str:
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return str(conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()[0])

        return await self.write(job)

    # -- keys ------------------------------------------------------------------------------------

    async def create_key(self, record: KeyRecord) -> None:
        def job(conn: Connection) -> None:
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", dataclasses.astuple(record)
            )

        await self.write(job)

    async def list_keys(self, gateway_id: str) -> list[KeyRecord]:
        rows = await self.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE gateway_id = ? ORDER BY created_at_ms, id", (gateway_id,)
        )
        return [_key(row) for row in rows]

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        row = await self._fetch_one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,))
        return None if row is None else _key(row)

    async def revoke_key(self, gateway_id: str, key_id: str, *, now_ms: int) -> KeyRecord:
        def job(conn: Connection) -> KeyRecord:
            conn.execute(
                "UPDATE api_keys SET revoked_at_ms = ? WHERE gateway_id = ? AND id = ? AND revoked_at_ms IS NULL",
                (now_ms, gateway_id, key_id),
            )
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE gateway_id = ? AND id = ?", (gateway_id, key_id)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"gateway {gateway_id!r} has no key {key_id!r}")
            return _key(row)

        return await self.write(job)

    # -- sessions and events ---------------------------------------------------------------------

    async def capture(
        self, sessions: Sequence[SessionRow], events: Sequence[EventRow], *, background: bool = False
    ) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
        sessions, events = await redact_rows(sessions, events)
        session_rows = [
            (
                s.gateway_id,
                s.id,
                s.client_config,
                s.connection_type,
                s.transport,
                s.ip_hash,
                json.dumps(list(s.tools)),
                None if s.user_data is None else json.dumps(s.user_data),
                s.started_at_ms,
                s.received_at_ms,
                s.country,
                s.ip_kind,
            )
            for s in sessions
        ]

        event_values = [_event_values(event) for event in events]  # built on this thread, not the writer's

        def job(conn: Connection) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
            session_status: list[CaptureStatus] = []
            for row in session_rows:
                cursor = conn.execute(
                    f"INSERT INTO mcp_sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (gateway_id, id) DO NOTHING",
                    row,
                )
                session_status.append("stored" if cursor.rowcount else "duplicate")
            known: set[tuple[str, str]] = {(s.gateway_id, s.id) for s in sessions}
            wanted = {(e.gateway_id, e.session_id) for e in events if e.source == "mcp" and e.session_id is not None}
            known |= _existing(conn, "mcp_sessions", wanted - known)
            # One event needs no look-up: its INSERT's rowcount says whether it was new.
            existing = _existing(conn, "events", {(e.gateway_id, e.id) for e in events}) if len(events) > 1 else set()
            event_status: list[CaptureStatus] = []
            fresh: list[tuple[object, ...]] = []
            for event, values in zip(events, event_values, strict=True):
                key = (event.gateway_id, event.id)
                if (
                    event.source == "mcp"
                    and event.session_id is not None
                    and (event.gateway_id, event.session_id) not in known
                ):
                    event_status.append("unknown_session")
                elif key in existing:
                    event_status.append("duplicate")
                else:
                    existing.add(key)  # the same id again later in this batch is a duplicate
                    event_status.append("stored")
                    fresh.append(values)
            if _insert_events(conn, fresh) < len(fresh):  # only possible for a single event
                event_status[0] = "duplicate"
            stored = (e for e, status in zip(events, event_status, strict=True) if status == "stored")
            owed: list[tuple[EventRow, ForwardHints | None]] = [(e, None) for e in stored if is_agent_lead(e)]
            if owed:  # an agent's booked demo is a conversion the gateway's integrations want
                enqueue_deliveries(conn, owed, int(time.time() * 1000))
            self._batch_events.extend(e for e, status in zip(events, event_status, strict=True) if status == "stored")
            return session_status, event_status

        session_status, event_status = await self.write(job, background=background)
        self.writer_stats.record_stored(
            e.source for e, status in zip(events, event_status, strict=True) if status == "stored"
        )
        return session_status, event_status

    async def capture_web(
        self, events: Sequence[EventRow], hints: Sequence[ForwardHints | None] = ()
    ) -> list[tuple[CaptureStatus, EventRow]]:
        _, events = await redact_rows((), events)
        event_hints = list(hints) + [None] * (len(events) - len(hints))

        def job(conn: Connection) -> list[tuple[CaptureStatus, EventRow]]:
            results: list[tuple[CaptureStatus, EventRow]] = []
            fresh: list[EventRow] = []
            owed: list[tuple[EventRow, ForwardHints | None]] = []
            for event, hint in zip(events, event_hints, strict=True):
                if event.session_id is None and event.web is not None and event.web.anonymous_id is not None:
                    event = dataclasses.replace(event, session_id=_visitor_session(conn, event))
                if _insert_event(conn, event):
                    results.append(("stored", event))
                    fresh.append(event)
                    owed.append((event, hint))
                    continue
                stored = conn.execute(
                    f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE gateway_id = ? AND id = ?",
                    (event.gateway_id, event.id),
                ).fetchone()
                results.append(("duplicate", _event(stored)))
            _link_identities(conn, fresh)
            if owed:
                enqueue_deliveries(conn, owed, int(time.time() * 1000))
            self._batch_events.extend(fresh)
            return results

        results = await self.write(job)
        self.writer_stats.record_stored(event.source for status, event in results if status == "stored")
        return results

    async def get_event(self, gateway_id: str, event_id: str) -> EventRow | None:
        row = await self._fetch_one(
            f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE gateway_id = ? AND id = ?",
            (gateway_id, stored_id(event_id)),
        )
        return None if row is None else _event(row)

    async def mcp_rollups(
        self, gateway_id: str, *, since_ms: int, until_ms: int, primitive_type: str | None = None, daily: bool = False
    ) -> list[RollupRow]:
        table, column = ("mcp_rollups_daily", "day_ms") if daily else ("mcp_rollups", "hour_ms")
        where = f"gateway_id = ? AND {column} >= ? AND {column} < ?"
        params: tuple[object, ...] = (gateway_id, since_ms, until_ms)
        if primitive_type is not None:
            where += " AND primitive_type = ?"
            params += (primitive_type,)
        rows = await self.fetch(
            f"SELECT gateway_id, {column}, primitive_type, name, operation, calls, errors, latency_sum_ms,"
            f" latency_max_ms, histogram FROM {table} WHERE {where} ORDER BY {column}, primitive_type, name, operation",
            params,
        )
        return [
            RollupRow(
                gateway_id=row[0],
                hour_ms=row[1],
                primitive_type=row[2],
                name=row[3],
                operation=row[4],
                calls=row[5],
                errors=row[6],
                latency_sum_ms=row[7],
                latency_max_ms=row[8],
                histogram=hist_of(row[9]),
            )
            for row in rows
        ]

    async def sessions_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[SessionRow]:
        where, params = _after(seq, gateway_id)
        rows = await self.fetch(
            f"SELECT {_SESSION_COLUMNS}, seq FROM mcp_sessions WHERE {where} ORDER BY seq LIMIT ?", (*params, limit)
        )
        return [_session(row) for row in rows]

    async def events_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[EventRow]:
        where, params = _after(seq, gateway_id)
        rows = await self.fetch(
            f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE {where} ORDER BY seq LIMIT ?", (*params, limit)
        )
        return [_event(row) for row in rows]

    async def last_seq(self) -> tuple[int, int]:
        row = await self._fetch_one(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM mcp_sessions), (SELECT COALESCE(MAX(seq), 0) FROM events)"
        )
        assert row is not None
        return int(row[0]), int(row[1])


def events_after(conn: Connection, seq: int, limit: int) -> list[EventRow]:
    """The next `limit` events of every gateway after insertion position `seq`, on the writer's connection (the
    rollups' rebuild reads them so)."""
    rows = conn.execute(f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [_event(row) for row in rows]


def _link_identities(conn: Connection, events: Sequence[EventRow]) -> None:
    """Link the visitor of each new `$identify` event to its user; a later identification replaces an earlier one."""
    for event in events:
        web = event.web
        if event.name == IDENTITY_LINK and web is not None and web.anonymous_id and web.user_id_hash:
            conn.execute(
                "INSERT INTO identities (gateway_id, anonymous_id, user_id_hash, identified_at_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (gateway_id, anonymous_id) DO UPDATE SET user_id_hash = excluded.user_id_hash,"
                " identified_at_ms = excluded.identified_at_ms"
                " WHERE excluded.identified_at_ms >= identities.identified_at_ms",
                (event.gateway_id, web.anonymous_id, web.user_id_hash, event.ts_ms),
            )


def _visitor_session(conn: Connection, event: EventRow) -> str:
    """The session of the visitor's latest event if it is recent enough, else a new session id."""
    assert event.web is not None
    row = conn.execute(
        "SELECT session_id, ts_ms FROM events WHERE gateway_id = ? AND anonymous_id = ?"
        " AND ts_ms <= ? ORDER BY ts_ms DESC LIMIT 1",
        (event.gateway_id, event.web.anonymous_id, event.ts_ms),
    ).fetchone()
    if row is not None and row[0] is not None and event.ts_ms - row[1] < SESSION_INACTIVITY_MS:
        return str(row[0])
    return "s_" + uuid.uuid4().hex


def _after(seq: int, gateway_id: str | None) -> tuple[str, tuple[object, ...]]:
    if gateway_id is None:
        return "seq > ?", (seq,)
    return "seq > ? AND gateway_id = ?", (seq, gateway_id)
