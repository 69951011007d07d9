"""Seed 002's projects and account routes, sent as the seed's playbook sends them: the answers' fields, the Response
Tips (201 new / 200 `existing: true`), the Anomaly Flags (403 past the project limit, 409 naming the name), the
account key's revoke, what DELETE removes, and that one account's key never touches another's projects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.cli import run
from mcp_gateway.store.purge import gateway_tables
from mcp_gateway.store.retention import prune

from .analytics_support import mcp_call, mcp_session, seed, store_of, web_event
from .support import ADMIN_HEADERS, DEMO, BoundedASGITransport, create_key, jsonrpc_request, lifespan_running

SITE: Final = "https://shop.example.com"
NOW_MS: Final = 1_800_000_000_000


async def new_account(http: httpx.AsyncClient, account_id: str = "acme") -> str:
    """An account made with the admin API; its account key."""
    created = await http.post(
        "/v1/accounts", json={"id": account_id, "name": account_id.title()}, headers=ADMIN_HEADERS
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["api_key"]
    assert key.startswith("ak_") and created.json()["api_key_prefix"] == key[:9]
    return key


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create_project(http: httpx.AsyncClient, key: str, name: str, **body: Any) -> dict[str, Any]:
    response = await http.post("/projects", json={"name": name, **body}, headers=auth(key))
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings.model_copy(update=changes))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield app, client


# -- the seed's playbook 1, over a real socket ------------------------------------------------------------------


async def test_the_seeds_first_playbook_sets_up_a_project_and_tracks_into_it(live_http: httpx.AsyncClient) -> None:
    key = await new_account(live_http)

    account = await live_http.get("/account", headers=auth(key))
    assert account.status_code == 200
    assert account.json() | {"created_at_ms": 0, "api_key_created_at_ms": 0} == {
        "id": "acme",
        "name": "Acme",
        "tier": "self-hosted",
        "projects_count": 0,
        "projects_limit": None,
        "events_total": 0,
        "tier_limits": {"max_events_lifetime": None, "retention_days": None, "rate_limit_rpm": 1000},
        "api_key_prefix": key[:9],
        "api_key_created_at_ms": 0,
        "created_at_ms": 0,
    }

    created = await live_http.post("/projects", json={"name": "My Shop", "allowed_origins": [SITE]}, headers=auth(key))
    assert created.status_code == 201
    project = created.json()
    token = project["project_token"]
    assert token.startswith("pk_") and project["project_token_prefix"] == token[:9]
    assert project["existing"] is False and project["id"].startswith("my-shop-")
    assert (project["name"], project["allowed_origins"], project["account_id"]) == ("My Shop", [SITE], "acme")
    assert (project["usage_today"], project["has_api_key"]) == (0, False)
    assert f'data-gateway="{project["id"]}"' in project["snippet"]

    shown = (await live_http.get(f"/projects/{project['id']}", params={"token": key})).json()
    assert shown["usage_today"] == 0 and "project_token" not in shown

    tracked = await live_http.post(
        "/track", json={"token": token, "event": "page_view", "properties": {"path": "/"}}, headers={"Origin": SITE}
    )
    assert tracked.status_code == 202 and tracked.json()["queued"] is True

    events = await live_http.get("/events", params={"project": project["id"], "event": "page_view"}, headers=auth(key))
    assert events.status_code == 200, events.text
    assert [event["event"] for event in events.json()["events"]] == ["page_view"]
    # With one project, the account key's analytics need no `project`.
    assert (await live_http.get("/stats", headers=auth(key))).json()["total_events"] == 1

    listed = (await live_http.get("/projects", headers={"Authorization": f"Bearer {key}"})).json()["projects"]
    assert [(p["id"], p["usage_today"], p["events_total"], p["has_api_key"]) for p in listed] == [
        (project["id"], 1, 1, False)
    ]
    assert (await live_http.get("/account", headers=auth(key))).json()["projects_count"] == 1


# -- the Response Tip and the Anomaly Flags ------------------------------------------------------------------


async def test_a_repeated_create_is_200_existing_and_different_origins_are_a_409_naming_the_name(
    http: httpx.AsyncClient,
) -> None:
    key = await new_account(http)
    first = await create_project(http, key, "Landing", allowed_origins=[SITE])

    for body in ({"name": "Landing"}, {"name": "  landing ", "allowed_origins": [SITE]}):
        again = await http.post("/projects", json=body, headers=auth(key))
        assert again.status_code == 200, again.text
        assert again.json()["existing"] is True and again.json()["id"] == first["id"]
        assert again.json()["project_token"] is None  # the token was shown once, at creation

    clash = await http.post(
        "/projects", json={"name": "LANDING", "allowed_origins": ["https://other.example"]}, headers=auth(key)
    )
    assert clash.status_code == 409
    assert clash.json()["field"] == "name" and clash.json()["conflict"] == {"id": first["id"], "name": "Landing"}

    other = await create_project(http, key, "Docs")
    renamed = await http.patch(f"/projects/{other['id']}", json={"name": "landing"}, headers=auth(key))
    assert renamed.status_code == 409 and renamed.json()["conflict"]["name"] == "Landing"
    assert len((await http.get("/projects", headers=auth(key))).json()["projects"]) == 2


async def test_concurrent_creates_of_one_name_make_one_project(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    answers = await asyncio.gather(
        *(http.post("/projects", json={"name": "Race"}, headers=auth(key)) for _ in range(8))
    )
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert [answer.json()["existing"] for answer in answers].count(False) == 1


async def test_the_same_name_in_another_account_is_another_project(http: httpx.AsyncClient) -> None:
    acme, globex = await new_account(http, "acme"), await new_account(http, "globex")
    mine, theirs = await create_project(http, acme, "Shop"), await create_project(http, globex, "Shop")
    assert mine["id"] != theirs["id"] and mine["project_token"] != theirs["project_token"]


async def test_patch_changes_the_name_and_origins_the_track_route_then_checks(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    project = await create_project(http, key, "Shop")
    patched = await http.patch(
        f"/projects/{project['id']}", json={"name": "Shop EU", "allowed_origins": [SITE]}, headers=auth(key)
    )
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["allowed_origins"]) == ("Shop EU", [SITE])
    body = {"token": project["project_token"], "event": "page_view"}
    assert (await http.post("/track", json=body, headers={"Origin": SITE})).status_code == 202
    refused = await http.post("/track", json=body, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403


async def test_past_the_project_limit_create_is_403_and_the_account_shows_the_limit(settings: Settings) -> None:
    async with app_with(settings, max_projects=2) as (_, http):
        key = await new_account(http)
        await create_project(http, key, "One")
        await create_project(http, key, "Two")
        third = await http.post("/projects", json={"name": "Three"}, headers=auth(key))
        assert third.status_code == 403
        assert (third.json()["code"], third.json()["limit"], third.json()["limit_value"]) == (
            "projects_limit_reached",
            "projects_limit",
            2,
        )
        # A retry of an existing project is no new project: still 200 at the limit.
        assert (await http.post("/projects", json={"name": "two"}, headers=auth(key))).status_code == 200
        account = (await http.get("/account", headers=auth(key))).json()
        assert (account["projects_count"], account["projects_limit"]) == (2, 2)


async def test_past_max_events_lifetime_ingest_is_refused_with_403(settings: Settings) -> None:
    async with app_with(settings, max_events_lifetime=3, gateway_cache_seconds=0, event_retention_days=7) as (_, http):
        key = await new_account(http)
        project = await create_project(http, key, "Shop")
        token, project_id = project["project_token"], project["id"]
        batch = {"token": token, "events": [{"event": "page_view"}, {"event": "signup"}, {"event": "page_view"}]}
        assert (await http.post("/track/batch", json=batch)).status_code == 202
        refused = await http.post("/track", json={"token": token, "event": "page_view"})
        assert refused.status_code == 403
        assert (refused.json()["code"], refused.json()["limit"]) == ("events_limit_reached", "max_events_lifetime")
        account = (await http.get("/account", headers=auth(key))).json()
        assert account["events_total"] == 3
        assert account["tier_limits"] == {"max_events_lifetime": 3, "retention_days": 7, "rate_limit_rpm": 1000}
        # The track_event MCP tool is told the same, as a tool error.
        call = jsonrpc_request("tools/call", {"name": "track_event", "arguments": {"event": "signup"}})
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        tool = await http.post("/v1/mcp/sse", params={"gid": project_id}, json=call, headers=headers)
        assert tool.status_code == 200, tool.text
        assert tool.json()["result"]["isError"] is True
        assert "events_limit_reached" in tool.json()["result"]["content"][0]["text"]
        # Another account's projects have their own count.
        other = (await create_project(http, await new_account(http, "globex"), "Shop"))["project_token"]
        assert (await http.post("/track", json={"token": other, "event": "page_view"})).status_code == 202


async def test_the_lifetime_count_counts_each_stored_event_once_and_retention_does_not_lower_it(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    key = await new_account(http)
    project = await create_project(http, key, "Shop")
    event = web_event("page_view", NOW_MS - 40 * 86_400_000, visitor="v", gateway_id=project["id"])
    store = store_of(app)
    assert [status for status, _ in await store.capture_web([event, event])] == ["stored", "duplicate"]
    assert [status for status, _ in await store.capture_web([event])] == ["duplicate"]
    deleted = await prune(store, NOW_MS - 30 * 86_400_000)
    assert deleted["events"] == 1
    assert (await http.get(f"/projects/{project['id']}", headers=auth(key))).json()["events_total"] == 1
    assert (await http.get("/account", headers=auth(key))).json()["events_total"] == 1


async def test_the_account_key_has_the_per_key_api_limit(settings: Settings) -> None:
    async with app_with(settings, api_rate_limit=2) as (_, http):
        key = await new_account(http)
        assert (await http.get("/account", headers=auth(key))).headers["x-ratelimit-limit"] == "2"
        assert (await http.get("/projects", headers=auth(key))).status_code == 200
        limited = await http.get("/account", headers=auth(key))
        assert limited.status_code == 429 and "retry-after" in limited.headers
        assert (await http.get("/account", headers=ADMIN_HEADERS)).status_code == 200  # a key of its own


# -- the account key --------------------------------------------------------------------------------------------


async def test_revoke_key_answers_a_new_key_once_and_the_old_one_stops_at_once(http: httpx.AsyncClient) -> None:
    old = await new_account(http)
    project = await create_project(http, old, "Shop")
    revoked = await http.post("/account/revoke-key", headers=auth(old))
    assert revoked.status_code == 200
    new = revoked.json()["api_key"]
    assert new.startswith("ak_") and new != old and revoked.json()["account_id"] == "acme"

    for path in ("/account", "/projects", f"/projects/{project['id']}", "/stats"):
        refused = await http.get(path, headers=auth(old))
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer"), path
        assert (await http.get(path, headers=auth(new))).status_code == 200, path
    account = (await http.get("/account", headers=auth(new))).json()
    assert account["api_key_prefix"] == new[:9] and "api_key" not in account
    # The project token is not the account key: it kept working.
    assert (await http.post("/track", json={"token": project["project_token"], "event": "x"})).status_code == 202


async def test_existing_gateways_belong_to_the_default_account_which_the_admin_and_cli_give_a_key(
    http: httpx.AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = await http.post("/v1/accounts/default/key", headers=ADMIN_HEADERS)
    assert issued.status_code == 200
    key = issued.json()["api_key"]
    listed = (await http.get("/projects", headers=auth(key))).json()["projects"]
    assert [project["id"] for project in listed] == [DEMO]
    assert (await http.get("/stats", headers=auth(key))).status_code == 200  # its one project

    database = ["--db", str(settings.db_path)] + (
        ["--database-url", settings.database_url] if settings.database_url else []
    )
    assert await anyio.to_thread.run_sync(run, ["accounts", "key", "default", *database]) == 0
    by_cli = capsys.readouterr().out.strip()
    assert by_cli.startswith("ak_")
    assert (await http.get("/account", headers=auth(by_cli))).json()["id"] == "default"
    assert await anyio.to_thread.run_sync(run, ["accounts", "create", "initech", "--name", "Initech", *database]) == 0
    created = capsys.readouterr().out.strip()
    assert (await http.get("/account", headers=auth(created))).json()["projects_count"] == 0
    assert await anyio.to_thread.run_sync(run, ["accounts", "create", "initech", "--name", "Again", *database]) == 1


async def test_the_admin_token_manages_every_account(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    mine = await create_project(http, key, "Shop")
    everything = (await http.get("/projects", headers=ADMIN_HEADERS)).json()["projects"]
    assert {DEMO, mine["id"]} <= {project["id"] for project in everything}
    assert (await http.get("/account", params={"account": "acme"}, headers=ADMIN_HEADERS)).json()["projects_count"] == 1
    made = await http.post("/projects", params={"account": "acme"}, json={"name": "Blog"}, headers=ADMIN_HEADERS)
    assert made.status_code == 201 and made.json()["account_id"] == "acme"
    assert (await http.get("/stats", params={"project": mine["id"]}, headers=ADMIN_HEADERS)).status_code == 200
    accounts = (await http.get("/v1/accounts", headers=ADMIN_HEADERS)).json()["accounts"]
    assert {account["id"]: account["projects_count"] for account in accounts}["acme"] == 2
    assert (await http.post("/v1/accounts", json={"id": "acme", "name": "x"}, headers=ADMIN_HEADERS)).status_code == 409
    assert (await http.get("/account", params={"account": "nope"}, headers=ADMIN_HEADERS)).status_code == 404


# -- delete -----------------------------------------------------------------------------------------------------


async def test_delete_removes_the_project_and_every_row_about_it_and_nothing_else(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    key = await new_account(http)
    doomed, kept = await create_project(http, key, "Doomed"), await create_project(http, key, "Kept")
    for project in (doomed, kept):
        gid = project["id"]
        await seed(
            app,
            sessions=[mcp_session(f"s-{gid}", NOW_MS - 3_600_000, gateway_id=gid)],
            events=[
                web_event("page_view", NOW_MS - 40 * 86_400_000, visitor="v", gateway_id=gid),
                web_event("page_view", NOW_MS, visitor="v", gateway_id=gid),
                mcp_call(f"s-{gid}", "book_demo", NOW_MS - 60_000, 5.0, gateway_id=gid),
            ],
        )
        await create_key(http, gid, "read")
        assert (await http.post("/track", json={"token": project["project_token"], "event": "x"})).status_code == 202
    store = store_of(app)
    tables = await gateway_tables(store)

    async def rows(gateway_id: str) -> dict[str, int]:
        counts = {
            t: (await store.fetch(f"SELECT COUNT(*) FROM {t} WHERE gateway_id = ?", [gateway_id]))[0][0] for t in tables
        }
        return {table: count for table, count in counts.items() if count}

    kept_before = await rows(kept["id"])
    assert {"events", "mcp_sessions", "api_keys", "sessions", "event_rollups", "project_usage"} <= set(
        await rows(doomed["id"])
    )

    doomed_before = await rows(doomed["id"])
    deleted = await http.delete(f"/projects/{doomed['id']}", headers=auth(key))
    assert deleted.status_code == 202
    assert deleted.json()["deleted"] is True and deleted.json()["status"] == "purging"
    assert deleted.json()["removing"] == doomed_before and doomed_before["events"] == 4
    with anyio.fail_after(30):
        await app.state.purger.wait_idle()
    assert await rows(doomed["id"]) == {}
    assert await store.get_gateway(doomed["id"]) is None
    assert await rows(kept["id"]) == kept_before
    assert (await http.get(f"/projects/{doomed['id']}", headers=auth(key))).status_code == 404
    assert (await http.delete(f"/projects/{doomed['id']}", headers=auth(key))).status_code == 404
    gone = await http.post("/track", json={"token": doomed["project_token"], "event": "x"})
    assert gone.status_code == 401
    assert [p["id"] for p in (await http.get("/projects", headers=auth(key))).json()["projects"]] == [kept["id"]]


# -- who may touch what ---------------------------------------------------------------------------------------


async def test_an_accounts_key_never_touches_another_accounts_project_and_cannot_tell_it_exists(
    http: httpx.AsyncClient,
) -> None:
    acme, globex = await new_account(http, "acme"), await new_account(http, "globex")
    theirs = await create_project(http, globex, "Secret Shop")
    await create_project(http, acme, "Mine")
    for method, path, body in (
        ("GET", "/projects/{}", None),
        ("PATCH", "/projects/{}", {"name": "Taken Over"}),
        ("DELETE", "/projects/{}", None),
        ("GET", "/stats?project={}", None),
        ("GET", "/events?project={}", None),
    ):
        real = await http.request(method, path.format(theirs["id"]), json=body, headers=auth(acme))
        made_up = await http.request(method, path.format("no-such-project"), json=body, headers=auth(acme))
        assert real.status_code == made_up.status_code == 404, (method, path, real.text)
        assert real.json()["error"].replace(theirs["id"], "X") == made_up.json()["error"].replace(
            "no-such-project", "X"
        )
        assert "Secret Shop" not in real.text
    assert [p["id"] for p in (await http.get("/projects", headers=auth(acme))).json()["projects"]] != [theirs["id"]]
    assert (await http.get(f"/projects/{theirs['id']}", headers=auth(globex))).json()["name"] == "Secret Shop"


async def test_read_and_tracking_keys_may_not_manage_projects(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    project = await create_project(http, key, "Shop")
    read = await create_key(http, project["id"], "read")
    for other in (read, project["project_token"], await create_key(http, project["id"], "sk")):
        for method, path in (
            ("GET", "/projects"),
            ("POST", "/projects"),
            ("GET", "/account"),
            ("POST", "/account/revoke-key"),
        ):
            refused = await http.request(method, path, json={"name": "x"}, headers=auth(other))
            assert refused.status_code == 401, (other[:3], method, path)
        refused = await http.delete(f"/projects/{project['id']}", headers=auth(other))
        assert refused.status_code == 401
    # The read key still reads its project's analytics, and only those.
    assert (await http.get("/stats", headers=auth(read))).status_code == 200
    assert (await http.get("/stats", params={"project": DEMO}, headers=auth(read))).status_code == 403


async def test_with_several_projects_the_account_key_must_name_one(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    one, two = await create_project(http, key, "One"), await create_project(http, key, "Two")
    unnamed = await http.get("/stats", headers=auth(key))
    assert unnamed.status_code == 400 and unnamed.json()["field"] == "project"
    for project in (one, two):
        named = await http.get("/stats", params={"project": project["id"]}, headers=auth(key))
        assert named.status_code == 200
    funnel = await http.post("/funnel", json={"project": two["id"], "steps": ["a", "b"]}, headers=auth(key))
    assert funnel.status_code == 200
    # The live stream decides the same way (its refusals come before the stream starts).
    assert (await http.get("/stream", headers=auth(key))).status_code == 400
    assert (await http.get("/stream", params={"project": DEMO}, headers=auth(key))).status_code == 404


# -- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Shop", "allowed_origins": ["not an origin"]}, "allowed_origins.0"),
        ({"name": "Shop", "allowed_origins": "https://a.example"}, "allowed_origins"),
        ({"name": "Shop", "owner": "me"}, "owner"),
        ([], "body"),
    ],
)
async def test_a_bad_create_body_is_400_naming_the_field(http: httpx.AsyncClient, body: Any, field: str) -> None:
    key = await new_account(http)
    refused = await http.post("/projects", json=body, headers=auth(key))
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field


async def test_bad_bodies_elsewhere_are_clear_errors(http: httpx.AsyncClient) -> None:
    key = await new_account(http)
    project = await create_project(http, key, "Shop")
    not_json = await http.post("/projects", content=b"{", headers={**auth(key), "Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"
    wrong_type = await http.post("/projects", content=b"name=x", headers={**auth(key), "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    patch = await http.patch(f"/projects/{project['id']}", json={"allowed_origins": [5]}, headers=auth(key))
    assert patch.status_code == 400 and patch.json()["field"] == "allowed_origins.0"
    bad_id = await http.post("/v1/accounts", json={"id": "Not Valid", "name": "x"}, headers=ADMIN_HEADERS)
    assert bad_id.status_code == 422 and bad_id.json()["field"] == "id"
    assert (await http.post("/v1/accounts/nobody/key", headers=ADMIN_HEADERS)).status_code == 404
    nobody = await http.get("/account", headers=auth("ak_nobody-made-this-0123456789"))
    assert nobody.status_code == 401
