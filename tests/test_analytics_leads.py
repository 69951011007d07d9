"""Lead questions: the filtered, paged list, the filter values, and each lead with the activity that led to it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.analytics.leads import mask_email
from mcp_gateway.ingest.enrich import sha256_hex
from mcp_gateway.store import LeadRecord

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, store_of, web_event
from .support import DEMO, admin_json, create_key, jsonrpc_request

OTHER = "other"
LEADS = "/analytics/leads"


def booked_result(lead_id: str, status: str = "booked") -> str:
    """What the tracking middleware records for a book_demo call: the structured result and its text copy."""
    structured = {"lead_id": lead_id, "status": status, "message": "ok"}
    return json.dumps({"content": [{"type": "text", "text": json.dumps(structured)}], "structuredContent": structured})


def lead_event(lead_id: str, ts: int, session: str, visitor: str, gateway_id: str = DEMO, **properties: str) -> Any:
    """The `$lead` event `/lead.capture` stores beside a web lead."""
    event = web_event(
        "$lead",
        ts,
        session=session,
        visitor=visitor,
        path="/pricing",
        properties={"lead_id": lead_id, **properties},
        gateway_id=gateway_id,
    )
    return replace(event, id=f"lead_{lead_id}")


async def seed_leads(app: Starlette) -> None:
    """L1, L2 from web forms; L3 booked by agent session m1 (m2 booked the same email again); L4 untracked."""
    leads = [
        LeadRecord("L1", DEMO, "Ada Lovelace", "ada@engines.example", "Analytical Engines", "hi", "web", T0 + HOUR),
        LeadRecord("L2", DEMO, "Grace Hopper", "grace@navy.example", None, None, "web", T0 + 2 * HOUR),
        LeadRecord("L3", DEMO, "Alan Turing", "alan@bletchley.example", "Bletchley_Park", None, "mcp", T0 + 3 * HOUR),
        LeadRecord("L4", DEMO, "Edsger Dijkstra", "ewd@tue.example", None, None, "mcp", T0 - DAY),
        LeadRecord("X1", OTHER, "Mallory", "mallory@other.example", None, None, "web", T0 + HOUR),
    ]
    for lead in leads:
        await store_of(app).book_lead(lead, dedupe_window_ms=0)
    events = [
        web_event("$session_start", T0 + 50 * MINUTE, session="w1", visitor="va", path="/"),
        web_event("page_view", T0 + 55 * MINUTE, session="w1", visitor="va", path="/pricing"),
        lead_event("L1", T0 + HOUR, "w1", "va", project="alpha", form_source="pricing-page"),
        web_event("page_view", T0 + HOUR + MINUTE, session="w1", visitor="va", path="/thanks"),
        web_event("page_view", T0 + 5 * HOUR, session="w9", visitor="va", path="/later"),
        lead_event("L2", T0 + 2 * HOUR, "w2", "vb", project="beta", form_source="footer"),
        lead_event("X1", T0 + HOUR, "x1", "vx", gateway_id=OTHER, project="alpha", form_source="secret-form"),
        mcp_call("m1", "tools/list", T0 + 3 * HOUR - 2 * MINUTE, 1.0, operation="list", result='{"tools": []}'),
        mcp_call("m1", "book_demo", T0 + 3 * HOUR - MINUTE, 30.0, args='{"name": "Alan"}', result=booked_result("L3")),
        mcp_call("m2", "book_demo", T0 + 3 * HOUR + 5 * MINUTE, 9.0, result=booked_result("L3", "already_booked")),
    ]
    sessions = [
        mcp_session("m1", T0 + 3 * HOUR - 3 * MINUTE, client="claude-desktop 1.2"),
        mcp_session("m2", T0 + 4 * HOUR),
    ]
    await seed(app, sessions=sessions, events=events)


@pytest.fixture
async def seeded(app: Starlette, http: httpx.AsyncClient) -> dict[str, str]:
    await admin_json(http, "POST", "/v1/gateways", {"id": OTHER, "name": "Other"})
    await seed_leads(app)
    return await read_headers(http)


async def ask(http: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str) -> Any:
    response = await http.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict[str, Any]) -> list[str]:
    return [lead["id"] for lead in page["leads"]]


async def test_leads_are_listed_newest_first_with_their_form_project_and_session(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    page = await ask(http, LEADS, seeded)

    # four demo leads (X1 is another gateway's), by creation time descending
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)
    assert ids(page) == ["L3", "L2", "L1", "L4"]
    by_id = {lead["id"]: lead for lead in page["leads"]}
    assert by_id["L1"] == {
        "id": "L1",
        "name": "Ada Lovelace",
        "email": "a•••@engines.example",  # masked for read keys
        "company": "Analytical Engines",
        "message": "hi",
        "source": "web",
        "created_at": T0 + HOUR,
        "project": "alpha",
        "form_source": "pricing-page",
        "session_id": "w1",
        "visitor_id": "va",
        "crm_lead_id": None,
    }
    assert (by_id["L3"]["source"], by_id["L3"]["project"], by_id["L3"]["session_id"]) == ("mcp", None, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "web"}, ["L2", "L1"]),
        ({"source": "mcp", "since": str(T0)}, ["L3"]),
        ({"project": "alpha"}, ["L1"]),
        ({"form_source": "footer"}, ["L2"]),
        ({"q": "ENGINES"}, ["L1"]),  # company and email, any case
        ({"q": "grace"}, ["L2"]),  # name
        ({"q": "_"}, ["L3"]),  # a literal underscore (Bletchley_Park), not LIKE's any-character
        ({"q": "%"}, []),
        ({"q": ""}, ["L3", "L2", "L1", "L4"]),  # an empty search box filters nothing
        ({"since": str(T0), "until": str(T0 + 2 * HOUR + 1)}, ["L2", "L1"]),
        ({"until": "2026-01-01T00:00:00Z"}, ["L4"]),
    ],
)
async def test_lead_filters_combine_source_project_form_text_and_time(
    http: httpx.AsyncClient, seeded: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    page = await ask(http, LEADS, seeded, **params)

    assert ids(page) == expected
    assert page["total"] == len(expected)


async def test_leads_page_with_limit_and_offset_and_count_all_matches(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    page = await ask(http, LEADS, seeded, limit="2", offset="1")
    past_the_end = await ask(http, LEADS, seeded, offset="10")

    assert (page["total"], page["limit"], page["offset"], ids(page)) == (4, 2, 1, ["L2", "L1"])
    assert (past_the_end["total"], ids(past_the_end)) == (4, [])


async def test_filter_values_are_the_distinct_projects_and_sources_of_this_gateway(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    projects = await ask(http, f"{LEADS}/projects", seeded)
    sources = await ask(http, f"{LEADS}/sources", seeded)

    # X1's "alpha" and "secret-form" belong to the other gateway
    assert projects["projects"] == [{"value": "alpha", "leads": 1}, {"value": "beta", "leads": 1}]
    assert sources["sources"] == [{"value": "mcp", "leads": 2}, {"value": "web", "leads": 2}]
    assert sources["form_sources"] == [{"value": "footer", "leads": 1}, {"value": "pricing-page", "leads": 1}]


async def test_a_web_lead_comes_with_the_session_it_was_captured_in(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    detail = await ask(http, f"{LEADS}/L1", seeded)

    assert detail["lead"]["id"] == "L1"
    assert detail["agent_session"] is None
    activity = detail["web_activity"]
    assert (activity["session_id"], activity["visitor_id"], activity["truncated"]) == ("w1", "va", False)
    # session w1 in time order; the visitor's later session w9 is not part of it
    assert [(e["name"], e["path"]) for e in activity["events"]] == [
        ("$session_start", "/"),
        ("page_view", "/pricing"),
        ("$lead", "/pricing"),
        ("page_view", "/thanks"),
    ]
    assert activity["events"][2]["id"] == "lead_L1"
    assert activity["events"][2]["properties"]["form_source"] == "pricing-page"


async def test_an_agent_lead_comes_with_the_session_whose_book_demo_created_it(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    detail = await ask(http, f"{LEADS}/L3", seeded)
    untracked = await ask(http, f"{LEADS}/L4", seeded)

    assert detail["web_activity"] is None
    agent = detail["agent_session"]
    # m1 booked L3 first; m2's later already_booked answer names it too but did not create it
    assert agent["session"]["session_id"] == "m1"
    assert (agent["session"]["client"], agent["session"]["display_name"]) == ("claude-desktop", "Claude Desktop")
    assert agent["booked_demo"] is True
    assert [(c["name"], c["operation"]) for c in agent["calls"]] == [("tools/list", "list"), ("book_demo", "call")]
    assert agent["calls"][1]["args"] == '{"name": "Alan"}'
    assert (untracked["web_activity"], untracked["agent_session"]) == (None, None)


async def test_a_captured_lead_is_listed_with_its_form_and_visit(http: httpx.AsyncClient) -> None:
    gid = {"X-Gateway-ID": DEMO}
    visit = {"session_id": "live-s", "visitor_id": "live-v", "url": "https://shop.test/pricing"}
    assert (await http.post("/track/session/start", json=visit, headers=gid)).status_code == 200
    form = {**visit, "email": "Lin@Example.com", "name": "Lin", "project": "gamma", "source": "hero-form"}
    captured = await http.post("/lead.capture", json=form, headers=gid)
    assert captured.status_code == 200, captured.text
    headers = await read_headers(http)

    page = await ask(http, LEADS, headers, project="gamma", form_source="hero-form")
    detail = await ask(http, f"{LEADS}/{captured.json()['lead_id']}", headers)

    [lead] = page["leads"]
    assert (lead["email"], lead["source"], lead["session_id"], lead["visitor_id"]) == (
        "l•••@example.com",
        "web",
        "live-s",
        sha256_hex("live-v"),  # a supplied visitor id is stored hashed
    )
    assert [e["name"] for e in detail["web_activity"]["events"]] == ["$session_start", "$lead"]


async def test_a_booked_demo_links_its_lead_to_the_tracked_agent_session(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    booking = {"name": "book_demo", "arguments": {"name": "Kay", "email": "kay@example.com"}}
    response = await http.post("/v1/mcp/sse?gid=demo", json=jsonrpc_request("tools/call", booking))
    lead_id = response.json()["result"]["structuredContent"]["lead_id"]
    assert await app.state.services.tracking_sink.flush(5.0)

    detail = await ask(http, f"{LEADS}/{lead_id}", await read_headers(http))

    agent = detail["agent_session"]
    assert agent is not None
    assert [(c["name"], c["success"]) for c in agent["calls"]] == [("book_demo", True)]
    assert agent["booked_demo"] is True


async def test_another_gateways_key_never_sees_these_leads(http: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    other = await read_headers(http, OTHER)

    page = await ask(http, LEADS, other)
    projects = await ask(http, f"{LEADS}/projects", other)
    theirs = await http.get(f"{LEADS}/L1", headers=other)
    ours = await http.get(f"{LEADS}/X1", headers=seeded)
    unknown = await http.get(f"{LEADS}/no-such-lead", headers=seeded)

    assert ids(page) == ["X1"]
    assert projects["projects"] == [{"value": "alpha", "leads": 1}]
    assert (theirs.status_code, ours.status_code, unknown.status_code) == (404, 404, 404)
    assert "error" in unknown.json()


async def test_lead_questions_need_a_read_key(http: httpx.AsyncClient, seeded: dict[str, str]) -> None:
    for kind in (None, "org", "sk"):
        headers = {} if kind is None else {"X-API-Key": await create_key(http, DEMO, kind)}
        for path in (LEADS, f"{LEADS}/projects", f"{LEADS}/sources", f"{LEADS}/L1"):
            response = await http.get(path, headers=headers)

            assert response.status_code == 401, (path, kind)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_lead_parameters_are_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    cases = [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"source": "email"}, "source"),
        ({"since": str(T0 + DAY), "until": str(T0)}, "since"),
        ({"until": "soon"}, "until"),
        ({"q": "x" * 201}, "q"),
    ]
    for params, field in cases:
        response = await http.get(LEADS, params=params, headers=headers)

        assert response.status_code == 400, params
        assert response.json()["field"] == field, params
    too_long = await http.get(f"{LEADS}/{'x' * 129}", headers=headers)
    assert (too_long.status_code, too_long.json()["field"]) == (400, "lead_id")


def test_a_read_key_sees_emails_masked() -> None:
    assert mask_email("jane.doe@example.com") == "j•••@example.com"
    assert mask_email("x@y") == "x•••@y"
