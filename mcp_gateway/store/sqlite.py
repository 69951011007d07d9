"""The embedded default store: one SQLite file in WAL mode, one writer thread doing group commit.

Every write is a job handed to the writer thread. The writer takes every job that is waiting
(up to `MAX_BATCH_JOBS`), runs each inside its own SAVEPOINT of one transaction, and commits once:
concurrent writers share one fsync, and a failing job rolls back alone. A write's coroutine
returns only after that COMMIT, so a caller that answers 2xx after `await store.write(...)` has
answered for data that is on disk (`synchronous=FULL`). Reads run on a small pool of read
connections in worker threads and never wait for the writer (WAL readers see the last commit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread

from ..errors import ConflictError, NotFoundError, StorageError
from .base import (
    SESSION_INACTIVITY_MS,
    WEB_FIELD_NAMES,
    CaptureStatus,
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
from .migrations import MIGRATIONS
from .rollups import add_to_rollups, hist_of, rebuild_rollups_if_stale

logger = logging.getLogger(__name__)

T = TypeVar("T")
_Job = tuple[Callable[[sqlite3.Connection], Any], "concurrent.futures.Future[Any]"]

MAX_BATCH_JOBS: Final = 1000
"""Most write jobs the writer folds into one transaction."""

READ_CONNECTIONS: Final = 4
"""Read connections kept open; reads beyond this many at once wait for one."""

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a connection waits on another process's lock before failing."""

_STOP: Final = object()


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def _apply_migrations(conn: sqlite3.Connection) -> set[int]:
    """Apply pending migrations; the versions this call applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        pending = {version for version, _ in MIGRATIONS} - applied
        for version, script in MIGRATIONS:
            if version in applied:
                continue
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, int(time.time() * 1000)))
            logger.info("applied schema migration %d", version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return pending


ROLLUP_MIGRATIONS: Final = frozenset({4, 6, 8, 9, 10, 13, 14, 16})
"""Migrations that add rollup tables: applying one to a database with events rebuilds the rollups."""
STATISTICS_EVERY_CHANGES: Final = 500_000
"""The writer refreshes the planner's statistics after this many changed rows (events and rollups)."""


def _refresh_statistics(conn: sqlite3.Connection) -> None:
    """Let the query planner know the tables' shapes (ANALYZE, sampling at most 1000 rows an index,
    a few milliseconds): without statistics SQLite can join through the wrong index and turn a
    10 ms question into a minute."""
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")


def _gateway(row: sqlite3.Row | tuple[Any, ...]) -> GatewayRecord:
    return GatewayRecord(
        id=row[0],
        name=row[1],
        allowed_origins=tuple(json.loads(row[2])),
        manifest=json.loads(row[3]),
        created_at_ms=row[4],
        updated_at_ms=row[5],
    )


def _lead(row: sqlite3.Row | tuple[Any, ...]) -> LeadRecord:
    return LeadRecord(*row)


def _key(row: sqlite3.Row | tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(*row)


def _session(row: sqlite3.Row | tuple[Any, ...]) -> SessionRow:
    values = list(row)
    values[6] = tuple(json.loads(values[6]))
    values[7] = None if values[7] is None else json.loads(values[7])
    return SessionRow(*values)


_COMMON_EVENT_FIELDS: Final = tuple(name for name in EventRow.__dataclass_fields__ if name not in ("web", "seq"))
_WEB_START: Final = len(_COMMON_EVENT_FIELDS)
"""Index of the first `WebFields` column in an event row."""


def _event(row: sqlite3.Row | tuple[Any, ...]) -> EventRow:
    values = list(row)
    values[8] = None if values[8] is None else bool(values[8])
    values[12] = None if values[12] is None else json.loads(values[12])
    web_values = values[_WEB_START : _WEB_START + len(WEB_FIELD_NAMES)]
    web = WebFields(*web_values) if any(v is not None for v in web_values) else None
    common = dict(zip(_COMMON_EVENT_FIELDS, values[:_WEB_START], strict=True))
    return EventRow(**common, web=web, seq=values[_WEB_START + len(WEB_FIELD_NAMES)])


def _event_values(event: EventRow) -> tuple[object, ...]:
    web = event.web or _NO_WEB
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
        None if event.properties is None else json.dumps(event.properties),
        event.ts_ms,
        event.received_at_ms,
        *dataclasses.astuple(web),
    )


