"""An account key reaches every project of its account, and only those, where a read key reaches one: the leads
(`gateway` picks the project, `project` stays the lead form's filter), the analytics MCP endpoint, the dashboard."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette

from mcp_gateway.analytics.mcp_endpoint import ANALYTICS_MCP_PATH, PROJECT_HEADER
from mcp_gateway.store import LeadRecord

from .analytics_support import T0, store_of
from .support import ADMIN_HEADERS, DEMO, MCP_TIMEOUT, LiveServer, create_key, jsonrpc_request
from .test_analytics_mcp import around_now, capture_calls, json_text


async def new_account(http: httpx.AsyncClient, account_id: str) -> str:
    created = await http.post("/v1/accounts", json={"id": account_id, "name": account_id}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    key: str = created.json()["api_key"]
    return key


async def new_project(http: httpx.AsyncClient, key: str, name: str) -> str:
    created = await http.post("/projects", json={"name": name}, headers={"X-API-Key": key})
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    return project_id


def lead_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    leads: list[dict[str, Any]] = response.json()["leads"]
    return sorted(lead["id"] for lead in leads)


# -- /analytics/leads ------------------------------------------------------------------------------------------


async def test_leads_of_an_account_with_several_projects_are_picked_by_gateway(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    key = await new_account(http, "acme")
    shop, blog = await new_project(http, key, "Shop"), await new_project(http, key, "Blog")
    theirs = await new_project(http, await new_account(http, "globex"), "Theirs")
    for lead_id, gateway_id in (("S1", shop), ("S2", shop), ("B1", blog), ("T1", theirs)):
        record = LeadRecord(lead_id, gateway_id, "Ada", f"{lead_id}@x.example", None, None, "mcp", T0)
        await store_of(app).book_lead(record, dedupe_window_ms=0)
    mine = {"X-API-Key": key}

    unpicked = await http.get("/analytics/leads", headers=mine)
    assert (unpicked.status_code, unpicked.json()["field"]) == (400, "gateway")
    assert lead_ids(await http.get("/analytics/leads", params={"gateway": shop}, headers=mine)) == ["S1", "S2"]
    assert lead_ids(await http.get("/analytics/leads", params={"gateway": blog}, headers=mine)) == ["B1"]
    # `project` keeps its meaning, the lead form's project: no form said "Shop", so nothing.
    filtered = await http.get("/analytics/leads", params={"gateway": shop, "project": shop}, headers=mine)
    assert lead_ids(filtered) == []
    one = await http.get("/analytics/leads/S1", params={"gateway": shop}, headers=mine)
    assert one.status_code == 200 and one.json()["lead"]["id"] == "S1"
    assert (await http.get("/analytics/leads/S1", params={"gateway": blog}, headers=mine)).status_code == 404
    # Another account's project is 404 as a made-up one; a read key naming another gateway 403, as `project` is.
    real = await http.get("/analytics/leads", params={"gateway": theirs}, headers=mine)
    made_up = await http.get("/analytics/leads", params={"gateway": "no-such"}, headers=mine)
    assert real.status_code == made_up.status_code == 404 and "T1" not in real.text
    read = await create_key(http, shop, "read")
    assert lead_ids(await http.get("/analytics/leads", params={"gateway": shop}, headers={"X-API-Key": read})) == [
        "S1",
        "S2",
    ]
    assert (
        await http.get("/analytics/leads", params={"gateway": blog}, headers={"X-API-Key": read})
    ).status_code == 403
    admin = await http.get("/analytics/leads", params={"gateway": theirs}, headers=ADMIN_HEADERS)
    assert lead_ids(admin) == ["T1"]


async def test_gateway_names_the_project_on_other_questions_and_must_agree_with_project(
    http: httpx.AsyncClient,
) -> None:
    key = await new_account(http, "acme")
    shop, blog = await new_project(http, key, "Shop"), await new_project(http, key, "Blog")
    mine = {"X-API-Key": key}
    by_gateway = await http.get("/stats", params={"gateway": shop}, headers=mine)
    by_project = await http.get("/stats", params={"project": shop}, headers=mine)
    assert by_gateway.status_code == by_project.status_code == 200
    both = await http.get("/stats", params={"gateway": shop, "project": blog}, headers=mine)
    assert (both.status_code, both.json()["field"]) == (400, "gateway")
    assert (await http.get("/stats", params={"gateway": shop, "project": shop}, headers=mine)).status_code == 200
    funnel = await http.post("/funnel", json={"gateway": blog, "steps": ["a", "b"]}, headers=mine)
    assert funnel.status_code == 200, funnel.text
    bad = await http.post("/funnel", json={"gateway": 5, "steps": ["a", "b"]}, headers=mine)
    assert (bad.status_code, bad.json()["field"]) == (400, "gateway")
    assert (await http.get("/stats", params={"gateway": DEMO}, headers=mine)).status_code == 404


# -- /analytics/mcp ----------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def analytics_as(server: LiveServer, key: str, **headers: str) -> AsyncIterator[Client]:
    with anyio.fail_after(MCP_TIMEOUT):
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}", **headers}) as http:
            async with Client(streamable_http_client(server.url(ANALYTICS_MCP_PATH), http_client=http)) as client:
                yield client


async def test_an_account_key_reads_its_projects_on_the_analytics_mcp_endpoint_and_no_others(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    key = await new_account(live_http, "acme")
    shop, blog = await new_project(live_http, key, "Shop"), await new_project(live_http, key, "Blog")
    theirs = await new_project(live_http, await new_account(live_http, "globex"), "Theirs")
    await capture_calls(live_http, shop, ("shop_tool", True))
    await capture_calls(live_http, blog, ("blog_tool", True))
    await capture_calls(live_http, theirs, ("their_tool", True))
    window = around_now()

    async with analytics_as(live_server, key) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        unnamed = await client.call_tool("analytics_tools", window)
        in_shop = await client.call_tool("analytics_tools", {**window, "project": shop})
        in_blog = await client.call_tool("analytics_tools", {**window, "gateway": blog})
        leads = await client.call_tool("analytics_leads", {"gateway": blog, "project": "spring-campaign"})
        leads_unnamed = await client.call_tool("analytics_leads", {})
        in_theirs = await client.call_tool("analytics_tools", {**window, "project": theirs})
        made_up = await client.call_tool("analytics_tools", {**window, "project": "no-such"})
    async with analytics_as(live_server, key, **{PROJECT_HEADER: blog}) as client:
        by_header = await client.call_tool("analytics_tools", window)
        overridden = await client.call_tool("analytics_tools", {**window, "project": shop})

    assert {"project", "gateway"} <= set(tools["analytics_tools"].input_schema["properties"])
    assert unnamed.is_error and json_text(unnamed)["field"] == "project"
    assert [p["name"] for p in json_text(in_shop)["primitives"]] == ["shop_tool"]
    assert [p["name"] for p in json_text(in_blog)["primitives"]] == ["blog_tool"]
    assert not leads.is_error and json_text(leads)["gateway_id"] == blog and json_text(leads)["leads"] == []
    assert leads_unnamed.is_error and json_text(leads_unnamed)["field"] == "gateway"
    assert in_theirs.is_error and made_up.is_error
    assert json_text(in_theirs)["error"].replace(theirs, "X") == json_text(made_up)["error"].replace("no-such", "X")
    assert "their_tool" not in json.dumps(json_text(in_theirs))
    assert [p["name"] for p in json_text(by_header)["primitives"]] == ["blog_tool"]
    assert [p["name"] for p in json_text(overridden)["primitives"]] == ["shop_tool"]


async def test_a_read_key_on_the_mcp_endpoint_still_reads_its_own_gateway_only(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    key = await new_account(live_http, "acme")
    shop, blog = await new_project(live_http, key, "Shop"), await new_project(live_http, key, "Blog")
    await capture_calls(live_http, shop, ("shop_tool", True))
    read = await create_key(live_http, shop, "read")

    async with analytics_as(live_server, read, **{PROJECT_HEADER: blog}) as client:
        own = await client.call_tool("analytics_tools", {**around_now(), "project": shop})
        other = await client.call_tool("analytics_tools", {**around_now(), "project": blog})
        by_header = await client.call_tool("analytics_tools", around_now())

    assert [p["name"] for p in json_text(own)["primitives"]] == ["shop_tool"]
    assert other.is_error and json_text(other)["field"] == "project"
    assert by_header.is_error  # the header names a project the key may not read: refused, not ignored


async def test_the_admin_token_and_a_revoked_account_key_are_refused_by_the_mcp_endpoint(
    live_http: httpx.AsyncClient,
) -> None:
    key = await new_account(live_http, "acme")
    initialize = jsonrpc_request(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    accept = {"Accept": "application/json, text/event-stream"}
    admin = await live_http.post(ANALYTICS_MCP_PATH, json=initialize, headers={**accept, **ADMIN_HEADERS})
    assert admin.status_code == 401 and admin.headers["www-authenticate"] == "Bearer"
    working = await live_http.post(ANALYTICS_MCP_PATH, json=initialize, headers={**accept, "X-API-Key": key})
    assert working.status_code == 200, working.text
    await live_http.post("/account/revoke-key", headers={"X-API-Key": key})
    revoked = await live_http.post(ANALYTICS_MCP_PATH, json=initialize, headers={**accept, "X-API-Key": key})
    assert revoked.status_code == 401


# -- the dashboard -----------------------------------------------------------------------------------------------


async def log_in(http: httpx.AsyncClient, key: str) -> None:
    response = await http.post("/dashboard/login", data={"key": key}, headers={"Origin": "http://127.0.0.1"})
    assert response.status_code == 303, response.text


async def test_an_account_key_logs_in_to_the_dashboard_picks_a_project_and_never_sees_anothers(
    http: httpx.AsyncClient,
) -> None:
    key = await new_account(http, "acme")
    shop, blog = await new_project(http, key, "Shop"), await new_project(http, key, "Blog")
    theirs = await new_project(http, await new_account(http, "globex"), "Theirs")
    await log_in(http, key)

    chooser = await http.get("/dashboard")
    assert chooser.status_code == 200
    assert f'href="/dashboard?project={shop}"' in chooser.text and f'href="/dashboard?project={blog}"' in chooser.text
    assert "Theirs" not in chooser.text and theirs not in chooser.text

    page = await http.get("/dashboard", params={"project": shop, "full": "1"})
    assert page.status_code == 200
    assert "<h1>Shop</h1>" in page.text
    assert f'<option value="{blog}">Blog</option>' in page.text
    assert f'<option value="{shop}" selected>Shop</option>' in page.text
    assert f'data-stream="/stream?project={shop}"' in page.text
    deferred = await http.get("/dashboard", params={"project": shop})
    sources = re.findall(r'data-source="([^"]+)"', deferred.text)
    assert sources and all(source.endswith(f"?project={shop}") for source in sources)

    card = await http.get("/dashboard/sections/overview", params={"project": blog})
    assert card.status_code == 200, card.text
    unpicked = await http.get("/dashboard/sections/overview")
    assert (unpicked.status_code, unpicked.json()["field"]) == (400, "project")
    stream = await http.get("/stream", params={"project": theirs})  # the live feed's stream, with the cookie
    assert stream.status_code == 404

    real = await http.get("/dashboard", params={"project": theirs})
    made_up = await http.get("/dashboard", params={"project": "no-such"})
    assert real.status_code == made_up.status_code == 404
    assert "Theirs" not in real.text
    assert (await http.get("/dashboard/sections/overview", params={"project": theirs})).status_code == 404


async def test_an_account_key_with_one_project_goes_straight_to_it_and_a_read_key_stays_on_its_own(
    http: httpx.AsyncClient,
) -> None:
    key = await new_account(http, "acme")
    shop = await new_project(http, key, "Shop")
    await log_in(http, key)
    assert "<h1>Shop</h1>" in (await http.get("/dashboard")).text

    read = await create_key(http, shop, "read")
    await log_in(http, read)
    assert "<h1>Shop</h1>" in (await http.get("/dashboard")).text
    assert (await http.get("/dashboard", params={"project": DEMO})).status_code == 403
    assert '<select name="project"' not in (await http.get("/dashboard")).text

    renewed = (await http.post("/account/revoke-key", headers={"X-API-Key": key})).json()["api_key"]
    assert (await http.post("/dashboard/login", data={"key": key})).status_code == 401  # the revoked key
    await log_in(http, renewed)
    admin = await http.post("/dashboard/login", data={"key": ADMIN_HEADERS["Authorization"].split()[1]})
    assert admin.status_code == 401  # the admin token does not log in here
