"""`DELETE /projects/{id}` answers at once and the purge runs in the background: the project is gone for every key
from the answer on, its data goes afterwards, and a purge a restart interrupted resumes when the app starts again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.accounts import deletion
from mcp_gateway.accounts.deletion import ordered_purges
from mcp_gateway.store import Store
from mcp_gateway.store.purge import gateway_tables, purge_gateway

from .analytics_support import seed, store_of, web_event
from .support import ADMIN_HEADERS, BoundedASGITransport, lifespan_running

NOW_MS = 1_800_000_000_000


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield app, client


async def rows_of(store: Store, gateway_id: str) -> dict[str, int]:
    counts = {
        table: (await store.fetch(f"SELECT COUNT(*) FROM {table} WHERE gateway_id = ?", (gateway_id,)))[0][0]
        for table in await gateway_tables(store)
    }
    return {table: count for table, count in counts.items() if count}


async def account_with_projects(http: httpx.AsyncClient, app: Starlette) -> tuple[dict[str, str], dict[str, Any]]:
    """Account `acme`'s key header and its project "Doomed", with 365 page views over about 10 days."""
    created = await http.post("/v1/accounts", json={"id": "acme", "name": "Acme"}, headers=ADMIN_HEADERS)
    key = {"X-API-Key": created.json()["api_key"]}
    project: dict[str, Any] = (await http.post("/projects", json={"name": "Doomed"}, headers=key)).json()
    await http.post("/projects", json={"name": "Kept"}, headers=key)
    step = 40 * 60_000  # the purge deletes an hour of a table per writer job: keep the span short
    events = [web_event("page_view", NOW_MS - n * step, visitor=f"v{n}", gateway_id=project["id"]) for n in range(365)]
    await seed(app, events=events)
    return key, project


async def test_a_deleted_project_is_gone_at_once_while_its_purge_runs_and_a_restart_resumes_the_purge(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    halfway = anyio.Event()

    async def purge_that_stops_halfway(store: Store, gateway_id: str, **_: Any) -> dict[str, int]:
        await store.execute_now(
            "DELETE FROM events WHERE gateway_id = ? AND ts_ms < ?", (gateway_id, NOW_MS - 5 * 86_400_000)
        )
        halfway.set()
        await anyio.sleep_forever()  # the process is stopped here, mid-purge
        raise AssertionError("unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(deletion, "purge_gateway", purge_that_stops_halfway)
        async with running(settings) as (app, http):
            key, doomed = await account_with_projects(http, app)
            gid = doomed["id"]
            deleted = await http.delete(f"/projects/{gid}", headers=key)
            assert deleted.status_code == 202, deleted.text
            assert deleted.json()["removing"]["events"] == 365
            with anyio.fail_after(10):
                await halfway.wait()
            # Gone for every reader while its rows are still being deleted.
            assert (await http.get(f"/projects/{gid}", headers=key)).status_code == 404
            assert (await http.get(f"/projects/{gid}", headers=ADMIN_HEADERS)).status_code == 404
            listed = (await http.get("/projects", headers=key)).json()["projects"]
            assert [p["name"] for p in listed] == ["Kept"]
            assert gid not in str((await http.get("/projects", headers=ADMIN_HEADERS)).json())
            assert (await http.get("/account", headers=key)).json()["projects_count"] == 1
            assert (await http.get("/stats", params={"project": gid}, headers=key)).status_code == 404
            assert (await http.get("/stats", params={"project": gid}, headers=ADMIN_HEADERS)).status_code == 404
            assert (await http.get("/stats", headers=key)).status_code == 200  # "Kept" is its only project now
            track = await http.post("/track", json={"token": doomed["project_token"], "event": "x"})
            assert track.status_code == 401
            assert (await http.delete(f"/projects/{gid}", headers=key)).status_code == 404
            again = await http.post("/projects", json={"name": "Doomed"}, headers=key)  # the name is free again
            assert again.status_code == 201 and again.json()["id"] != gid
            assert 0 < (await rows_of(store_of(app), gid))["events"] < 365
            assert await ordered_purges(store_of(app)) == [gid]

    async with running(settings) as (app, http):  # the restart: the purge goes on by itself
        with anyio.fail_after(30):
            await app.state.purger.wait_idle()
        store = store_of(app)
        assert await rows_of(store, gid) == {}
        assert await store.get_gateway(gid) is None
        assert await ordered_purges(store) == []
        names = sorted(p["name"] for p in (await http.get("/projects", headers=key)).json()["projects"])
        assert names == ["Doomed", "Kept"]


async def test_deleting_answers_what_will_go_and_the_purge_leaves_other_projects_alone(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    key, doomed = await account_with_projects(http, app)
    [kept] = [p for p in (await http.get("/projects", headers=key)).json()["projects"] if p["name"] == "Kept"]
    await seed(app, events=[web_event("page_view", NOW_MS, visitor="k", gateway_id=kept["id"])])
    kept_before = await rows_of(store_of(app), kept["id"])

    deleted = await http.delete(f"/projects/{doomed['id']}", headers=key)
    with anyio.fail_after(30):
        await app.state.purger.wait_idle()

    assert deleted.status_code == 202
    assert deleted.json() == {
        "id": doomed["id"],
        "deleted": True,
        "status": "purging",
        "removing": {**deleted.json()["removing"], "events": 365},
    }
    assert await rows_of(store_of(app), doomed["id"]) == {}
    assert await rows_of(store_of(app), kept["id"]) == kept_before


async def test_a_purge_that_fails_keeps_its_order_and_the_app_and_a_later_round_finishes_it(
    app: Starlette, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, doomed = await account_with_projects(http, app)
    failed = anyio.Event()
    real_purge = purge_gateway

    async def broken(store: Store, gateway_id: str, **_: Any) -> dict[str, int]:
        failed.set()
        raise RuntimeError("the database went away")

    monkeypatch.setattr(deletion, "purge_gateway", broken)
    assert (await http.delete(f"/projects/{doomed['id']}", headers=key)).status_code == 202
    with anyio.fail_after(10):
        await failed.wait()
    assert (await http.get("/health")).status_code == 200
    assert await ordered_purges(store_of(app)) == [doomed["id"]]
    assert (await http.get(f"/projects/{doomed['id']}", headers=key)).status_code == 404  # still gone for readers

    monkeypatch.setattr(deletion, "purge_gateway", real_purge)
    app.state.purger.wake()  # what the next order, or the retry a minute later, does
    with anyio.fail_after(30):
        await app.state.purger.wait_idle()
    assert await rows_of(store_of(app), doomed["id"]) == {}
    assert await ordered_purges(store_of(app)) == []
