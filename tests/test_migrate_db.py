"""`mcp-gateway migrate-db`: a SQLite database copied into PostgreSQL answers the same, and keeps growing there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from mcp_gateway import Settings, create_app
from mcp_gateway.cli import run

from .analytics_support import DAY, HOUR, T0, mcp_call, mcp_session, read_headers, seed, web_event
from .postgres import PostgresServer
from .support import ADMIN_TOKEN, BoundedASGITransport, create_key, lifespan_running

QUESTIONS = (
    ("/analytics/overview", {"since": str(T0), "until": str(T0 + 2 * DAY)}),
    ("/analytics/tools", {"since": str(T0), "until": str(T0 + 2 * DAY)}),
    ("/analytics/pages/top", {"since": str(T0), "until": str(T0 + 2 * DAY)}),
    ("/sessions", {"since": str(T0), "until": str(T0 + 2 * DAY)}),
)
TABLES = ("gateways", "api_keys", "leads", "mcp_sessions", "events", "sessions", "event_rollups", "distinct_sketches")


@pytest.fixture
def empty_postgres(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.release_database(url)


async def answers_and_counts(settings: Settings, headers: dict[str, str]) -> tuple[list[Any], dict[str, int]]:
    """The questions' answers (asked with `headers`) and the row counts per table of a gateway on `settings`."""
    app = create_app(settings)
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answers = [(await http.get(path, params=params, headers=headers)).json() for path, params in QUESTIONS]
            store = app.state.services.store
            counts = {table: (await store.fetch(f"SELECT COUNT(*) FROM {table}"))[0][0] for table in TABLES}
    return answers, counts


async def test_a_copied_database_answers_as_the_original_and_grows_after_its_rows(
    tmp_path: Path, empty_postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "gateway.db"
    on_sqlite = Settings(db_path=db_path, admin_token=ADMIN_TOKEN, retention_days=0)  # T0 data: keep it
    app = create_app(on_sqlite)
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            headers = await read_headers(http)
        await seed(
            app,
            sessions=[mcp_session("m1", T0 + HOUR)],
            events=[
                web_event("page_view", T0 + HOUR, visitor="v1", session="s1", path="/", country="US"),
                web_event("page_view", T0 + 2 * HOUR, visitor="v2", session="s2", path="/pricing"),
                mcp_call("m1", "book_demo", T0 + HOUR, 100.0),
                mcp_call("m1", "search", T0 + HOUR + 60_000, 300.0, success=False),
            ],
        )
    before, counts_before = await answers_and_counts(on_sqlite, headers)

    argv = ["migrate-db", "--db", str(db_path), "--database-url", empty_postgres]
    assert await anyio.to_thread.run_sync(run, argv) == 0
    printed = capsys.readouterr().out
    assert f"events\t{counts_before['events']} rows" in printed

    on_postgres = Settings(
        db_path=tmp_path / "unused.db", database_url=empty_postgres, admin_token=ADMIN_TOKEN, retention_days=0
    )
    after, counts_after = await answers_and_counts(on_postgres, headers)  # the copied read key opens them
    assert counts_after == counts_before
    assert after == before and all("error" not in answer for answer in after)
    assert not (tmp_path / "unused.db").exists()

    app = create_app(on_postgres)  # a new event follows the copied ones in insertion order
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            key = await create_key(http, kind="sk")
            response = await http.post(
                "/v1/track", json={"event": "after_move"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 202, response.text
        rows = await app.state.services.store.fetch("SELECT name FROM events ORDER BY seq DESC LIMIT 1")
    assert rows == [("after_move",)]


async def test_copying_into_a_database_with_gateways_refuses_and_changes_nothing(
    tmp_path: Path, empty_postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "gateway.db"
    for settings in (
        Settings(db_path=db_path, admin_token=ADMIN_TOKEN, retention_days=0),
        Settings(
            db_path=tmp_path / "unused.db", database_url=empty_postgres, admin_token=ADMIN_TOKEN, retention_days=0
        ),
    ):
        async with lifespan_running(create_app(settings)):  # both get their demo gateway
            pass

    argv = ["migrate-db", "--db", str(db_path), "--database-url", empty_postgres]
    assert await anyio.to_thread.run_sync(run, argv) == 1

    used, error = capsys.readouterr().err.split("\n", 1)  # the line naming the database, then the error
    assert used.startswith("database: ")
    assert error.startswith("error: ") and "empty database" in error


async def test_migrate_db_without_a_database_url_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MCP_GATEWAY_DATABASE_URL", raising=False)

    assert await anyio.to_thread.run_sync(run, ["migrate-db", "--db", str(tmp_path / "gateway.db")]) == 1

    assert "--database-url" in capsys.readouterr().err
