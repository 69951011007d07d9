"""A throwaway PostgreSQL server for the tests: `initdb` into a temporary folder, started on a free loopback port,
with one migrated template database that tests' databases are copies of (`CREATE DATABASE ... TEMPLATE`); a test's
database is emptied when it ends and given to the next test.

`scripts/install_postgres.sh` installs the server (Debian's `postgresql`); `MCP_GATEWAY_TEST_POSTGRES_URL`
(`postgresql://user@host:port/postgres`, a role that may create databases) points the tests at a server of
your own instead. Run as root, the server runs as the `postgres` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest

from mcp_gateway.store import PostgresStore

from .support import DATABASE_URL_VARIABLE

URL_VARIABLE: Final = "MCP_GATEWAY_TEST_POSTGRES_URL"
_WORKER: Final = os.environ.get("PYTEST_XDIST_WORKER")
TEMPLATE: Final = f"gateway_template_{_WORKER}" if _WORKER else "gateway_template"
"""One per pytest-xdist worker (`gateway_template_gw0`, ...): workers sharing a server named in `URL_VARIABLE`
must not drop each other's template while it is being copied. Each worker starts a server of its own otherwise."""

SERVER_SETTINGS: Final = ("listen_addresses=127.0.0.1", "max_connections=300")
NOT_CRASH_SAFE: Final = ("fsync=off", "full_page_writes=off")
"""A test server's data dies with the test run, so crash safety of the server itself buys nothing there; the
gateway's own commits still wait for the server (synchronous_commit stays on). Benchmarks keep them on."""


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries on this machine, and no server named in `URL_VARIABLE`."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL is not installed: run scripts/install_postgres.sh (or `make test`)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A server the tests own (`start`), or one named by `MCP_GATEWAY_TEST_POSTGRES_URL`; `admin_url` reaches its
    `postgres` database as a role that may create databases."""

    def __init__(self, admin_url: str, stop: contextlib.ExitStack) -> None:
        self.admin_url = admin_url
        self._stop = stop
        self._free: list[str] = []

    @classmethod
    def start(cls, *, crash_safe: bool = False) -> PostgresServer:
        stack = contextlib.ExitStack()
        if url := os.environ.get(URL_VARIABLE):
            server = cls(url, stack)
        else:
            server = cls(_start_server(stack, crash_safe=crash_safe), stack)
        try:
            server._create_template()
        except BaseException:
            stack.close()
            raise
        return server

    def stop(self) -> None:
        self._stop.close()

    def version(self) -> str:
        with psycopg.connect(self.admin_url) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
        return str(row[0]) if row else "?"

    def url_of(self, database: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + database

    def create_database(self) -> str:
        """An empty database with the gateway's schema; its URL. One a test released is reused (emptied), since
        emptying one takes ~20 ms and copying the template ~300 ms here."""
        if self._free:
            return self.url_of(self._free.pop())
        name = "test_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return self.url_of(name)

    def release_database(self, url: str) -> None:
        """Empty the database at `url` (every table, sequences restarted, other connections ended) for the next
        test."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
                )
            ]
            sequences = [
                row[0] for row in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            ]
            try:
                _delete_all(conn, tables, sequences)
            except psycopg.errors.InsufficientPrivilege:  # a server of the developer's own, as a role that may not
                conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        self._free.append(name)

    def _create_template(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            conn.execute(f"CREATE DATABASE \"{TEMPLATE}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")

        async def migrate() -> None:
            store = PostgresStore(self.url_of(TEMPLATE))
            await store.open()
            await store.close()

        asyncio.run(migrate())


def _delete_all(conn: psycopg.Connection[Any], tables: list[str], sequences: list[str]) -> None:
    """Empty `tables` and restart `sequences` in one transaction, foreign keys unchecked (every table goes). `DELETE`
    rather than `TRUNCATE`, which makes new files for each table and index: ~15 ms instead of ~500 ms a test on a
    loaded machine, paid by every PostgreSQL test. Unchecked foreign keys need a superuser (as of the servers the
    tests start); `InsufficientPrivilege` otherwise."""
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for table in tables:
            conn.execute(f"DELETE FROM {table}")
        for sequence in sequences:
            conn.execute(f"ALTER SEQUENCE {sequence} RESTART")


def _start_server(stack: contextlib.ExitStack, *, crash_safe: bool) -> str:
    """initdb + pg_ctl start in a temporary folder; the admin URL. The server stops when `stack` closes."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="mcp-gateway-pg-"))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        + ["--locale=C", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    settings = (*SERVER_SETTINGS, *(() if crash_safe else NOT_CRASH_SAFE), f"unix_socket_directories={root}")
    options = " ".join(f"-c {setting}" for setting in settings)
    started = subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", f"-p {port} {options}"]
        + ["start"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log.read_text(errors='replace')}")
    stack.callback(
        subprocess.run, [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False
    )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@contextlib.contextmanager
def running_server(*, crash_safe: bool = False) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the block; `crash_safe` keeps fsync on (benchmarks), off by default (tests)."""
    server = PostgresServer.start(crash_safe=crash_safe)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def database_for(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None on SQLite; on PostgreSQL, a fresh database's URL, dropped afterwards. The URL is also in
    `MCP_GATEWAY_DATABASE_URL` meanwhile (and that variable unset on SQLite), so the gateway processes and CLI
    commands a test runs use the same database."""
    with pytest.MonkeyPatch.context() as environment:
        if backend == "sqlite":
            environment.delenv(DATABASE_URL_VARIABLE, raising=False)
            yield None
            return
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
        environment.setenv(DATABASE_URL_VARIABLE, url)
        try:
            yield url
        finally:
            server.release_database(url)
