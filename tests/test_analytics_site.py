"""Seed 001's site analytics on a small data set whose answers are computed by hand in the comments."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.store import EventRow, LeadRecord

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, store_of, web_event
from .support import DEMO, admin_json, create_key

OTHER = "other"
WINDOW = {"since": str(T0), "until": str(T0 + 3 * DAY)}
PATHS = [
    "/analytics/overview",
    "/analytics/sessions/daily",
    "/analytics/pages/top",
    "/analytics/geo",
    "/analytics/engagement",
    "/analytics/sources",
    "/analytics/realtime",
]


def visit(session: str, visitor: str, *events: tuple[str, int, dict[str, Any]], **common: Any) -> list[EventRow]:
    """The events of one web session: (name, ts, fields) each, `common` fields on all of them."""
    return [
        web_event(name, ts, session=session, visitor=visitor, **{**common, **fields}) for name, ts, fields in events
    ]


GOOGLE = {"traffic_source": "google", "traffic_medium": "organic"}
INTERNAL = {"traffic_source": "(internal)", "traffic_medium": "(none)"}


async def seed_site(app: Starlette) -> None:
    """Four web sessions over three days, two MCP sessions, one lead; plus rows outside the window or gateway."""
    events = [
        # s1, v1, day 1, DE: lands from Google, two page views (internal navigation), ends with score 75
        *visit(
            "s1",
            "v1",
            ("$session_start", T0 + HOUR, {"path": "/", "referrer": "https://www.google.com/search?q=x", **GOOGLE}),
            ("page_view", T0 + HOUR + MINUTE, {"path": "/", **INTERNAL}),
            ("page_view", T0 + HOUR + 2 * MINUTE, {"path": "/pricing", **INTERNAL}),
            ("$session_end", T0 + HOUR + 5 * MINUTE, {"properties": {"engagement_score": 75.0}}),
            country="DE",
        ),
        # s2, v2, day 1, no country: direct, one page view, score 15
        *visit(
            "s2",
            "v2",
            (
                "page_view",
                T0 + 2 * HOUR,
                {"path": "/pricing", "traffic_source": "(direct)", "traffic_medium": "(none)"},
            ),
            ("$session_end", T0 + 2 * HOUR + MINUTE, {"properties": {"engagement_score": 15}}),
        ),
        # s3, v1 again, day 2, DE: from Hacker News, tracker.js's PageView, score 100
        *visit(
            "s3",
            "v1",
            (
                "PageView",
                T0 + DAY + HOUR,
                {
                    "path": "/docs",
                    "referrer": "https://news.ycombinator.com/item?id=1",
                    "traffic_source": "news.ycombinator.com",
                    "traffic_medium": "referral",
                },
            ),
            ("$session_end", T0 + DAY + 2 * HOUR, {"properties": {"engagement_score": 100}}),
            country="DE",
        ),
        # s4, v3, day 3, US: Google again, seed 004's $pageview, a score that is not a number (ignored)
        *visit(
            "s4",
            "v3",
            ("$pageview", T0 + 2 * DAY + 3 * HOUR, {"path": "/pricing", "referrer": "https://google.com/", **GOOGLE}),
            ("$session_end", T0 + 2 * DAY + 4 * HOUR, {"properties": {"engagement_score": "high"}}),
            country="US",
        ),
        # outside the window, and another gateway's
        web_event("page_view", T0 - HOUR, session="s0", visitor="v0", path="/old"),
        web_event("page_view", T0 + HOUR, session="x1", visitor="x1", path="/secret", gateway_id=OTHER),
        # MCP: m1 (US) books a demo and fails a search; m2 lists tools and reads a resource
        mcp_call("m1", "book_demo", T0 + 3 * HOUR + MINUTE, 20.0),
        mcp_call("m1", "search", T0 + 3 * HOUR + 2 * MINUTE, 10.0, success=False, error_type="ToolError"),
        mcp_call("m2", "tools/list", T0 + DAY + MINUTE, 1.0, operation="list"),
        mcp_call("m2", "pricing://current", T0 + DAY + 2 * MINUTE, 2.0, primitive_type="resource"),
    ]
    sessions = [mcp_session("m1", T0 + 3 * HOUR, country="US"), mcp_session("m2", T0 + DAY, client="cursor 0.5")]
    await seed(app, sessions=sessions, events=events)
    store = store_of(app)
    for lead_id, created in (("lead-in", T0 + 3 * HOUR), ("lead-before", T0 - DAY)):
        lead = LeadRecord(lead_id, DEMO, "Ada", f"{lead_id}@example.com", None, None, "mcp", created)
        await store.book_lead(lead, dedupe_window_ms=0)


@pytest.fixture
async def seeded(app: Starlette, http: httpx.AsyncClient) -> dict[str, str]:
    await admin_json(http, "POST", "/v1/gateways", {"id": OTHER, "name": "Other"})
    await seed_site(app)
    return await read_headers(http)


async def ask(http: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await http.get(path, params={**WINDOW, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_overview_counts_sessions_visitors_page_views_leads_and_tool_calls(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/overview", seeded)

    # events: 4 + 2 + 2 + 2 web, 4 MCP = 14; sessions s1-s4; visitors v1, v2, v3
    # page views: s1 2, s2 1, s3 1 (PageView), s4 1 ($pageview) = 5
    # tool calls: book_demo and the failed search (tools/list is a list, pricing:// a resource): 2, 1 error
    # engagement: (75 + 15 + 100) / 3 = 63.3 ("high" is not a score)
    assert body["window"] == {"since": T0, "until": T0 + 3 * DAY}
    assert {k: v for k, v in body.items() if k != "window"} == {
        "gateway_id": DEMO,
        "sessions": 4,
        "events": 14,
        "unique_visitors": 3,
        "page_views": 5,
        "leads": 1,
        "mcp_sessions": 2,
        "tool_calls": 2,
        "tool_errors": 1,
        "error_rate": 0.5,
        "avg_engagement": 63.3,
    }


async def test_daily_sessions_cover_every_day_of_the_window_with_zeros(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/sessions/daily", seeded, until=str(T0 + 4 * DAY))

    # Jan 1: s1 (v1), s2 (v2); Jan 2: s3 (v1); Jan 3: s4 (v3); Jan 4: nothing
    assert body["days"] == [
        {"date": "2026-01-01", "sessions": 2, "visitors": 2},
        {"date": "2026-01-02", "sessions": 1, "visitors": 1},
        {"date": "2026-01-03", "sessions": 1, "visitors": 1},
        {"date": "2026-01-04", "sessions": 0, "visitors": 0},
    ]


async def test_sessions_across_midnight_and_the_window_start_count_where_they_were_active(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    events = [
        # n1: 23:50 on Jan 1 to 00:10 on Jan 2, in Germany then (a later event) in France
        web_event("page_view", T0 + DAY - 10 * MINUTE, session="n1", visitor="w1", path="/", country="DE",
                  traffic_source="(direct)", traffic_medium="(none)"),
        web_event("page_view", T0 + DAY + 10 * MINUTE, session="n1", visitor="w1", path="/a", country="FR",
                  traffic_source="(internal)", traffic_medium="(none)"),
        # n2: started the evening before the window, still going in it
        web_event("page_view", T0 - 10 * MINUTE, session="n2", visitor="w2", path="/"),
        web_event("page_view", T0 + 5 * MINUTE, session="n2", visitor="w2", path="/b"),
        # n3: ended before the window
        web_event("page_view", T0 - HOUR, session="n3", visitor="w3", path="/"),
    ]  # fmt: skip
    await seed(app, events=events)
    headers = await read_headers(http)
    window = {"since": str(T0), "until": str(T0 + 2 * DAY)}

    daily = (await http.get("/analytics/sessions/daily", params=window, headers=headers)).json()
    geo = (await http.get("/analytics/geo", params=window, headers=headers)).json()
    overview = (await http.get("/analytics/overview", params=window, headers=headers)).json()

    # Jan 1: n1 (23:50) and n2 (00:05); Jan 2: n1 again (00:10); n3 ended before the window
    assert [(d["date"], d["sessions"], d["visitors"]) for d in daily["days"]] == [
        ("2026-01-01", 2, 2),
        ("2026-01-02", 1, 1),
    ]
    # a session counts once, in the country of its first event (n1: DE, not FR); n2 has none
    assert [(c["country"], c["sessions"]) for c in geo["countries"]] == [("DE", 1), ("unknown", 1)]
    # sessions with an event in the window: n1, n2; events: n1 2, n2 1 (its 23:50 the day before is outside)
    assert (overview["sessions"], overview["unique_visitors"], overview["events"]) == (2, 2, 3)


async def test_top_pages_rank_paths_by_views_with_unique_visitors(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/pages/top", seeded, limit="2")

    # /pricing: s1, s2, s4 (v1, v2, v3); / and /docs: 1 view each, "/" first by name; limit 2
    assert body["limit"] == 2
    assert body["pages"] == [
        {"path": "/pricing", "views": 3, "unique_visitors": 3},
        {"path": "/", "views": 1, "unique_visitors": 1},
    ]


async def test_geo_counts_web_and_mcp_sessions_per_country_with_unknown(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/geo", seeded)

    # DE: s1, s3 of v1; unknown: s2 and m2; US: s4 and m1 -> all 2 sessions, ordered by code
    assert body["countries"] == [
        {"country": "DE", "sessions": 2, "visitors": 1, "mcp_sessions": 0},
        {"country": "US", "sessions": 1, "visitors": 1, "mcp_sessions": 1},
        {"country": "unknown", "sessions": 1, "visitors": 1, "mcp_sessions": 1},
    ]


async def test_engagement_puts_each_ended_session_in_its_score_bucket(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/engagement", seeded)

    # 15 -> 0-20, 75 -> 60-80, 100 -> 80-100; "high" is left out
    assert (body["sessions"], body["average_score"]) == (3, 63.3)
    assert [(b["range"], b["sessions"]) for b in body["buckets"]] == [
        ("0-20", 1),
        ("20-40", 0),
        ("40-60", 0),
        ("60-80", 1),
        ("80-100", 1),
    ]
    assert body["buckets"][0]["share"] == pytest.approx(1 / 3)


async def test_sources_attribute_each_session_to_its_first_event(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    body = await ask(http, "/analytics/sources", seeded)

    # first events: s1 google (www.google.com), s2 direct, s3 news.ycombinator.com, s4 google (google.com);
    # s1's later "(internal)" page views do not count
    assert body["sessions"] == 4
    assert body["sources"] == [
        {
            "source": "google",
            "medium": "organic",
            "sessions": 2,
            "visitors": 2,
            "share": 0.5,
            "referrer_host": "google.com",
        },
        {
            "source": "(direct)",
            "medium": "(none)",
            "sessions": 1,
            "visitors": 1,
            "share": 0.25,
            "referrer_host": None,
        },
        {
            "source": "news.ycombinator.com",
            "medium": "referral",
            "sessions": 1,
            "visitors": 1,
            "share": 0.25,
            "referrer_host": "news.ycombinator.com",
        },
    ]


async def test_realtime_counts_sessions_active_in_the_last_five_minutes(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    now = int(time.time() * 1000)
    events = [
        web_event("page_view", now - MINUTE, session="ra", visitor="a", path="/live"),
        web_event("page_view", now - 2 * MINUTE, session="rb", visitor="b", path="/live"),
        web_event("page_view", now - 3 * MINUTE, session="rb", visitor="b", path="/other"),
        web_event("page_view", now - 10 * MINUTE, session="rc", visitor="c", path="/earlier"),
        web_event("page_view", now - 40 * MINUTE, session="rd", visitor="d", path="/long-ago"),
        mcp_call("mA", "search", now - MINUTE, 5.0),
        mcp_call("mC", "search", now - 15 * MINUTE, 5.0),
    ]
    sessions = [
        mcp_session("mA", now - 20 * MINUTE),
        mcp_session("mB", now - 2 * MINUTE),
        mcp_session("mC", now - 20 * MINUTE),
    ]
    await seed(app, sessions=sessions, events=events)

    response = await http.get("/analytics/realtime", headers=await read_headers(http))

    body = response.json()
    # active: web ra, rb (a, b); MCP mA (a call 1 min ago), mB (started 2 min ago); mC's last call was 15 min ago
    assert (body["active_web_sessions"], body["active_visitors"], body["active_mcp_sessions"]) == (2, 2, 2)
    assert body["active_since"] == body["now"] - 5 * MINUTE
    # the last 30 minutes: 4 web events and 2 calls; the one 40 minutes ago is older
    minutes = body["events_per_minute"]
    assert len(minutes) == 30
    starts = [m["minute"] for m in minutes]
    assert starts == list(range(starts[0], starts[0] + 30 * MINUTE, MINUTE))
    assert minutes[-1]["minute"] <= body["now"] < minutes[-1]["minute"] + MINUTE
    assert sum(m["events"] for m in minutes) == 6
    assert body["top_pages"] == [
        {"path": "/live", "views": 2, "unique_visitors": 2},
        {"path": "/other", "views": 1, "unique_visitors": 1},
    ]


async def test_tracked_visits_show_up_in_overview_pages_and_engagement(http: httpx.AsyncClient) -> None:
    gid = {"X-Gateway-ID": DEMO}
    visit_body = {"session_id": "live-1", "visitor_id": "visitor-1", "url": "https://shop.test/pricing?x=1"}
    assert (await http.post("/track/session/start", json=visit_body, headers=gid)).status_code == 200
    event = {**visit_body, "event_name": "page_view"}
    assert (await http.post("/track/event", json=event, headers=gid)).status_code == 200
    # 40 points for 5 minutes + 20 for 5 page views + 0 scroll + 0 clicks = 60 -> the 60-80 bucket
    end = {**visit_body, "duration_ms": 300_000, "page_views": 5}
    assert (await http.post("/track/session/end", json=end, headers=gid)).status_code == 200
    headers = await read_headers(http)

    overview = (await http.get("/analytics/overview", params={"period": "24h"}, headers=headers)).json()
    pages = (await http.get("/analytics/pages/top", params={"period": "24h"}, headers=headers)).json()
    engagement = (await http.get("/analytics/engagement", params={"period": "24h"}, headers=headers)).json()

    assert (overview["sessions"], overview["unique_visitors"], overview["page_views"]) == (1, 1, 1)
    assert overview["avg_engagement"] == 60.0
    assert pages["pages"] == [{"path": "/pricing", "views": 1, "unique_visitors": 1}]
    assert [b["sessions"] for b in engagement["buckets"]] == [0, 0, 0, 1, 0]


async def test_another_gateways_read_key_sees_only_its_own_rows(
    http: httpx.AsyncClient, seeded: dict[str, str]
) -> None:
    other = await read_headers(http, OTHER)

    overview = await ask(http, "/analytics/overview", other)
    pages = await ask(http, "/analytics/pages/top", other)
    geo = await ask(http, "/analytics/geo", other)
    engagement = await ask(http, "/analytics/engagement", other)
    demo_pages = await ask(http, "/analytics/pages/top", seeded, limit="100")

    assert overview["gateway_id"] == OTHER
    assert (overview["events"], overview["sessions"], overview["leads"], overview["mcp_sessions"]) == (1, 1, 0, 0)
    assert pages["pages"] == [{"path": "/secret", "views": 1, "unique_visitors": 1}]
    assert geo["countries"] == [{"country": "unknown", "sessions": 1, "visitors": 1, "mcp_sessions": 0}]
    assert engagement["sessions"] == 0
    assert "/secret" not in [p["path"] for p in demo_pages["pages"]]


async def test_every_site_question_needs_a_read_key(http: httpx.AsyncClient) -> None:
    for kind in (None, "org", "sk"):
        headers = {} if kind is None else {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}
        for path in PATHS:
            response = await http.get(path, headers=headers)

            assert response.status_code == 401, (path, kind)
            assert response.headers["www-authenticate"] == "Bearer"


BAD_PARAMETERS = [
    ("/analytics/overview", {"since": str(T0 + DAY), "until": str(T0)}, "since"),
    ("/analytics/overview", {"period": "1y"}, "period"),
    ("/analytics/sessions/daily", {"since": "yesterday"}, "since"),
    ("/analytics/sessions/daily", {"since": "0", "until": str(T0)}, "since"),
    ("/analytics/pages/top", {"limit": "0"}, "limit"),
    ("/analytics/pages/top", {"limit": "ten"}, "limit"),
    ("/analytics/geo", {"since": str(T0), "until": str(T0)}, "since"),
    ("/analytics/sources", {"limit": "1000"}, "limit"),
    ("/analytics/engagement", {"until": "not-a-time"}, "until"),
]


async def test_bad_parameters_are_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    for path, params, field in BAD_PARAMETERS:
        response = await http.get(path, params=params, headers=headers)

        assert response.status_code == 400, (path, params)
        assert response.json()["field"] == field, (path, params)
