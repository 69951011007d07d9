"""The embedded default store: one SQLite file in WAL mode, one writer thread doing group commit.

Writes go through the shared group-commit writer (`writer.py`) on one connection with
`synchronous=FULL`, so a committed write is on disk. Reads run on a small pool of read connections in
worker threads and never wait for the writer (WAL readers see the last commit).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread

from ..errors import StorageError
from .base import Dialect
from .migrations import apply_migrations
from .rollups import ROLLUP_MIGRATIONS, rebuild_rollups_if_stale
from .sqlstore import SQLStore, events_after
from .writer import Driver, GroupCommitWriter, transaction

T = TypeVar("T")

READ_CONNECTIONS: Final = 4
"""Read connections kept open; reads beyond this many at once wait for one."""

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a connection waits on another process's lock before failing."""

STATISTICS_EVERY_CHANGES: Final = 500_000
"""The writer refreshes the planner's statistics after this many changed rows (events and rollups)."""


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


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _refresh_statistics(conn: sqlite3.Connection) -> None:
    """Let the query planner know the tables' shapes (ANALYZE, sampling at most 1000 rows an index,
    a few milliseconds): without statistics SQLite can join through the wrong index and turn a
    10 ms question into a minute."""
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")


class _Statistics:
    """Refreshes the planner's statistics after every `STATISTICS_EVERY_CHANGES` changed rows."""

    def __init__(self) -> None:
        self._changes_at_refresh: int | None = None

    def __call__(self, conn: sqlite3.Connection) -> None:
        if self._changes_at_refresh is None:
            self._changes_at_refresh = conn.total_changes
        elif conn.total_changes - self._changes_at_refresh > STATISTICS_EVERY_CHANGES:
            self._changes_at_refresh = conn.total_changes
            _refresh_statistics(conn)


class SQLiteStore(SQLStore):
    """`Store` on one SQLite file."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._read_slots = threading.BoundedSemaphore(READ_CONNECTIONS)
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        conn = await anyio.to_thread.run_sync(self._open_writer)
        driver = Driver(
            connect=lambda: _connect(self.path),
            begin=_begin,
            error=sqlite3.Error,
            integrity_error=sqlite3.IntegrityError,
            before_commit=self.fold_batch,
            after_failure=self.drop_batch,
            after_batch=_Statistics(),
        )
        self._writer = GroupCommitWriter(driver, conn, self.writer_stats, name="sqlite-writer")

    def _open_writer(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
            migrated = bool(apply_migrations(conn, _begin) & ROLLUP_MIGRATIONS)
            with transaction(conn, _begin):
                rebuild_rollups_if_stale(conn, lambda after, limit: events_after(conn, after, limit), migrated=migrated)
            _refresh_statistics(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        return conn

    async def close(self) -> None:
        await self._stop_writer()
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
            self._readers = queue.SimpleQueue()  # drop the closed connections, or a reopened store reads through them

    # -- writes and reads ------------------------------------------------------------------------

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a read connection in a worker thread."""
        return await anyio.to_thread.run_sync(self._run_read, query)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self.read(lambda conn: conn.execute(sql, tuple(params)).fetchall())

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
