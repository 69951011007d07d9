"""The store for scale: a PostgreSQL server shared by any number of gateway processes (psycopg 3).

The same `SQLStore` methods, migrations and group-commit writer as SQLite: the writer thread holds one
synchronous connection (its jobs are the same synchronous rollup code SQLite runs), and reads go through
an async connection pool, so analytics never take a thread. The SQL is SQLite's with `?` placeholders,
rewritten here to psycopg's `%s` (`to_pg`).

Several processes write to one database, and two things must hold across them:
- the live stream and `events tail` follow `seq`, so rows must become visible in `seq` order;
- the rollups are read-modify-written (sketch registers, histograms), so two writers must not interleave.
Each write transaction therefore begins by taking one advisory lock (`WRITE_LOCK`), held until it commits:
writers take turns, a sequence value handed out under the lock is committed before the next writer draws
one, and each process still folds every job waiting into its turn (group commit), so a turn carries many
requests' writes. Readers never wait for it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import psycopg
import psycopg_pool
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader
from psycopg.types.numeric import Int8Dumper
from psycopg.types.string import StrDumperUnknown

from ..errors import StorageError
from .base import Dialect
from .migrations import POSTGRES_MIGRATIONS, apply_migrations
from .rollups import ROLLUP_MIGRATIONS, rebuild_rollups_if_stale
from .sqlstore import SQLStore, events_after
from .writer import Driver, GroupCommitWriter, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

WRITE_LOCK: Final = 0x6D63_7067_7772  # "mcpgwr"
"""The advisory lock every write transaction holds (`pg_advisory_xact_lock`): one writer at a time, across
processes, so commit order is `seq` order and rollup read-modify-writes never interleave."""

READ_CONNECTIONS: Final = 8
"""Most connections the read pool opens; reads beyond this many at once wait for one."""

CONNECT_TIMEOUT_S: Final = 10


class _Number(Loader):
    """PostgreSQL's `numeric` as Python numbers: an int when whole (SUM of BIGINT is numeric there, an integer in
    SQLite), else a float, so the analytics get the same types from both databases."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data).decode("ascii")
        try:
            return int(text)
        except ValueError:  # a fraction, an exponent, NaN or Infinity
            return float(text)


class _Text(StrDumperUnknown):
    """Strings with NUL characters, which PostgreSQL's text cannot hold, with U+FFFD in their place (SQLite keeps
    them): an id of `%00` in a URL is then simply not found, and a name with one is stored, not refused."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


ADAPTERS: Final = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(int, Int8Dumper)  # every integer parameter a BIGINT: `? * 86400000` must not overflow
ADAPTERS.register_dumper(str, _Text)
ADAPTERS.register_loader("numeric", _Number)


@functools.lru_cache(maxsize=4096)
def to_pg(sql: str) -> str:
    """SQL with `?` placeholders as psycopg wants it: `%s` for each `?` outside string literals, `%%` for `%`."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


def _translate_ddl(statement: str) -> str:
    """A migration statement for PostgreSQL: SQLite's rowid-alias `seq` column is a BIGSERIAL there."""
    return statement.replace("seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY")


class _Connection:
    """A synchronous psycopg connection speaking `Connection` (`?` placeholders, `executemany` on the connection)."""

    def __init__(self, raw: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[tuple[Any, ...]]:
        return self.raw.execute(to_pg(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> psycopg.Cursor[tuple[Any, ...]]:
        cursor = self.raw.cursor()
        cursor.executemany(to_pg(sql), parameters)
        return cursor

    def close(self) -> None:
        self.raw.close()


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _begin_write(conn: _Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))


class PostgresStore(SQLStore):
    """`Store` on a PostgreSQL database at `url` (`postgresql://user:password@host:port/dbname`)."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        try:
            raw = psycopg.connect(self.url, autocommit=True, context=ADAPTERS, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to {redacted(self.url)}: {exc}") from exc
        return _Connection(raw)

    async def open(self) -> None:
        if self._writer is not None:
            return
        conn = await anyio.to_thread.run_sync(self._open_writer)
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = (
            psycopg_pool.AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=READ_CONNECTIONS,
                kwargs={"autocommit": True, "context": ADAPTERS, "connect_timeout": CONNECT_TIMEOUT_S},
                open=False,
                name="mcp-gateway-reads",
            )
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            conn.close()
            raise StorageError(f"cannot connect to {redacted(self.url)}: {exc}") from exc
        self._pool = pool
        driver = Driver(
            connect=self._connect,
            begin=_begin_write,
            error=psycopg.Error,
            integrity_error=psycopg.IntegrityError,
            before_commit=self.fold_batch,
            after_failure=self.drop_batch,
        )
        self._writer = GroupCommitWriter(driver, conn, self.writer_stats, name="postgres-writer")

    def _open_writer(self) -> _Connection:
        conn = self._connect()
        try:
            applied = apply_migrations(conn, _begin_write, _translate_ddl, POSTGRES_MIGRATIONS)
            migrated = bool(applied & ROLLUP_MIGRATIONS)
            with transaction(conn, _begin_write):
                rebuild_rollups_if_stale(conn, lambda after, limit: events_after(conn, after, limit), migrated=migrated)
        except psycopg.Error as exc:
            conn.close()
            raise StorageError(f"cannot open database {redacted(self.url)}: {exc}") from exc
        return conn

    async def close(self) -> None:
        await self._stop_writer()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- writes and reads ------------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self._run(sql, params)

    async def execute_now(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self._run(sql, params)

    async def _run(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """One statement on a pooled connection in autocommit mode: its rows, if it has any."""
        if self._pool is None:
            raise StorageError("store is not open")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(to_pg(sql), tuple(params))
                return [] if cursor.description is None else await cursor.fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StorageError(f"database request failed: {exc}") from exc
