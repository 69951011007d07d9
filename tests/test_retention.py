"""Retention: tracked data older than its kind's period goes (events 30 days, analytics 30, health stats 60 by
default, after seed 000's table), everything else stays and answers as before."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.config_sources import load_settings
from mcp_gateway.store.retention import TIMED_TABLES, prune

from .analytics_support import DAY, HOUR, T0, mcp_call, mcp_session, read_headers, seed, store_of, web_event
from .support import ADMIN_TOKEN, DEMO, BoundedASGITransport, create_key, lifespan_running, serve_in_thread, stored_rows

PERIODS = ("event_retention_days", "analytics_retention_days", "health_retention_days")

CUTOFF = T0 + 30 * DAY
"""The data set spans days 0 to 40; the cutoff keeps days 30 on."""
RECENT = {"since": str(CUTOFF), "until": str(T0 + 41 * DAY)}


async def seed_old_and_recent(app: Starlette) -> None:
    """Old: visitor v1 on day 1, MCP session m-old on day 2. Recent: v2 on day 35, m-new on day 36. Session m-long
    started on day 2 and called a tool on day 2 and on day 36."""
    await seed(
        app,
        sessions=[mcp_session("m-old", T0 + 2 * DAY), mcp_session("m-new", T0 + 36 * DAY)]
        + [mcp_session("m-long", T0 + 2 * DAY)],
        events=[
            web_event("page_view", T0 + DAY, visitor="v1", session="s1", path="/", country="US"),
            web_event("page_view", T0 + 35 * DAY, visitor="v2", session="s2", path="/pricing", country="DE"),
            mcp_call("m-old", "search", T0 + 2 * DAY, 20.0),
            mcp_call("m-new", "search", T0 + 36 * DAY, 30.0),
            mcp_call("m-long", "search", T0 + 2 * DAY + HOUR, 40.0),
            mcp_call("m-long", "book_demo", T0 + 36 * DAY, 50.0),
        ],
    )


async def answers(app: Starlette, headers: dict[str, str]) -> list[Any]:
    transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return [
            (await http.get(path, params=RECENT, headers=headers)).json()
            for path in ("/analytics/overview", "/analytics/tools", "/analytics/pages/top", "/sessions")
        ]


async def test_pruning_deletes_what_is_older_than_the_cutoff_and_nothing_recent(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    headers = await read_headers(http)
    await seed_old_and_recent(app)
    before = await answers(app, headers)
    store = store_of(app)

    deleted = await prune(store, CUTOFF)

    assert deleted["events"] == 3 and deleted["mcp_sessions"] == 1
    for table, column, _, _ in TIMED_TABLES:
        [(oldest,)] = await store.fetch(f"SELECT MIN({column}) FROM {table} WHERE gateway_id = ?", (DEMO,))
        assert oldest is None or oldest >= CUTOFF, table
    events = await store.fetch("SELECT name, session_id FROM events ORDER BY ts_ms, name")
    assert events == [("page_view", "s2"), ("book_demo", "m-long"), ("search", "m-new")]
    sessions = await store.fetch("SELECT id FROM mcp_sessions ORDER BY id")
    assert sessions == [("m-long",), ("m-new",)]  # m-long still has an event: its row stays
    assert await store.get_gateway(DEMO) is not None and await store.list_keys(DEMO)
    assert await answers(app, headers) == before
    assert await prune(store, CUTOFF) == {"mcp_sessions": 0, "identities": 0}  # a second round finds nothing


async def test_a_visitors_identity_link_goes_with_its_last_event(app: Starlette) -> None:
    await seed_old_and_recent(app)
    store = store_of(app)
    links = [("v1", "user-a", T0 + DAY), ("v2", "user-b", T0 + DAY), ("v3", "user-c", T0 + 40 * DAY)]
    await store.write(
        lambda conn: [
            conn.execute("INSERT INTO identities VALUES (?, ?, ?, ?)", (DEMO, visitor, user, at))
            for visitor, user, at in links
        ]
    )

    deleted = await prune(store, CUTOFF)

    assert deleted["identities"] == 1
    kept = await store.fetch("SELECT anonymous_id FROM identities ORDER BY anonymous_id")
    assert kept == [("v2",), ("v3",)]  # v1's events are gone; v2 still sends them; v3 identified after the cutoff


async def test_a_gateway_with_a_retention_period_prunes_when_it_starts(settings: Settings) -> None:
    now = int(time.time() * 1000)
    app = create_app(settings)
    async with lifespan_running(app):
        await seed(
            app,
            events=[
                web_event("page_view", now - 40 * DAY, visitor="v1", session="s1", path="/"),
                web_event("page_view", now - DAY, visitor="v2", session="s2", path="/"),
            ],
        )

    app = create_app(settings.model_copy(update=dict.fromkeys(PERIODS, 30)))
    with anyio.fail_after(10):
        async with lifespan_running(app):
            store = store_of(app)
            while (await store.fetch("SELECT COUNT(*) FROM events"))[0][0] != 1:
                await anyio.sleep(0.05)
            assert await store.fetch("SELECT session_id FROM events") == [("s2",)]


async def test_by_default_health_stats_outlive_the_analytics_as_the_seeds_table_says(
    settings: Settings, db_path: Path
) -> None:
    """Seed 000: analytics 30 days, health stats (success/error counts) 60 days. A tool called 70, 45 and 10 days
    ago, a page viewed 45 and 10 days ago; a gateway started with the default periods keeps the 45-day-old call in
    its tool counts, not the 45-day-old page view in its traffic, and neither the 70-day-old call."""
    now = int(time.time() * 1000)
    app = create_app(settings)  # retention off while the data goes in
    async with lifespan_running(app):
        await seed(
            app,
            sessions=[mcp_session("m1", now - 70 * DAY)],
            events=[
                mcp_call("m1", "search", now - 70 * DAY, 20.0),
                mcp_call("m1", "search", now - 45 * DAY, 20.0),
                mcp_call("m1", "search", now - 10 * DAY, 20.0),
                web_event("page_view", now - 45 * DAY, visitor="v1", session="s1", path="/"),
                web_event("page_view", now - 10 * DAY, visitor="v2", session="s2", path="/"),
            ],
        )
        read = await create_read_key(app)
    defaults = Settings(db_path=db_path, database_url=settings.database_url, admin_token=ADMIN_TOKEN)

    with serve_in_thread(create_app(defaults), db_path) as server:
        with anyio.fail_after(10):  # the first round ends with the (web) sessions table
            while stored_rows(db_path, "SELECT id FROM sessions WHERE last_ms < ?", now - 30 * DAY):
                await anyio.sleep(0.05)
        async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": read}) as http:
            tools = (await http.get("/analytics/tools", params={"period": "90d"})).json()
            pages = (await http.get("/analytics/pages/top", params={"period": "90d"})).json()

    assert [(row["name"], row["calls"]) for row in tools["primitives"]] == [("search", 2)]
    assert [(row["path"], row["views"]) for row in pages["pages"]] == [("/", 1)]


async def create_read_key(app: Starlette) -> str:
    transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await create_key(http, DEMO, "read")


def test_the_old_single_period_still_sets_all_three_unless_one_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no config file of the machine's
    for name in ("RETENTION_DAYS", *(period.upper() for period in PERIODS)):
        monkeypatch.delenv(f"MCP_GATEWAY_{name}", raising=False)
    assert load_settings().settings.model_dump(include=set(PERIODS)) == {
        "event_retention_days": 30,
        "analytics_retention_days": 30,
        "health_retention_days": 60,
    }
    monkeypatch.setenv("MCP_GATEWAY_RETENTION_DAYS", "7")
    monkeypatch.setenv("MCP_GATEWAY_HEALTH_RETENTION_DAYS", "0")
    assert load_settings().settings.model_dump(include=set(PERIODS)) == {
        "event_retention_days": 7,
        "analytics_retention_days": 7,
        "health_retention_days": 0,
    }
