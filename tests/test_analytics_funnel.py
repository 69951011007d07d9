"""POST /funnel on small hand-computed data sets: order, the conversion window, the best starting event,
breakdowns, step filters, MCP sessions as actors, auth, tenant isolation and bad parameters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.analytics import funnel as funnel_module
from mcp_gateway.analytics.funnel import furthest_steps

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, web_event
from .support import DEMO, admin_json, create_key

FUNNEL = "/funnel"
WINDOW = {"since": T0 - HOUR, "until": T0 + 3 * DAY}
STEPS = ["page_view", "signup", "purchase"]


def visit(visitor: str, *events: tuple[str, int], source: str = "direct", path: str = "/") -> list[Any]:
    return [
        web_event(name, T0 + at, visitor=visitor, session=f"{visitor}-s", traffic_source=source, path=path)
        for name, at in events
    ]


async def seed_shop(app: Starlette) -> None:
    # v1: all three in order -> 3.  v2: two steps -> 2.  v3: page view only -> 1.
    # v4: signup before its page view -> 1 (out of order; the purchase after the page view skips signup).
    # v5: page views at 1m and 20h, signup at 30h (10h after the second start), purchase at 50h (30h after it,
    #     outside 24h) -> 2, thanks to the later start.  v6: signup 25h59m after its only page view -> 1.
    events = [
        *visit("v1", ("page_view", MINUTE), ("signup", 2 * MINUTE), ("purchase", 3 * MINUTE), source="google"),
        *visit("v2", ("page_view", MINUTE), ("signup", 5 * MINUTE), source="google"),
        *visit("v3", ("page_view", MINUTE)),
        *visit("v4", ("signup", MINUTE), ("page_view", 2 * MINUTE), ("purchase", 3 * MINUTE)),
        *visit("v5", ("page_view", MINUTE), ("page_view", 20 * HOUR), ("signup", 30 * HOUR), ("purchase", 50 * HOUR)),
        *visit("v6", ("page_view", MINUTE), ("signup", 26 * HOUR)),
    ]
    await seed(app, events=events)


async def ask(http: httpx.AsyncClient, body: dict[str, Any], gateway_id: str = DEMO) -> httpx.Response:
    return await http.post(FUNNEL, json={**WINDOW, **body}, headers=await read_headers(http, gateway_id))


def users(steps: list[dict[str, Any]]) -> list[int]:
    return [step["users"] for step in steps]


async def test_actors_count_at_each_step_they_reached_in_order_within_the_window(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_shop(app)

    response = await ask(http, {"steps": STEPS})

    assert response.status_code == 200, response.text
    body = response.json()
    # step 1: v1..v6 = 6; step 2: v1, v2, v5 = 3; step 3: v1 = 1.
    assert users(body["steps"]) == [6, 3, 1]
    assert [s["event"] for s in body["steps"]] == STEPS
    assert [s["step"] for s in body["steps"]] == [1, 2, 3]
    assert [s["conversion_rate"] for s in body["steps"]] == pytest.approx([1.0, 3 / 6, 1 / 3])
    assert [s["overall_conversion_rate"] for s in body["steps"]] == pytest.approx([1.0, 3 / 6, 1 / 6])
    assert [s["drop_off"] for s in body["steps"]] == [0, 3, 2]
    assert body["overall_conversion_rate"] == pytest.approx(1 / 6)
    assert body["breakdowns"] is None


async def test_a_wider_conversion_window_lets_slower_actors_through(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_shop(app)

    response = await ask(http, {"steps": STEPS, "conversion_window_hours": 50})

    # 50h: v6's signup (26h) now counts -> step 2 = 4; v5's purchase is 49h59m after its first page view,
    # which also started a chain through the signup at 30h -> step 3 = v1, v5 = 2.
    assert users(response.json()["steps"]) == [6, 4, 2]


async def test_a_breakdown_gives_each_value_its_own_funnel(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_shop(app)

    response = await ask(http, {"steps": STEPS, "breakdown": "traffic_source"})

    body = response.json()
    assert body["breakdown"] == "traffic_source"
    assert users(body["steps"]) == [6, 3, 1]
    # direct: v3, v4, v5, v6 -> [4, 1 (v5), 0]; google: v1, v2 -> [2, 2, 1]. Most step-1 actors first.
    by_value = {b["value"]: users(b["steps"]) for b in body["breakdowns"]}
    assert [b["value"] for b in body["breakdowns"]] == ["direct", "google"]
    assert by_value == {"direct": [4, 1, 0], "google": [2, 2, 1]}
    assert body["breakdowns"][1]["overall_conversion_rate"] == pytest.approx(1 / 2)


async def test_step_filters_narrow_a_step_to_matching_events(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(
        app,
        events=[
            *visit("p1", ("page_view", MINUTE), ("signup", 2 * MINUTE), path="/pricing"),
            *visit("p2", ("page_view", MINUTE), ("signup", 2 * MINUTE), path="/home"),
            *visit("p3", ("page_view", MINUTE), path="/pricing"),
        ],
    )
    pricing = {"event": "page_view", "filters": [{"property": "path", "op": "eq", "value": "/pricing"}]}
    elsewhere = {"event": "page_view", "filters": [{"property": "path", "op": "neq", "value": "/pricing"}]}

    on_pricing = await ask(http, {"steps": [pricing, "signup"]})
    not_on_pricing = await ask(http, {"steps": [elsewhere, "signup"]})

    # /pricing: p1, p3 -> p1 signs up. Elsewhere: p2 -> signs up.
    assert users(on_pricing.json()["steps"]) == [2, 1]
    assert on_pricing.json()["steps"][0]["event"] == "page_view"
    assert users(not_on_pricing.json()["steps"]) == [1, 1]


@pytest.mark.parametrize("window", [WINDOW, {"since": T0 + 30 * 1000, "until": T0 + 2 * DAY + 5 * HOUR}])
async def test_above_exact_below_step_one_is_estimated_from_the_day_sketches(
    app: Starlette, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, window: dict[str, int]
) -> None:
    """A big site's step 1 comes from per-day sketches of each event's actors (whole days) and the events of the
    partial days: a handful of actors is counted exactly, web visitors and MCP sessions alike."""
    await seed_shop(app)
    await seed(app, sessions=[mcp_session("m1", T0)], events=[mcp_call("m1", "page_view", T0 + HOUR, 5.0)])
    exact = (await ask(http, {"steps": STEPS, **window})).json()
    monkeypatch.setattr(funnel_module, "EXACT_BELOW", 1)
    monkeypatch.setattr(funnel_module, "_first_step_users", None)  # not counted exactly this time

    estimated = (await ask(http, {"steps": STEPS, **window})).json()

    assert users(exact["steps"]) == [7, 3, 1]
    assert estimated == exact


async def test_an_mcp_session_is_the_actor_of_its_tool_calls(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(
        app,
        sessions=[mcp_session("m1", T0), mcp_session("m2", T0)],
        events=[
            # m1 searches then books; m2 books before it searches (out of order) -> [2, 1].
            mcp_call("m1", "search", T0 + MINUTE, 5.0),
            mcp_call("m1", "book_demo", T0 + 2 * MINUTE, 5.0),
            mcp_call("m2", "book_demo", T0 + MINUTE, 5.0),
            mcp_call("m2", "search", T0 + 2 * MINUTE, 5.0),
            web_event("search", T0 + MINUTE, visitor="w1"),
        ],
    )

    everything = await ask(http, {"steps": ["search", "book_demo"]})
    mcp_only = await ask(http, {"steps": ["search", "book_demo"], "source": "mcp"})

    # Without a source the web visitor w1's "search" event counts at step 1 too.
    assert users(everything.json()["steps"]) == [3, 1]
    assert users(mcp_only.json()["steps"]) == [2, 1]


def test_one_event_never_counts_as_two_steps() -> None:
    # Steps page_view -> page_view: one page view is step 1 only; a second makes step 2.
    assert furthest_steps([(0, 0b11, None)], 2, HOUR) == {None: 1}
    assert furthest_steps([(0, 0b11, None), (1, 0b11, None)], 2, HOUR) == {None: 2}


async def test_another_gateways_key_sees_no_actors(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_shop(app)
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})

    response = await ask(http, {"steps": STEPS}, gateway_id="other")

    assert response.status_code == 200
    assert users(response.json()["steps"]) == [0, 0, 0]
    assert response.json()["overall_conversion_rate"] == 0.0


@pytest.mark.parametrize("kind", [None, "org", "sk"])
async def test_without_a_read_key_the_answer_is_401(http: httpx.AsyncClient, kind: str | None) -> None:
    headers = {} if kind is None else {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}

    response = await http.post(FUNNEL, json={"steps": STEPS}, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": ["page_view"]}, "steps"),
        ({"steps": ["a"] * 11}, "steps"),
        ({"steps": ["a", ""]}, "steps.1.event"),
        ({"steps": STEPS, "conversion_window_hours": 0}, "conversion_window_hours"),
        ({"steps": STEPS, "conversion_window_hours": 721}, "conversion_window_hours"),
        ({"steps": STEPS, "breakdown": "password"}, "breakdown"),
        ({"steps": STEPS, "breakdown": "properties."}, "breakdown"),
        ({"steps": STEPS, "source": "email"}, "source"),
        ({"steps": STEPS, "since": "yesterday"}, "since"),
        ({"steps": STEPS, "since": T0, "until": T0}, "since"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await http.post(FUNNEL, json=body, headers=await read_headers(http))

    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_a_bad_step_filter_is_400_naming_it(http: httpx.AsyncClient) -> None:
    step = {"event": "page_view", "filters": [{"property": "secret", "value": "x"}]}

    response = await http.post(FUNNEL, json={"steps": [step, "signup"]}, headers=await read_headers(http))

    assert response.status_code == 400
    assert response.json()["field"] == "steps.0.step.filters.0.property"
