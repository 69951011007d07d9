"""The SQLite store: migrations, group commit, the booking dedupe window, durability across reopen."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from mcp_gateway.errors import ConflictError, NotFoundError, StorageError
from mcp_gateway.leads import DEDUPE_WINDOW_MS
from mcp_gateway.store import GatewayRecord, LeadRecord, PostgresStore, SQLiteStore
from mcp_gateway.store.base import Connection
from mcp_gateway.store.migrations import MIGRATIONS
from mcp_gateway.store.sqlstore import SQLStore

from .support import stored_rows

NOW_MS = 1_800_000_000_000
WAIT = 20.0
"""Longest any store test may wait for the writer thread."""


def gateway(gateway_id: str = "acme") -> GatewayRecord:
    return GatewayRecord(
        id=gateway_id,
        name=gateway_id.title(),
        allowed_origins=("https://acme.example",),
        manifest={"system_hint": "hi"},
        created_at_ms=NOW_MS,
        updated_at_ms=NOW_MS,
    )


def lead(email: str, *, gateway_id: str = "acme", at_ms: int = NOW_MS, name: str = "Ada") -> LeadRecord:
    return LeadRecord(
        id=str(uuid.uuid4()),
        gateway_id=gateway_id,
        name=name,
        email=email,
        company=None,
        message=None,
        source="mcp",
        created_at_ms=at_ms,
    )


@pytest.fixture
async def store(db_path: Path, database_url: str | None) -> AsyncIterator[SQLStore]:
    store = PostgresStore(database_url) if database_url else SQLiteStore(db_path)
    await store.open()
    await store.create_gateway(gateway())
    try:
        yield store
    finally:
        await store.close()


def applied_migrations(db_path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


# -- migrations --------------------------------------------------------------------------------------


async def test_migrations_apply_once_and_reopening_is_idempotent(db_path: Path) -> None:
    for _ in range(3):
        store = SQLiteStore(db_path)
        await store.open()
        await store.close()

    assert applied_migrations(db_path) == [version for version, _ in MIGRATIONS]
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_opening_a_database_of_an_older_release_migrates_it_and_keeps_its_data(db_path: Path) -> None:
    version, script = MIGRATIONS[0]
    with contextlib.closing(sqlite3.connect(db_path)) as conn:  # the schema as the first release left it
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT)")
        for statement in filter(None, (part.strip() for part in script.split(";"))):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, NOW_MS))
        conn.execute(
            "INSERT INTO gateways VALUES (?, ?, ?, ?, ?, ?)",
            ("acme", "Acme", '["https://acme.example"]', '{"system_hint": "hi"}', NOW_MS, NOW_MS),
        )
        conn.commit()

    store = SQLiteStore(db_path)
    await store.open()
    try:
        assert await store.get_gateway("acme") == gateway()
    finally:
        await store.close()
    assert applied_migrations(db_path) == [version for version, _ in MIGRATIONS]


# -- group commit ------------------------------------------------------------------------------------


async def test_many_concurrent_writes_are_all_committed(store: SQLStore, db_path: Path) -> None:
    results: list[tuple[LeadRecord, bool]] = []

    async def book(index: int) -> None:
        results.append(await store.book_lead(lead(f"person{index}@example.com"), dedupe_window_ms=DEDUPE_WINDOW_MS))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            for index in range(200):
                tg.start_soon(book, index)

    assert len(results) == 200 and all(created for _, created in results)
    assert stored_rows(db_path, "SELECT COUNT(*) AS n FROM leads") == [{"n": 200}]  # another connection sees all
    assert {lead.id for lead in await store.list_leads("acme", limit=1000)} == {lead.id for lead, _ in results}


async def test_writes_queued_while_the_writer_is_busy_share_one_transaction(store: SQLStore) -> None:
    stats = store.writer_stats
    transactions_before, jobs_before = stats.transactions, stats.jobs
    writer_busy = threading.Event()
    release_writer = threading.Event()

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        release_writer.wait(WAIT)

    async def book(index: int) -> None:
        await store.book_lead(lead(f"person{index}@example.com"), dedupe_window_ms=DEDUPE_WINDOW_MS)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, hold_the_writer)
            await anyio.to_thread.run_sync(writer_busy.wait, WAIT)
            for index in range(200):
                tg.start_soon(book, index)
            await anyio.wait_all_tasks_blocked()  # every booking is queued behind the held job
            release_writer.set()

    assert (stats.transactions - transactions_before, stats.jobs - jobs_before) == (2, 201)  # the held job, then 200
    assert len(await store.list_leads("acme", limit=1000)) == 200


async def test_a_foreground_write_commits_before_background_writes_queued_ahead_of_it(store: SQLStore) -> None:
    stats = store.writer_stats
    writer_busy, release_writer = threading.Event(), threading.Event()
    ran: list[str] = []
    committed: list[str] = []  # in the order the callers resumed
    transactions_before, jobs_before = stats.transactions, stats.jobs

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        release_writer.wait(WAIT)

    async def write(label: str, background: bool) -> None:
        await store.write(lambda _: ran.append(label), background=background)
        committed.append(label)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, hold_the_writer)
            await anyio.to_thread.run_sync(writer_busy.wait, WAIT)
            for index in range(3):
                tg.start_soon(write, f"tracking{index}", True)
                await anyio.wait_all_tasks_blocked()
            tg.start_soon(write, "lead", False)
            await anyio.wait_all_tasks_blocked()
            release_writer.set()

    assert ran == ["lead", "tracking0", "tracking1", "tracking2"]
    assert committed[0] == "lead"
    # The held job, the lead, then the background writes together in a transaction of their own.
    assert (stats.transactions - transactions_before, stats.jobs - jobs_before) == (3, 5)


async def test_a_write_whose_caller_gave_up_is_not_run_and_the_writer_goes_on(store: SQLStore) -> None:
    writer_busy, release_writer = threading.Event(), threading.Event()
    ran: list[str] = []

    def record(label: str) -> Callable[[Connection], None]:
        return lambda _: ran.append(label)

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        release_writer.wait(WAIT)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, hold_the_writer)
            await anyio.to_thread.run_sync(writer_busy.wait, WAIT)  # the next job waits for another transaction
            async with anyio.create_task_group() as abandoned:
                abandoned.start_soon(store.write, record("abandoned"))
                await anyio.wait_all_tasks_blocked()
                abandoned.cancel_scope.cancel()  # the caller stops waiting while the job is queued
            release_writer.set()
        await store.write(record("after"))

    assert ran == ["after"]


async def test_a_failing_write_rolls_back_alone_in_a_shared_transaction(store: SQLStore) -> None:
    release_writer = threading.Event()
    outcomes: dict[str, object] = {}

    async def attempt(label: str, write: Callable[[], Any]) -> None:
        try:
            outcomes[label] = await write()
        except Exception as exc:
            outcomes[label] = exc

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, lambda _: release_writer.wait(WAIT))
            tg.start_soon(attempt, "before", lambda: store.create_gateway(gateway("before")))
            tg.start_soon(attempt, "duplicate", lambda: store.create_gateway(gateway("acme")))
            tg.start_soon(attempt, "missing", lambda: store.update_gateway("nope", name="x", now_ms=NOW_MS))
            tg.start_soon(attempt, "after", lambda: store.create_gateway(gateway("after")))
            await anyio.wait_all_tasks_blocked()
            release_writer.set()

    assert isinstance(outcomes["duplicate"], ConflictError)
    assert isinstance(outcomes["missing"], NotFoundError)
    assert [g.id for g in await store.list_gateways()] == ["acme", "after", "before"]


# -- the dedupe window -------------------------------------------------------------------------------


async def test_concurrent_bookings_with_the_same_email_store_exactly_one_lead(store: SQLStore) -> None:
    results: list[tuple[LeadRecord, bool]] = []

    async def book(index: int) -> None:
        results.append(await store.book_lead(lead("ada@example.com", name=f"Ada {index}"), dedupe_window_ms=60_000))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            for index in range(50):
                tg.start_soon(book, index)

    winners = [stored for stored, created in results if created]
    assert len(results) == 50
    assert len(winners) == 1
    assert {stored.id for stored, _ in results} == {winners[0].id}
    assert await store.list_leads("acme") == winners


async def test_booking_outside_the_window_or_on_another_gateway_is_a_new_lead(store: SQLStore) -> None:
    await store.create_gateway(gateway("other"))
    window = 60_000
    first, created_first = await store.book_lead(lead("ada@example.com"), dedupe_window_ms=window)
    inside, created_inside = await store.book_lead(
        lead("ada@example.com", at_ms=NOW_MS + window), dedupe_window_ms=window
    )
    later, created_later = await store.book_lead(
        lead("ada@example.com", at_ms=NOW_MS + window + 1), dedupe_window_ms=window
    )
    elsewhere, created_elsewhere = await store.book_lead(
        lead("ada@example.com", gateway_id="other"), dedupe_window_ms=window
    )

    assert (created_first, created_inside, created_later, created_elsewhere) == (True, False, True, True)
    assert inside == first
    assert later.id != first.id
    assert [stored.id for stored in await store.list_leads("acme")] == [later.id, first.id]
    assert [stored.id for stored in await store.list_leads("other")] == [elsewhere.id]


async def test_lead_for_an_unknown_gateway_is_refused(store: SQLStore) -> None:
    with pytest.raises(ConflictError):
        await store.book_lead(lead("ada@example.com", gateway_id="nope"), dedupe_window_ms=DEDUPE_WINDOW_MS)

    assert await store.list_leads("nope") == []


# -- durability and lifecycle ------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.create_gateway(gateway())
    stored, _ = await store.book_lead(lead("ada@example.com"), dedupe_window_ms=DEDUPE_WINDOW_MS)
    assert await store.put_setting_if_absent("colour", "blue") == "blue"
    await store.close()

    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
        assert await reopened.get_gateway("acme") == gateway()
        assert await reopened.get_lead(stored.id) == stored
        assert await reopened.get_setting("colour") == "blue"
        assert await reopened.put_setting_if_absent("colour", "red") == "blue"
    finally:
        await reopened.close()


async def test_the_same_store_object_can_be_closed_and_reopened(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.create_gateway(gateway())
    assert [g.id for g in await store.list_gateways()] == ["acme"]  # opens a read connection
    await store.close()

    await store.open()
    try:
        assert [g.id for g in await store.list_gateways()] == ["acme"]
        await store.create_gateway(gateway("second"))
        assert [g.id for g in await store.list_gateways()] == ["acme", "second"]
    finally:
        await store.close()


async def test_writing_to_a_closed_store_is_a_storage_error(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()

    with pytest.raises(StorageError):
        await store.create_gateway(gateway())


async def test_opening_a_path_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"this is not a database file" * 100)

    with pytest.raises(StorageError):
        await SQLiteStore(not_a_database).open()
    with pytest.raises(StorageError):
        await SQLiteStore(tmp_path).open()  # a directory


async def test_create_and_update_report_conflicts_and_missing_gateways(store: SQLStore) -> None:
    with pytest.raises(ConflictError):
        await store.create_gateway(gateway())
    with pytest.raises(NotFoundError):
        await store.update_gateway("nope", name="x", now_ms=NOW_MS)

    updated = await store.update_gateway("acme", allowed_origins=(), manifest={"a": 1}, now_ms=NOW_MS + 5)
    assert updated == GatewayRecord(
        id="acme", name="Acme", allowed_origins=(), manifest={"a": 1}, created_at_ms=NOW_MS, updated_at_ms=NOW_MS + 5
    )
    assert await store.get_gateway("acme") == updated