_NO_WEB: Final = WebFields()


_ROWS_PER_INSERT: Final = 500
"""Events per multi-row INSERT (32 parameters each; SQLite allows 32766)."""


def _insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Insert `_event_values` rows unless (gateway, id) exists, 500 per statement; how many went in.

    One statement is one `sqlite3_step`, so the writer thread gives up and takes back the GIL once
    per 500 events instead of once per event, which under load (the event loop holds the GIL) is
    where its time went.
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


def _existing(conn: sqlite3.Connection, table: str, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (gateway_id, id) keys `table` holds: one query per gateway and 500 keys, not one per key."""
    by_gateway: dict[str, list[str]] = {}
    for gateway_id, item_id in keys:
        by_gateway.setdefault(gateway_id, []).append(item_id)
    found: set[tuple[str, str]] = set()
    for gateway_id, ids in by_gateway.items():
        for start in range(0, len(ids), _ROWS_PER_INSERT):
            chunk = ids[start : start + _ROWS_PER_INSERT]
            rows = conn.execute(
                f"SELECT id FROM {table} WHERE gateway_id = ? AND id IN ({', '.join('?' * len(chunk))})",
                (gateway_id, *chunk),
            )
            found.update((gateway_id, row[0]) for row in rows)
    return found


def _insert_event(conn: sqlite3.Connection, event: EventRow) -> bool:
    """Insert unless (gateway, id) exists; True if inserted."""
    cursor = conn.execute(
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_PLACEHOLDERS}) ON CONFLICT (gateway_id, id) DO NOTHING",
        _event_values(event),
    )
    return cursor.rowcount > 0


_KEY_COLUMNS: Final = "id, gateway_id, kind, name, key_hash, prefix, created_at_ms, revoked_at_ms"
_SESSION_COLUMNS: Final = (
    "gateway_id, id, client_config, connection_type, transport, ip_hash, tools, user_data, started_at_ms,"
    " received_at_ms, country"
)
_EVENT_COLUMNS: Final = (
    "gateway_id, id, source, session_id, name, primitive_type, operation, latency_ms, success, error_type, args,"
    " result, properties, ts_ms, received_at_ms, " + ", ".join(WEB_FIELD_NAMES)
)
_EVENT_PLACEHOLDERS: Final = ", ".join("?" * (_WEB_START + len(WEB_FIELD_NAMES)))
_GATEWAY_COLUMNS: Final = "id, name, allowed_origins, manifest, created_at_ms, updated_at_ms"
_LEAD_COLUMNS: Final = "id, gateway_id, name, email, company, message, source, created_at_ms"


class SQLiteStore:
    """`Store` on one SQLite file."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._read_slots = threading.BoundedSemaphore(READ_CONNECTIONS)
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.writer_stats = WriterStats()

    def writer_queue_depth(self) -> int:
        return self._jobs.qsize()

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        conn = await anyio.to_thread.run_sync(self._open_writer)
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True)
        self._writer.start()

    def _open_writer(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
            new_versions = _apply_migrations(conn)
            migrated = bool(new_versions & ROLLUP_MIGRATIONS)
            rebuild_rollups_if_stale(conn, lambda after, limit: _events_after(conn, after, limit), migrated=migrated)
            _refresh_statistics(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        return conn

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._jobs.put(_STOP)
            await anyio.to_thread.run_sync(writer.join)
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
            self._readers = queue.SimpleQueue()  # drop the closed connections, or a reopened store reads through them

    # -- the writer ------------------------------------------------------------------------------

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job` in the writer's next transaction; return once that transaction committed."""
        if self._writer is None:
            raise StorageError("store is not open")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return await asyncio.wrap_future(future)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        changes_at_statistics = conn.total_changes
        try:
            while True:
                first = self._jobs.get()
                if first is _STOP:
                    return
                batch: list[_Job] = [first]  # type: ignore[list-item]
                stop = False
                while len(batch) < MAX_BATCH_JOBS:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)  # type: ignore[arg-type]
                self._commit_batch(conn, batch)
                if conn.total_changes - changes_at_statistics > STATISTICS_EVERY_CHANGES:
                    changes_at_statistics = conn.total_changes
                    try:
                        _refresh_statistics(conn)
                    except sqlite3.Error:
                        logger.exception("refreshing the query planner's statistics failed")
                if stop:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((future, None, exc))
                else:
                    outcomes.append((future, result, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.exception("write transaction of %d jobs failed", len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StorageError(f"write failed: {exc}")
            for _, future in batch:
                future.set_exception(error)
            self.writer_stats.record_batch(len(batch), failed=True)
            return
        self.writer_stats.record_batch(len(batch))
        for future, result, failure in outcomes:
            if failure is None:
                future.set_result(result)
            elif isinstance(failure, sqlite3.IntegrityError):
                future.set_exception(ConflictError(str(failure)))
            elif isinstance(failure, sqlite3.Error):
                future.set_exception(StorageError(str(failure)))
            else:
                future.set_exception(failure)

    # -- reads -----------------------------------------------------------------------------------

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a read connection in a worker thread."""
        return await anyio.to_thread.run_sync(self._run_read, query)

    def _run_read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._read_slots:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                conn = self._new_reader()
            try:
                return query(conn)
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from exc
            finally:
                self._readers.put(conn)

    def _new_reader(self) -> sqlite3.Connection:
        try:
            conn = _connect(self.path, read_only=True)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        with self._readers_lock:
            self._all_readers.append(conn)
        return conn

    # -- gateways --------------------------------------------------------------------------------

    async def get_gateway(self, gateway_id: str) -> GatewayRecord | None:
        def query(conn: sqlite3.Connection) -> GatewayRecord | None:
            row = conn.execute(f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
            return None if row is None else _gateway(row)

        return await self.read(query)

    async def list_gateways(self) -> list[GatewayRecord]:
        def query(conn: sqlite3.Connection) -> list[GatewayRecord]:
            return [_gateway(row) for row in conn.execute(f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id")]

        return await self.read(query)

    async def create_gateway(self, record: GatewayRecord) -> None:
        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO gateways ({_GATEWAY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.name,
                        json.dumps(list(record.allowed_origins)),
                        json.dumps(record.manifest),
                        record.created_at_ms,
                        record.updated_at_ms,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"gateway {record.id!r} already exists") from exc

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

        def job(conn: sqlite3.Connection) -> GatewayRecord:
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
        def job(conn: sqlite3.Connection) -> tuple[LeadRecord, bool]:
            earlier = conn.execute(
                f"SELECT {_LEAD_COLUMNS} FROM leads WHERE gateway_id = ? AND email = ? AND created_at_ms >= ?"
                " ORDER BY created_at_ms LIMIT 1",
                (lead.gateway_id, lead.email, lead.created_at_ms - dedupe_window_ms),
            ).fetchone()
            if earlier is not None:
                return _lead(earlier), False
            conn.execute(
                f"INSERT INTO leads ({_LEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lead.id,
                    lead.gateway_id,
                    lead.name,
                    lead.email,
                    lead.company,
                    lead.message,
                    lead.source,
                    lead.created_at_ms,
                ),
            )
            return lead, True

        return await self.write(job)

    async def get_lead(self, lead_id: str) -> LeadRecord | None:
        def query(conn: sqlite3.Connection) -> LeadRecord | None:
            row = conn.execute(f"SELECT {_LEAD_COLUMNS} FROM leads WHERE id = ?", (lead_id,)).fetchone()
            return None if row is None else _lead(row)

        return await self.read(query)

    async def list_leads(self, gateway_id: str, *, limit: int = 100) -> list[LeadRecord]:
        def query(conn: sqlite3.Connection) -> list[LeadRecord]:
            rows = conn.execute(
                f"SELECT {_LEAD_COLUMNS} FROM leads WHERE gateway_id = ? ORDER BY created_at_ms DESC LIMIT ?",
                (gateway_id, limit),
            )
            return [_lead(row) for row in rows]

        return await self.read(query)

    # -- settings --------------------------------------------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        def query(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self.read(query)

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        def job(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return str(conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()[0])

        return await self.write(job)

    # -- keys ------------------------------------------------------------------------------------

    async def create_key(self, record: KeyRecord) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", dataclasses.astuple(record)
            )

        await self.write(job)

    async def list_keys(self, gateway_id: str) -> list[KeyRecord]:
        def query(conn: sqlite3.Connection) -> list[KeyRecord]:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE gateway_id = ? ORDER BY created_at_ms, id", (gateway_id,)
            )
            return [_key(row) for row in rows]

        return await self.read(query)

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        def query(conn: sqlite3.Connection) -> KeyRecord | None:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
            return None if row is None else _key(row)

        return await self.read(query)

    async def revoke_key(self, gateway_id: str, key_id: str, *, now_ms: int) -> KeyRecord:
        def job(conn: sqlite3.Connection) -> KeyRecord:
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
        self, sessions: Sequence[SessionRow], events: Sequence[EventRow]
    ) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
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
            )
            for s in sessions
        ]

        event_values = [_event_values(event) for event in events]  # built on this thread, not the writer's

        def job(conn: sqlite3.Connection) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
            session_status: list[CaptureStatus] = []
            for row in session_rows:
                cursor = conn.execute(
                    f"INSERT INTO mcp_sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
            add_to_rollups(conn, [e for e, status in zip(events, event_status, strict=True) if status == "stored"])
            return session_status, event_status

        session_status, event_status = await self.write(job)
        self.writer_stats.events_stored.update(
            e.source for e, status in zip(events, event_status, strict=True) if status == "stored"
        )
        return session_status, event_status

    async def capture_web(self, events: Sequence[EventRow]) -> list[tuple[CaptureStatus, EventRow]]:
        def job(conn: sqlite3.Connection) -> list[tuple[CaptureStatus, EventRow]]:
            results: list[tuple[CaptureStatus, EventRow]] = []
            fresh: list[EventRow] = []
            for event in events:
                if event.session_id is None and event.web is not None and event.web.anonymous_id is not None:
                    event = dataclasses.replace(event, session_id=_visitor_session(conn, event))
                if _insert_event(conn, event):
                    results.append(("stored", event))
                    fresh.append(event)
                    continue
                stored = conn.execute(
                    f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE gateway_id = ? AND id = ?",
                    (event.gateway_id, event.id),
                ).fetchone()
                results.append(("duplicate", _event(stored)))
            add_to_rollups(conn, fresh)
            return results

        results = await self.write(job)
        self.writer_stats.events_stored.update(event.source for status, event in results if status == "stored")
        return results

    async def get_event(self, gateway_id: str, event_id: str) -> EventRow | None:
        def query(conn: sqlite3.Connection) -> EventRow | None:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE gateway_id = ? AND id = ?", (gateway_id, event_id)
            ).fetchone()
            return None if row is None else _event(row)

        return await self.read(query)

    async def mcp_rollups(
        self, gateway_id: str, *, since_ms: int, until_ms: int, primitive_type: str | None = None, daily: bool = False
    ) -> list[RollupRow]:
        table, column = ("mcp_rollups_daily", "day_ms") if daily else ("mcp_rollups", "hour_ms")
        where = f"gateway_id = ? AND {column} >= ? AND {column} < ?"
        params: tuple[object, ...] = (gateway_id, since_ms, until_ms)
        if primitive_type is not None:
            where += " AND primitive_type = ?"
            params += (primitive_type,)

        def query(conn: sqlite3.Connection) -> list[RollupRow]:
            rows = conn.execute(
                f"SELECT gateway_id, {column}, primitive_type, name, operation, calls, errors, latency_sum_ms,"
                f" latency_max_ms, histogram FROM {table} WHERE {where} ORDER BY {column}",
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

        return await self.read(query)

    async def sessions_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[SessionRow]:
        where, params = _after(seq, gateway_id)

        def query(conn: sqlite3.Connection) -> list[SessionRow]:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS}, seq FROM mcp_sessions WHERE {where} ORDER BY seq LIMIT ?", (*params, limit)
            )
            return [_session(row) for row in rows]

        return await self.read(query)

    async def events_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[EventRow]:
        where, params = _after(seq, gateway_id)

        def query(conn: sqlite3.Connection) -> list[EventRow]:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE {where} ORDER BY seq LIMIT ?", (*params, limit)
            )
            return [_event(row) for row in rows]

        return await self.read(query)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self.read(lambda conn: conn.execute(sql, tuple(params)).fetchall())

    async def last_seq(self) -> tuple[int, int]:
        def query(conn: sqlite3.Connection) -> tuple[int, int]:
            sessions = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM mcp_sessions").fetchone()[0]
            events = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            return int(sessions), int(events)

        return await self.read(query)


def _events_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[EventRow]:
    rows = conn.execute(f"SELECT {_EVENT_COLUMNS}, seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [_event(row) for row in rows]


def _visitor_session(conn: sqlite3.Connection, event: EventRow) -> str:
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
