"""Isolation: every operation of /openapi.json that takes credentials, asked with another gateway's keys — every
kind, and another account's account key, every way a key can be sent — about the `demo` gateway's data, answers
an error or the other gateway's own data, never demo's: no body carries demo's markers, and demo's stored rows
are the same afterwards.

The open operations (MCP, /track, the tracker script) address a gateway by id on purpose, as a public website
or agent does; they take no key and are covered by their own tests. So is the one endless answer, the SSE
`/stream` (`test_analytics_live.test_a_read_key_streams_only_its_own_gateways_events`, over a socket)."""

from __future__ import annotations

import re
from typing import Any, Final

import httpx
from starlette.applications import Starlette

from mcp_gateway.keys import KEY_KINDS
from mcp_gateway.store import LeadRecord

from .analytics_support import MINUTE, mcp_call, mcp_session, seed, store_of, web_event
from .support import ADMIN_HEADERS, DEMO, admin_json, create_key

ATTACKER: Final = "attacker"
VICTIM_SESSION: Final = "victim-session-7f3a"
VICTIM_LEAD: Final = "lead_victim7f3a"
MARKERS: Final = ("victim-marker-path", "victim-marker-visitor", "victim@marker.example", "VictimMarkerCo")
"""Strings only demo's data holds and no request below sends: one in a body is a leak."""

BODIES: Final[dict[str, Any]] = {
    "/funnel": {"steps": ["page_view", "book_demo"]},
    "/query": {"metrics": ["event_count", "unique_users"], "group_by": ["path"]},
    "/api/v1/capture-session": {"session_id": VICTIM_SESSION, "client_config": "evil 1.0"},
    "/api/v1/capture-event": {
        "session_id": VICTIM_SESSION,
        "primitive_type": "tool",
        "primitive_name": "book_demo",
        "latency": 5,
        "success": True,
    },
    "/api/v1/capture-batch": {"sessions": [], "events": []},
    "/v1/track": {"event_name": "Spoof", "event_id": "spoof-1"},
    "/dashboard/login": {"key": "whatever"},
}
STATUSES_WITHOUT_DATA: Final = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429}


async def seed_victim(app: Starlette) -> None:
    now = store_now = 1_800_000_000_000
    await seed(
        app,
        sessions=[mcp_session(VICTIM_SESSION, now - 30 * MINUTE)],
        events=[
            web_event("page_view", now - 20 * MINUTE, visitor="victim-marker-visitor", path="/victim-marker-path"),
            mcp_call(VICTIM_SESSION, "book_demo", now - 10 * MINUTE, 5.0, result='{"lead_id": "lead_victim7f3a"}'),
        ],
    )
    lead = LeadRecord(VICTIM_LEAD, DEMO, "Victim", "victim@marker.example", "VictimMarkerCo", None, "mcp", store_now)
    await store_of(app).book_lead(lead, dedupe_window_ms=0)


async def demo_rows(app: Starlette) -> list[Any]:
    store = store_of(app)
    counts = [
        await store.fetch(f"SELECT COUNT(*) FROM {table} WHERE gateway_id = ?", [DEMO])
        for table in ("events", "mcp_sessions", "leads", "api_keys", "sessions")
    ]
    return [*counts, await store.get_gateway(DEMO)]


def requests_for(path: str, method: str, keys: dict[str, str]) -> list[dict[str, Any]]:
    """Every way to send each of `keys` on this operation, aimed at demo's objects."""
    url = re.sub(r"{lead_id}", VICTIM_LEAD, path)
    url = re.sub(r"{session_id}", VICTIM_SESSION, url)
    url = re.sub(r"{name}", "leads", url)
    url = re.sub(r"{\w+}", DEMO, url)
    body = BODIES.get(path, {}) if method in ("post", "put", "patch") else None
    sent = []
    for key in keys.values():
        for headers, params, cookies in (
            ({"Authorization": f"Bearer {key}"}, {}, {}),
            ({"X-API-Key": key}, {}, {}),
            ({"X-Org-Id": key}, {}, {}),
            ({}, {"api_key": key}, {}),
            ({}, {}, {"mcpg_read_key": key}),
        ):
            sent.append(
                {
                    "method": method.upper(),
                    "url": url,
                    "headers": {**headers, "X-Gateway-ID": DEMO},
                    "params": {**params, "gid": DEMO},
                    "cookies": cookies,
                    "json": body,
                }
            )
    return sent


async def test_another_gateways_keys_never_see_or_change_demos_data(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_victim(app)
    await admin_json(http, "POST", "/v1/gateways", {"id": ATTACKER, "name": "Attacker"})
    keys: dict[str, str] = {kind: await create_key(http, ATTACKER, kind) for kind in KEY_KINDS}
    # And an account of the attacker's own (demo is in `default`), with a project, so its key reads something.
    account = await http.post("/v1/accounts", json={"id": "attacker-co", "name": "Attacker Co"}, headers=ADMIN_HEADERS)
    keys["account"] = account.json()["api_key"]
    made = await http.post("/projects", json={"name": "Attacker site"}, headers={"X-API-Key": keys["account"]})
    assert made.status_code == 201
    before = await demo_rows(app)
    doc = (await http.get("/openapi.json")).json()
    keyed = [
        (path, method)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if (operation.get("security") or path.startswith("/dashboard"))
        and "text/event-stream" not in operation.get("responses", {}).get("200", {}).get("content", {})
        and path != "/account/revoke-key"  # would revoke the attacker's account key half-way: tested on its own
    ]
    assert len(keyed) >= 50

    answered: dict[int, int] = {}
    for path, method in keyed:
        for request in requests_for(path, method, keys):
            cookies = request.pop("cookies")
            http.cookies.clear()
            http.cookies.update(cookies)
            response = await http.request(**request)
            answered[response.status_code] = answered.get(response.status_code, 0) + 1
            assert response.status_code < 500, (path, method, response.status_code, response.text[:300])
            leaked = [marker for marker in MARKERS if marker in response.text]
            assert not leaked, (path, method, request["headers"], request["params"], cookies, leaked)
            if response.status_code not in STATUSES_WITHOUT_DATA:
                assert 200 <= response.status_code < 400, (path, method, response.status_code)
    http.cookies.clear()

    assert await demo_rows(app) == before
    assert answered.get(401, 0) > 0 and answered.get(200, 0) > 0  # both refusals and the attacker's own answers
    assert [
        p["id"] for p in (await http.get("/projects", headers={"X-API-Key": keys["account"]})).json()["projects"]
    ] == [made.json()["id"]]
    # The attacker's keys do work on the attacker's own gateway: the same probes are not simply broken.
    own = await http.get("/analytics/overview", headers={"Authorization": f"Bearer {keys['read']}"})
    assert own.status_code == 200 and own.json()["gateway_id"] == ATTACKER
    # The admin token reads any project, but only the one it names: none named is 400, not some default.
    unnamed = await http.get("/stats", headers=ADMIN_HEADERS)
    assert unnamed.status_code == 400 and unnamed.json()["field"] == "project"
    named = await http.get("/stats", params={"project": DEMO}, headers=ADMIN_HEADERS)
    assert named.status_code == 200
