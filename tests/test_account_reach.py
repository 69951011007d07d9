"""An account key reaches every project of its account, and only those, where a read key reaches one: the leads
(`gateway` picks the project, `project` stays the lead form's filter), the analytics MCP endpoint, the dashboard."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from mcp_gateway.store import LeadRecord

from .analytics_support import T0, store_of
from .support import ADMIN_HEADERS, DEMO, create_key


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
