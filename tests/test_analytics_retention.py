"""GET /retention on hand-computed cohorts: daily and weekly cohorts, the returning `event`, MCP sessions,
the size-weighted average, auth, tenant isolation and bad parameters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from .analytics_support import DAY, HOUR, T0, mcp_call, mcp_session, read_headers, seed, web_event
from .support import DEMO, admin_json, create_key

RETENTION = "/retention"
THREE_DAYS = {"cohorts": "3", "until": str(T0 + 3 * DAY)}


def seen(visitor: str, day: int, name: str = "page_view") -> Any:
    return web_event(name, T0 + day * DAY + HOUR, visitor=visitor)


async def seed_cohorts(app: Starlette) -> None:
    # Day 0 cohort a1..a4: a1 back on day 1, a2 on days 1 and 2 (a "purchase" on day 2), a3 on day 2, a4 never.
    # Day 1 cohort b1, b2: both back on day 2.  Day 2 cohort: c1.
    # o1 was first seen before day 0: in no cohort, although active on day 1.
    events = [
        *(seen(v, 0) for v in ("a1", "a2", "a3", "a4")),
        seen("a1", 1),
        seen("a2", 1),
        seen("a2", 2, "purchase"),
        seen("a3", 2),
        *(seen(v, 1) for v in ("b1", "b2")),
        *(seen(v, 2) for v in ("b1", "b2", "c1")),
        seen("o1", -2),
        seen("o1", 1),
    ]
    await seed(app, events=events)


async def ask(http: httpx.AsyncClient, params: dict[str, str], gateway_id: str = DEMO) -> httpx.Response:
    return await http.get(RETENTION, params=params, headers=await read_headers(http, gateway_id))


async def test_daily_cohorts_count_who_came_back_and_average_by_cohort_size(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_cohorts(app)

    response = await ask(http, THREE_DAYS)

    assert response.status_code == 200, response.text
    body = response.json()
    cohorts = body["cohorts"]
    assert [c["cohort"] for c in cohorts] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [c["start_ms"] for c in cohorts] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert [c["users"] for c in cohorts] == [4, 2, 1]
    # day 0: day 1 a1, a2 = 2; day 2 a2, a3 = 2.  day 1: day 2 b1, b2 = 2.
    assert [c["retained"] for c in cohorts] == [[4, 2, 2], [2, 2], [1]]
    assert [c["rates"] for c in cohorts] == [[1.0, 0.5, 0.5], [1.0, 1.0], [1.0]]
    # offset 1: (2 + 2) / (4 + 2) = 0.667 (a plain mean of the rates would be 0.75); offset 2: 2 / 4.
    assert body["average_rates"] == pytest.approx([1.0, 4 / 6, 0.5])


async def test_a_returning_event_counts_only_that_event(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_cohorts(app)

    response = await ask(http, {**THREE_DAYS, "event": "purchase"})

    cohorts = response.json()["cohorts"]
    # Only a2's purchase on day 2 counts; offset 0 is the cohort itself.
    assert [c["retained"] for c in cohorts] == [[4, 0, 1], [2, 0], [1]]
    assert response.json()["average_rates"] == pytest.approx([1.0, 0.0, 0.25])


async def test_since_until_choose_the_cohorts_and_weeks_start_on_monday(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_cohorts(app)

    by_since = await ask(http, {"since": str(T0 + DAY + 5 * HOUR), "until": str(T0 + 3 * DAY)})
    weekly = await ask(http, {"period": "week", "cohorts": "1", "until": str(T0 + 3 * DAY)})

    # since falls in day 1: cohorts day 1 (b1, b2 and a1..a4 are older) and day 2.
    assert [(c["cohort"], c["retained"]) for c in by_since.json()["cohorts"]] == [
        ("2026-01-02", [2, 2]),
        ("2026-01-03", [1]),
    ]
    # 2026-01-01 is a Thursday: its week starts Monday 2025-12-29; o1 (first seen 2025-12-30) is in it too.
    [week] = weekly.json()["cohorts"]
    assert (week["cohort"], week["users"], week["retained"]) == ("2025-12-29", 8, [8])
    assert weekly.json()["granularity"] == "week"


async def test_mcp_sessions_are_actors_from_their_start(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(
        app,
        sessions=[mcp_session("m1", T0 + HOUR), mcp_session("m2", T0 + DAY + HOUR)],
        events=[
            mcp_call("m1", "search", T0 + HOUR, 5.0),
            mcp_call("m1", "search", T0 + 2 * DAY + HOUR, 5.0),
            mcp_call("m2", "search", T0 + DAY + HOUR, 5.0),
            seen("w1", 0),
        ],
    )

    mcp = await ask(http, {**THREE_DAYS, "source": "mcp"})
    both = await ask(http, THREE_DAYS)

    # m1 (day 0) is back on day 2; m2 (day 1) not.  w1 (web, day 0) never returns.
    assert [c["retained"] for c in mcp.json()["cohorts"]] == [[1, 0, 1], [1, 0], [0]]
    assert [c["retained"] for c in both.json()["cohorts"]] == [[2, 0, 1], [1, 0], [0]]
    assert both.json()["average_rates"] == pytest.approx([1.0, 0.0, 0.5])


async def test_another_gateways_key_sees_empty_cohorts(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_cohorts(app)
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})

    response = await ask(http, THREE_DAYS, gateway_id="other")

    assert response.status_code == 200
    assert [c["users"] for c in response.json()["cohorts"]] == [0, 0, 0]
    assert response.json()["average_rates"] == [1.0, None, None]


@pytest.mark.parametrize("kind", [None, "org", "pk"])
async def test_without_a_read_key_the_answer_is_401(http: httpx.AsyncClient, kind: str | None) -> None:
    headers = {} if kind is None else {"X-API-Key": await create_key(http, DEMO, kind)}

    response = await http.get(RETENTION, headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "month"}, "granularity"),
        ({"period": "7d"}, "period"),
        ({"cohorts": "0"}, "cohorts"),
        ({"cohorts": "91"}, "cohorts"),
        ({"cohorts": "3", "since": str(T0)}, "cohorts"),
        ({"since": str(T0), "until": str(T0)}, "since"),
        ({"since": str(T0 - 100 * DAY), "until": str(T0)}, "since"),
        ({"until": "soon"}, "until"),
        ({"source": "email"}, "source"),
        ({"event": ""}, "event"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get(RETENTION, params=params, headers=await read_headers(http))

    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
