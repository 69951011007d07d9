"""Seed 002's visit questions (/sessions, /sessions/distribution, /pages, /heatmap) on a small data set
whose answers are worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, web_event
from .support import DEMO, admin_json, create_key

TWO_DAYS = {"since": str(T0), "until": str(T0 + 2 * DAY)}
"""Thursday 2026-01-01 and Friday, UTC."""
FOUR_DAYS = {"since": str(T0), "until": str(T0 + 4 * DAY)}
WEEKEND = {"since": str(T0 + 2 * DAY), "until": str(T0 + 4 * DAY)}


async def seed_site(app: Starlette) -> None:
    """Web sessions of five visitors, one server event and one MCP session.

    Thursday (day 4):  s1 v1  01:00 page_view /   01:05 page_view /pricing   01:06 signup     (US)
                       s2 v2  02:00 page_view /                                               (DE)
                       m1     05:00 book_demo, 05:01 search, 05:02 pricing://current (claude-desktop)
    Friday (day 5):    s3 v3  03:00 $pageview /docs (direct)   03:01 signup                   (US)
                       04:00 invoice_paid (server, user u9, no session)
    Saturday (day 6):  s5 v5  01:00 page_view /blog   01:45 click
    Sunday (day 0):    s4 v4  23:00 PageView /
    """
    await seed(
        app,
        sessions=[mcp_session("m1", T0 + 5 * HOUR)],
        events=[
            web_event("page_view", T0 + HOUR, visitor="v1", session="s1", path="/", country="US"),
            web_event("page_view", T0 + HOUR + 5 * MINUTE, visitor="v1", session="s1", path="/pricing", country="US"),
            web_event("signup", T0 + HOUR + 6 * MINUTE, visitor="v1", session="s1", path="/pricing", country="US"),
            web_event("page_view", T0 + 2 * HOUR, visitor="v2", session="s2", path="/", country="DE"),
            mcp_call("m1", "book_demo", T0 + 5 * HOUR, 100.0),
            mcp_call("m1", "search", T0 + 5 * HOUR + MINUTE, 300.0, success=False),
            mcp_call("m1", "pricing://current", T0 + 5 * HOUR + 2 * MINUTE, 20.0, primitive_type="resource"),
            web_event(
                "$pageview",
                T0 + DAY + 3 * HOUR,
                visitor="v3",
                session="s3",
                path="/docs",
                country="US",
                traffic_source="(direct)",
            ),  # fmt: skip
            web_event("signup", T0 + DAY + 3 * HOUR + MINUTE, visitor="v3", session="s3", country="US"),
            web_event("invoice_paid", T0 + DAY + 4 * HOUR, source="server", user_id_hash="u9"),
            web_event("page_view", T0 + 2 * DAY + HOUR, visitor="v5", session="s5", path="/blog"),
            web_event("click", T0 + 2 * DAY + HOUR + 45 * MINUTE, visitor="v5", session="s5", path="/blog"),
            web_event("PageView", T0 + 3 * DAY + 23 * HOUR, visitor="v4", session="s4", path="/"),
        ],
    )


@pytest.fixture
async def site(app: Starlette, http: httpx.AsyncClient) -> dict[str, str]:
    await seed_site(app)
    return await read_headers(http)


async def ask(
    http: httpx.AsyncClient, headers: dict[str, str], path: str, window: dict[str, str], **params: Any
) -> Any:
    response = await http.get(path, params={**window, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# -- /sessions -----------------------------------------------------------------------------------------


async def test_sessions_list_web_and_mcp_sessions_newest_first(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    body = await ask(http, site, "/sessions", TWO_DAYS)

    # A session's country is its first attributed (traffic-classified) event's: s3's page view.
    s3, m1, s2, s1 = body["sessions"]
    assert s3 == {
        "session_id": "s3", "source": "web", "started_at": T0 + DAY + 3 * HOUR,
        "ended_at": T0 + DAY + 3 * HOUR + MINUTE, "duration_ms": MINUTE, "events": 2, "page_views": 1,
        "entry_page": "/docs", "exit_page": "/docs", "visitor_id": "v3", "client": None, "country": "US",
    }  # fmt: skip
    assert m1 == {
        "session_id": "m1", "source": "mcp", "started_at": T0 + 5 * HOUR, "ended_at": T0 + 5 * HOUR + 2 * MINUTE,
        "duration_ms": 2 * MINUTE, "events": 3, "page_views": 0, "entry_page": None, "exit_page": None,
        "visitor_id": None, "client": "claude-desktop 1.0", "country": None,
    }  # fmt: skip
    assert (s2["session_id"], s2["duration_ms"], s2["entry_page"], s2["exit_page"]) == ("s2", 0, "/", "/")
    assert (s1["session_id"], s1["events"], s1["page_views"]) == ("s1", 3, 2)
    assert (s1["duration_ms"], s1["entry_page"], s1["exit_page"]) == (6 * MINUTE, "/", "/pricing")


async def test_sessions_take_a_limit_and_a_source(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    newest = await ask(http, site, "/sessions", TWO_DAYS, limit="2")
    mcp = await ask(http, site, "/sessions", TWO_DAYS, source="mcp")
    web = await ask(http, site, "/sessions", TWO_DAYS, source="web")

    assert [s["session_id"] for s in newest["sessions"]] == ["s3", "m1"]
    assert [s["session_id"] for s in mcp["sessions"]] == ["m1"]
    assert [s["session_id"] for s in web["sessions"]] == ["s3", "s2", "s1"]


# -- /sessions/distribution ----------------------------------------------------------------------------


def counts(body: dict[str, Any]) -> dict[str, int]:
    return {b["label"]: b["count"] for b in body["buckets"] if b["count"]}


async def test_session_lengths_fall_into_fixed_buckets_with_the_median(
    http: httpx.AsyncClient, site: dict[str, str]
) -> None:
    everything = await ask(http, site, "/sessions/distribution", TWO_DAYS)
    web = await ask(http, site, "/sessions/distribution", TWO_DAYS, source="web")
    weekend = await ask(http, site, "/sessions/distribution", WEEKEND)

    # s2 0 s, s3 60 s (1-3m: the lower bound is inclusive), m1 120 s, s1 360 s; median (60 + 120) / 2 s.
    assert [b["label"] for b in everything["buckets"]] == [
        "0-10s",
        "10-30s",
        "30-60s",
        "1-3m",
        "3-10m",
        "10-30m",
        "30m+",
    ]
    assert counts(everything) == {"0-10s": 1, "1-3m": 2, "3-10m": 1}
    assert (everything["total_sessions"], everything["median_ms"]) == (4, 90_000)
    assert [b["share"] for b in everything["buckets"]] == [0.25, 0.0, 0.0, 0.5, 0.25, 0.0, 0.0]
    assert everything["buckets"][3] == {"label": "1-3m", "min_ms": 60_000, "max_ms": 180_000, "count": 2, "share": 0.5}
    # web only: 0, 60, 360 s.
    assert (counts(web), web["median_ms"]) == ({"0-10s": 1, "1-3m": 1, "3-10m": 1}, 60_000)
    # s5 45 min, s4 0 s.
    assert counts(weekend) == {"0-10s": 1, "30m+": 1}
    assert weekend["buckets"][-1]["max_ms"] is None
    assert weekend["median_ms"] == 45 * MINUTE / 2


async def test_no_sessions_have_no_median(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    body = await ask(http, site, "/sessions/distribution", {"since": str(T0 - DAY), "until": str(T0)})

    assert (body["total_sessions"], body["median_ms"], counts(body)) == (0, None, {})


# -- /pages --------------------------------------------------------------------------------------------


async def test_pages_count_views_entries_exits_and_bounces(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    by_views = await ask(http, site, "/pages", TWO_DAYS)
    by_entries = await ask(http, site, "/pages", TWO_DAYS, sort="entries")

    # Page views: s1 / then /pricing; s2 /; s3 /docs ($pageview).
    # /: entered by s1 and s2, left by s2, which bounced. /pricing: s1's exit. /docs: s3 entered, bounced, left.
    assert by_views["pages"] == [
        {"path": "/", "views": 2, "entries": 2, "exits": 1, "bounces": 1, "bounce_rate": 0.5, "exit_rate": 0.5},
        {"path": "/docs", "views": 1, "entries": 1, "exits": 1, "bounces": 1, "bounce_rate": 1.0, "exit_rate": 1.0},
        {"path": "/pricing", "views": 1, "entries": 0, "exits": 1, "bounces": 0, "bounce_rate": None,
         "exit_rate": 1.0},
    ]  # fmt: skip
    assert [(p["path"], p["entries"]) for p in by_entries["pages"]] == [("/", 2), ("/docs", 1), ("/pricing", 0)]


async def test_pages_take_a_limit(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    body = await ask(http, site, "/pages", FOUR_DAYS, limit="1")

    # Over four days / has s1's, s2's and s4's (PageView) views.
    assert [(p["path"], p["views"]) for p in body["pages"]] == [("/", 3)]


# -- /heatmap ------------------------------------------------------------------------------------------


async def test_heatmap_counts_events_by_weekday_and_hour_with_the_peak(
    http: httpx.AsyncClient, site: dict[str, str]
) -> None:
    body = await ask(http, site, "/heatmap", FOUR_DAYS)

    # Sunday is 0: s4 at 23:00. Thursday (4) 01:00 s1 x3, 02:00 s2, 05:00 m1 x3 (no users);
    # Friday (5) 03:00 s3 x2, 04:00 u9; Saturday (6) 01:00 s5 x2. The first of the two 3s is the peak.
    assert [(c["day"], c["hour"], c["events"], c["users"]) for c in body["heatmap"]] == [
        (0, 23, 1, 1),
        (4, 1, 3, 1),
        (4, 2, 1, 1),
        (4, 5, 3, 0),
        (5, 3, 2, 1),
        (5, 4, 1, 1),
        (6, 1, 2, 1),
    ]
    assert body["peak"] == {"day": 4, "hour": 1, "events": 3, "users": 1}
    assert body["total_events"] == 13


async def test_heatmap_filters_and_an_empty_window_has_no_peak(http: httpx.AsyncClient, site: dict[str, str]) -> None:
    mcp = await ask(http, site, "/heatmap", FOUR_DAYS, source="mcp")
    empty = await ask(http, site, "/heatmap", {"since": str(T0 - DAY), "until": str(T0)})

    assert mcp["peak"] == {"day": 4, "hour": 5, "events": 3, "users": 0}
    assert len(mcp["heatmap"]) == 1
    assert (empty["heatmap"], empty["peak"], empty["total_events"]) == ([], None, 0)


# -- who may ask, and what they see -------------------------------------------------------------------

PATHS = ["/sessions", "/sessions/distribution", "/pages", "/heatmap"]


async def test_another_gateways_read_key_sees_only_its_own_visits(
    http: httpx.AsyncClient, site: dict[str, str], app: Starlette
) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})
    await seed(
        app,
        sessions=[mcp_session("om", T0 + HOUR, gateway_id="other")],
        events=[
            web_event("page_view", T0 + HOUR, visitor="o1", session="o1", path="/o", gateway_id="other"),
            mcp_call("om", "search", T0 + HOUR + MINUTE, 50.0, gateway_id="other"),
        ],
    )
    other = await read_headers(http, "other")

    sessions = await ask(http, other, "/sessions", TWO_DAYS)
    distribution = await ask(http, other, "/sessions/distribution", TWO_DAYS)
    pages = await ask(http, other, "/pages", TWO_DAYS)
    heatmap = await ask(http, other, "/heatmap", TWO_DAYS)
    demo_pages = await ask(http, site, "/pages", TWO_DAYS)

    assert sorted(s["session_id"] for s in sessions["sessions"]) == ["o1", "om"]
    assert distribution["total_sessions"] == 2
    assert [p["path"] for p in pages["pages"]] == ["/o"]
    # o1's page view and om's call, Thursday 01:00; the call has no user.
    assert heatmap["heatmap"] == [{"day": 4, "hour": 1, "events": 2, "users": 1}]
    assert "/o" not in [p["path"] for p in demo_pages["pages"]]


async def test_without_a_read_key_every_question_answers_401(http: httpx.AsyncClient) -> None:
    other_kinds = [{"X-API-Key": await create_key(http, DEMO, kind)} for kind in ("org", "pk")]
    statuses = []
    for headers in [{}, *other_kinds]:
        for path in PATHS:
            response = await http.get(path, headers=headers)
            statuses.append((path, response.status_code, response.headers.get("www-authenticate")))

    assert statuses == [(path, 401, "Bearer") for _ in range(3) for path in PATHS]


BAD_PARAMETERS: list[tuple[str, dict[str, str], str]] = [
    ("/sessions", {"limit": "0"}, "limit"),
    ("/sessions", {"limit": "1001"}, "limit"),
    ("/sessions", {"source": "email"}, "source"),
    ("/sessions/distribution", {"source": "email"}, "source"),
    ("/sessions/distribution", {"since": "last week"}, "since"),
    ("/pages", {"sort": "bounces"}, "sort"),
    ("/pages", {"limit": "x"}, "limit"),
    ("/heatmap", {"event": ""}, "event"),
    ("/heatmap", {"primitive": "widget"}, "primitive"),
    ("/heatmap", {"period": "1y"}, "period"),
]


async def test_bad_parameters_get_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    answers = [await http.get(path, params=params, headers=headers) for path, params, _ in BAD_PARAMETERS]

    assert [(r.status_code, r.json().get("field")) for r in answers] == [(400, field) for _, _, field in BAD_PARAMETERS]
