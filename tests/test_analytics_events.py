"""Seed 002's event questions (/stats, /events, /query, /properties, /properties/received, /breakdown,
/insights) on a small data set whose answers are worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.analytics import query as query_module

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, web_event
from .support import DEMO, admin_json, create_key

WINDOW = {"since": str(T0), "until": str(T0 + 2 * DAY)}
"""Thursday and Friday; the previous window is the two days before."""


async def seed_shop(app: Starlette) -> None:
    """Three visitors, a server event, one MCP session with three calls; one event before, one after the window.

    in the window (10 events, users v1 v2 v3 u9, sessions s1 s2 s3 m1):
      e1 T0+1h     page_view s1 v1 /          US google  {plan: pro}
      e2 T0+1h05   page_view s1 v1 /pricing   US google  {plan: pro, price: 30}
      e3 T0+1h06   signup    s1 v1 /pricing   US         {plan: pro}
      e4 T0+2h     page_view s2 v2 /          DE         {plan: free, price: 0}
      c1 T0+5h     book_demo tool      m1  100 ms ok
      c2 T0+5h01   search    tool      m1  300 ms error (timeout)
      c3 T0+5h02   pricing://current resource m1 20 ms ok
      e5 T0+1d3h   page_view s3 v3 /docs      US
      e6 T0+1d3h01 signup    s3 v3            US         {plan: free}
      e7 T0+1d4h   invoice_paid (server, user u9, no session)  {amount: 99}
    before: p1 T0-1d page_view p1 v1 /;   after: T0+3d page_view s9 v1 /late
    """
    await seed(
        app,
        sessions=[mcp_session("m1", T0 + 5 * HOUR)],
        events=[
            web_event("page_view", T0 - DAY, visitor="v1", session="p1", path="/"),
            web_event(
                "page_view", T0 + HOUR, visitor="v1", session="s1", path="/", country="US",
                referrer="https://google.com/", traffic_source="google", properties={"plan": "pro"},
            ),
            web_event(
                "page_view", T0 + HOUR + 5 * MINUTE, visitor="v1", session="s1", path="/pricing", country="US",
                traffic_source="google", properties={"plan": "pro", "price": 30},
            ),
            web_event(
                "signup", T0 + HOUR + 6 * MINUTE, visitor="v1", session="s1", path="/pricing", country="US",
                properties={"plan": "pro"},
            ),
            web_event(
                "page_view", T0 + 2 * HOUR, visitor="v2", session="s2", path="/", country="DE",
                properties={"plan": "free", "price": 0},
            ),
            mcp_call("m1", "book_demo", T0 + 5 * HOUR, 100.0),
            mcp_call("m1", "search", T0 + 5 * HOUR + MINUTE, 300.0, success=False, error_type="timeout"),
            mcp_call("m1", "pricing://current", T0 + 5 * HOUR + 2 * MINUTE, 20.0, primitive_type="resource"),
            web_event("page_view", T0 + DAY + 3 * HOUR, visitor="v3", session="s3", path="/docs", country="US"),
            web_event(
                "signup", T0 + DAY + 3 * HOUR + MINUTE, visitor="v3", session="s3", country="US",
                properties={"plan": "free"},
            ),
            web_event(
                "invoice_paid", T0 + DAY + 4 * HOUR, source="server", user_id_hash="u9", properties={"amount": 99}
            ),
            web_event("page_view", T0 + 3 * DAY, visitor="v1", session="s9", path="/late"),
        ],
    )  # fmt: skip


@pytest.fixture
async def shop(app: Starlette, http: httpx.AsyncClient) -> dict[str, str]:
    """The shop's data in `demo`; the read key headers to ask with."""
    await seed_shop(app)
    return await read_headers(http)


async def ask(http: httpx.AsyncClient, headers: dict[str, str], path: str, **params: Any) -> Any:
    response = await http.get(path, params={**WINDOW, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def query(http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await http.post("/query", json={"since": T0, "until": T0 + 2 * DAY, **body}, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["metrics"] == body.get("metrics", ["event_count"])
    assert answer["group_by"] == body.get("group_by", [])
    rows: list[dict[str, Any]] = answer["rows"]
    return rows


# -- /stats --------------------------------------------------------------------------------------------


async def test_stats_count_events_users_and_sessions_against_the_previous_window(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    body = await ask(http, shop, "/stats")

    # 10 events; users v1 v2 v3 u9; sessions s1 s2 s3 m1 (e7 has none). Before: p1's one page view.
    assert (body["total_events"], body["unique_users"], body["total_sessions"]) == (10, 4, 4)
    assert body["metrics"]["total_events"] == {"current": 10, "previous": 1, "change": 9, "change_pct": 900.0}
    assert body["metrics"]["unique_users"] == {"current": 4, "previous": 1, "change": 3, "change_pct": 300.0}
    assert body["previous_window"] == {"since": T0 - 2 * DAY, "until": T0}
    # page_view: e1 e2 e4 e5; signup: e3 e6; then the ones, by name.
    assert body["top_events"] == [
        {"event": "page_view", "count": 4},
        {"event": "signup", "count": 2},
        {"event": "book_demo", "count": 1},
        {"event": "invoice_paid", "count": 1},
        {"event": "pricing://current", "count": 1},
        {"event": "search", "count": 1},
    ]
    # Thursday: e1-e4 and c1-c3 (users v1 v2; sessions s1 s2 m1). Friday: e5 e6 e7 (v3 u9; s3).
    assert body["group_by"] == "day"
    assert body["timeseries"] == [
        {"timestamp": T0, "events": 7, "unique_users": 2, "sessions": 3},
        {"timestamp": T0 + DAY, "events": 3, "unique_users": 2, "sessions": 1},
    ]


async def test_stats_by_hour_fill_every_hour_and_filter_by_source_and_primitive(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    hourly = await ask(http, shop, "/stats", groupBy="hour", source="mcp")
    resources = await ask(http, shop, "/stats", group_by="hour", primitive="resource")

    series = hourly["timeseries"]
    assert len(series) == 48
    assert [(p["timestamp"], p["events"]) for p in series if p["events"]] == [(T0 + 5 * HOUR, 3)]
    # MCP calls carry no user: the anomaly seed 002 flags (users 0, events > 0).
    assert (hourly["total_events"], hourly["unique_users"], hourly["total_sessions"]) == (3, 0, 1)
    assert hourly["metrics"]["total_events"]["change_pct"] is None
    assert [e["event"] for e in resources["top_events"]] == ["pricing://current"]


async def test_stats_refuse_a_series_of_too_many_buckets(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    response = await http.get("/stats", params={"since": "0", "until": str(T0), "groupBy": "hour"}, headers=shop)

    assert response.status_code == 400
    assert response.json()["field"] == "groupBy"


# -- /events -------------------------------------------------------------------------------------------


async def test_the_event_log_is_newest_first_and_filters_by_session_source_and_primitive(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    newest = await ask(http, shop, "/events", limit="2")
    session = await ask(http, shop, "/events", session_id="s1")
    resources = await ask(http, shop, "/events", source="mcp", primitive="resource")
    signups = await ask(http, shop, "/events", event="signup")

    assert [e["event"] for e in newest["events"]] == ["invoice_paid", "signup"]
    invoice = newest["events"][0]
    assert (invoice["source"], invoice["timestamp"], invoice["properties"]) == (
        "server",
        T0 + DAY + 4 * HOUR,
        {"amount": 99},
    )
    assert [e["path"] for e in session["events"]] == ["/pricing", "/pricing", "/"]
    assert session["events"][2]["properties"] == {"plan": "pro"}
    [call] = resources["events"]
    assert (call["event"], call["primitive_type"], call["latency_ms"], call["success"]) == (
        "pricing://current", "resource", 20.0, True,
    )  # fmt: skip
    assert [e["timestamp"] for e in signups["events"]] == [T0 + DAY + 3 * HOUR + MINUTE, T0 + HOUR + 6 * MINUTE]


# -- POST /query ---------------------------------------------------------------------------------------


async def test_query_counts_by_source(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    rows = await query(
        http, shop, {"metrics": ["event_count", "unique_users", "session_count"], "group_by": ["source"]}
    )

    # web: e1-e6 (v1 v2 v3; s1 s2 s3); mcp: c1-c3 (no user; m1); server: e7 (u9; no session).
    assert rows == [
        {"source": "web", "event_count": 6, "unique_users": 3, "session_count": 3},
        {"source": "mcp", "event_count": 3, "unique_users": 0, "session_count": 1},
        {"source": "server", "event_count": 1, "unique_users": 1, "session_count": 0},
    ]


async def test_query_groups_by_a_custom_property_and_by_day(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    plans = await query(
        http, shop, {"group_by": ["properties.plan"], "filters": [{"field": "source", "op": "eq", "value": "web"}]}
    )
    days = await query(http, shop, {"group_by": ["day"], "order_by": "day", "order": "asc"})

    # pro: e1 e2 e3; free: e4 e6; none: e5.
    assert plans == [
        {"properties.plan": "pro", "event_count": 3},
        {"properties.plan": "free", "event_count": 2},
        {"properties.plan": None, "event_count": 1},
    ]
    assert days == [{"day": T0, "event_count": 7}, {"day": T0 + DAY, "event_count": 3}]


async def test_query_computes_latency_and_errors_of_mcp_calls(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    rows = await query(
        http,
        shop,
        {
            "metrics": ["avg_latency_ms", "error_rate", "error_count"],
            "group_by": ["event"],
            "filters": [{"field": "primitive_type", "op": "eq", "value": "tool"}],
            "order_by": "event",
            "order": "asc",
        },
    )

    assert rows == [
        {"event": "book_demo", "avg_latency_ms": 100.0, "error_rate": 0.0, "error_count": 0},
        {"event": "search", "avg_latency_ms": 300.0, "error_rate": 1.0, "error_count": 1},
    ]


async def test_query_counts_by_day_and_country_from_the_rollups(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    rows = await query(http, shop, {"group_by": ["day", "country"], "order_by": "day", "order": "asc"})
    users = await query(http, shop, {"metrics": ["unique_users", "session_count", "event_count"], "group_by": ["day"]})

    # Thursday: DE e4, US e1 e2 e3, none c1 c2 c3; Friday: US e5 e6, none e7. By day, then country, none last.
    assert rows == [
        {"day": T0, "country": "DE", "event_count": 1},
        {"day": T0, "country": "US", "event_count": 3},
        {"day": T0, "country": None, "event_count": 3},
        {"day": T0 + DAY, "country": "US", "event_count": 2},
        {"day": T0 + DAY, "country": None, "event_count": 1},
    ]
    # Thursday: users v1 v2, sessions s1 s2 m1; Friday: users v3 u9, session s3. Equal users: by day.
    assert users == [
        {"day": T0, "unique_users": 2, "session_count": 3, "event_count": 7},
        {"day": T0 + DAY, "unique_users": 2, "session_count": 1, "event_count": 3},
    ]


EVERY_EVENT = {"field": "event", "op": "neq", "value": "no such event"}
"""A filter every event passes that the rollups cannot apply: the same query, answered from the events."""
ROLLUP_SHAPES: list[dict[str, Any]] = [
    {"group_by": ["hour"]},
    {"group_by": ["day", "path"], "filters": [{"field": "event", "op": "eq", "value": "page_view"}]},
    {"group_by": ["event", "source"], "order_by": "event"},
    {"group_by": ["hour", "event"], "filters": [{"field": "source", "op": "eq", "value": "mcp"}]},
    {"group_by": ["source"], "metrics": ["session_count", "unique_users"]},
    {"group_by": ["traffic_source"], "order": "asc"},
    {"metrics": ["unique_users", "event_count"]},
]


async def test_query_shapes_from_the_rollups_answer_as_the_events_do(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    # From 1h03 to 1d3h30: the partial hours at both ends come from the events, the rest from the rollups.
    window = {"since": T0 + HOUR + 3 * MINUTE, "until": T0 + DAY + 3 * HOUR + 30 * MINUTE}
    for body in ROLLUP_SHAPES:
        fast = await http.post("/query", json={**window, **body}, headers=shop)
        scanned = await http.post(
            "/query", json={**window, **body, "filters": [*body.get("filters", []), EVERY_EVENT]}, headers=shop
        )
        assert fast.status_code == scanned.status_code == 200
        assert fast.json()["rows"] == scanned.json()["rows"], body
        assert fast.json()["rows"], body


SKETCH_SHAPES: list[dict[str, Any]] = [
    {"metrics": ["event_count", "unique_users"], "group_by": ["day", "traffic_source"]},
    {"metrics": ["unique_users"], "group_by": ["traffic_source"]},
    {"metrics": ["unique_users", "event_count"], "group_by": ["traffic_source", "day"], "order_by": "day"},
]


async def test_unique_users_by_traffic_source_from_the_sketches_answer_as_the_events_do(
    http: httpx.AsyncClient, shop: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above `EXACT_BELOW` events, the writer's per-day visitor sketches answer (for whole days) and the partial
    days' events; a handful of users is counted exactly by the sketches' linear counting."""
    monkeypatch.setattr(query_module, "EXACT_BELOW", 1)
    for window in ({"since": T0 - HOUR, "until": T0 + 2 * DAY}, {"since": T0 + HOUR, "until": T0 + DAY + 3 * HOUR}):
        for body in SKETCH_SHAPES:
            fast = await http.post("/query", json={**window, **body}, headers=shop)
            scanned = await http.post("/query", json={**window, **body, "filters": [EVERY_EVENT]}, headers=shop)
            assert fast.status_code == scanned.status_code == 200
            assert fast.json()["rows"] == scanned.json()["rows"], (window, body)
            assert any(row["unique_users"] for row in fast.json()["rows"]), body


FILTER_CASES: list[tuple[dict[str, Any], int]] = [
    ({"field": "properties.price", "op": "gt", "value": 10}, 1),  # e2 (30)
    ({"field": "properties.price", "op": "lt", "value": 10}, 1),  # e4 (0)
    ({"field": "properties.price", "op": "eq", "value": 30}, 1),  # e2, compared as text
    ({"field": "path", "op": "contains", "value": "PRIC"}, 2),  # e2 e3, case-insensitive
    ({"field": "path", "op": "contains", "value": "%"}, 0),  # a literal %, not a wildcard
    ({"field": "country", "op": "in", "value": ["DE", "FR"]}, 1),  # e4
    ({"field": "country", "op": "neq", "value": "US"}, 5),  # e4, and e7 c1 c2 c3 without a country
    ({"field": "latency_ms", "op": "gt", "value": 50}, 2),  # c1 c2
    ({"field": "success", "op": "eq", "value": False}, 1),  # c2
    ({"field": "event", "op": "neq", "value": "page_view"}, 6),
]


async def test_query_filters_by_columns_and_properties(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    counts = [(await query(http, shop, {"filters": [condition]}))[0]["event_count"] for condition, _ in FILTER_CASES]

    assert counts == [expected for _, expected in FILTER_CASES]


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"metrics": ["bogus"]}, "metrics.0"),
    ({"metrics": []}, "metrics"),
    ({"group_by": ["latency_ms"]}, "group_by.0"),
    ({"group_by": ["event", "nope"]}, "group_by.1"),
    ({"group_by": ["a", "b", "c", "d"]}, "group_by"),
    ({"filters": [{"field": "nope", "value": 1}]}, "filters.0.field"),
    ({"filters": [{"field": "day", "value": 1}]}, "filters.0.field"),
    ({"filters": [{"field": "path", "op": "gt", "value": 1}]}, "filters.0.op"),
    ({"filters": [{"field": "path", "op": "like", "value": "x"}]}, "filters.0.op"),
    ({"filters": [{"field": "latency_ms", "op": "gt", "value": "fast"}]}, "filters.0.value"),
    ({"filters": [{"field": "country", "op": "in", "value": "US"}]}, "filters.0.value"),
    ({"filters": [{"field": "country", "op": "in", "value": []}]}, "filters.0.value"),
    ({"filters": [{"field": "success", "value": "yes"}]}, "filters.0.value"),
    ({"filters": [{"field": "source", "value": True}]}, "filters.0.value"),
    ({"filters": [{"field": "source"}]}, "filters.0.value"),
    ({"order_by": "source"}, "order_by"),
    ({"limit": 0}, "limit"),
    ({"since": "yesterday"}, "since"),
]


async def test_query_rejects_bad_bodies_naming_the_field(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    answers = [await http.post("/query", json=body, headers=headers) for body, _ in BAD_BODIES]

    assert [(r.status_code, r.json().get("field")) for r in answers] == [(400, field) for _, field in BAD_BODIES]


async def test_query_body_must_be_a_json_object(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    response = await http.post("/query", content=b"[1]", headers={**shop, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["field"] == "body"


# -- /properties and /properties/received -------------------------------------------------------------


async def test_properties_list_event_names_with_counts_and_keys(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    body = await ask(http, shop, "/properties")

    events = {e["event"]: e for e in body["events"]}
    assert [e["event"] for e in body["events"]][:2] == ["page_view", "signup"]
    assert (events["page_view"]["count"], events["page_view"]["properties"]) == (4, ["plan", "price"])
    assert (events["page_view"]["first_seen"], events["page_view"]["last_seen"]) == (T0 + HOUR, T0 + DAY + 3 * HOUR)
    assert events["signup"]["properties"] == ["plan"]
    assert events["search"]["properties"] == []
    assert body["property_keys"] == ["amount", "plan", "price"]


async def test_received_properties_count_keys_in_each_names_most_recent_events(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    everything = await ask(http, shop, "/properties/received", event="page_view")
    latest_two = await ask(http, shop, "/properties/received", event="page_view", sample="2")

    # page views: e5 (none), e4 (plan, price), e2 (plan, price), e1 (plan).
    [page_views] = everything["events"]
    assert (page_views["count"], page_views["sampled"]) == (4, 4)
    assert page_views["properties"] == [{"key": "plan", "count": 3}, {"key": "price", "count": 2}]
    # The two most recent: e5 and e4.
    [recent] = latest_two["events"]
    assert (recent["count"], recent["sampled"]) == (4, 2)
    assert recent["properties"] == [{"key": "plan", "count": 1}, {"key": "price", "count": 1}]


# -- /breakdown ----------------------------------------------------------------------------------------


async def test_breakdown_of_a_column_counts_events_and_users_per_value(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    everything = await ask(http, shop, "/breakdown", property="country")
    page_views = await ask(http, shop, "/breakdown", property="country", event="page_view")
    top = await ask(http, shop, "/breakdown", property="country", limit="1")
    tools = await ask(http, shop, "/breakdown", property="country", primitive="tool")

    # US: e1 e2 e3 e5 e6; none: e7 c1 c2 c3; DE: e4. From the rollups, which keep no users per value.
    assert everything["total_events"] == 10
    assert [(v["value"], v["count"], v["unique_users"]) for v in everything["values"]] == [
        ("US", 5, None),
        (None, 4, None),
        ("DE", 1, None),
    ]
    # A primitive filter reads the events: tool calls c1 c2, no country, no users.
    assert (tools["total_events"], tools["values"]) == (2, [{"value": None, "count": 2, "unique_users": 0}])
    assert [(v["value"], v["count"]) for v in page_views["values"]] == [("US", 3), ("DE", 1)]
    assert page_views["total_events"] == 4
    assert [v["value"] for v in top["values"]] == ["US"]


async def test_breakdown_of_a_custom_property(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    prefixed = await ask(http, shop, "/breakdown", property="properties.plan", event="signup")
    bare = await ask(http, shop, "/breakdown", property="plan", event="signup")

    # signups: e3 pro (v1), e6 free (v3); equal counts, so by value.
    assert [(v["value"], v["count"], v["unique_users"]) for v in prefixed["values"]] == [("free", 1, 1), ("pro", 1, 1)]
    assert bare["values"] == prefixed["values"]


async def test_breakdown_by_referrer_is_by_referring_site_and_by_name_from_the_rollups(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    referrers = await ask(http, shop, "/breakdown", property="referrer")
    names = await ask(http, shop, "/breakdown", property="event", source="web")

    # Only e1 has a referrer, https://google.com/: its host. The other 9 events have none.
    assert [(v["value"], v["count"]) for v in referrers["values"]] == [(None, 9), ("google.com", 1)]
    # web events: page_view e1 e2 e4 e5, signup e3 e6.
    assert (names["total_events"], [(v["value"], v["count"]) for v in names["values"]]) == (
        6,
        [("page_view", 4), ("signup", 2)],
    )


# -- /insights -----------------------------------------------------------------------------------------


async def test_insights_compare_the_window_with_the_one_before(http: httpx.AsyncClient, shop: dict[str, str]) -> None:
    metrics = (await ask(http, shop, "/insights"))["metrics"]

    # now: 10 events, 4 users, 4 sessions, 4 page views, tool calls c1 c2, errors 1 of 3 MCP calls.
    # sessions with page views: s1 (2), s2 (1), s3 (1): bounce 2/3. Lengths s1 6 min, s2 0, s3 1 min,
    # m1 2 min: average 540000 / 4 = 135000 ms. Before: p1, one page view: bounce 1, length 0.
    assert metrics["total_events"] == {"current": 10, "previous": 1, "change": 9, "change_pct": 900.0}
    assert metrics["total_sessions"]["current"] == 4
    assert metrics["page_views"] == {"current": 4, "previous": 1, "change": 3, "change_pct": 300.0}
    bounce = metrics["bounce_rate"]
    assert bounce["current"] == pytest.approx(2 / 3)
    assert bounce["previous"] == 1.0
    assert bounce["change_pct"] == pytest.approx(-33.33)
    assert metrics["avg_session_duration_ms"] == {
        "current": 135000.0, "previous": 0.0, "change": 135000.0, "change_pct": None,
    }  # fmt: skip
    assert metrics["tool_calls"] == {"current": 2, "previous": 0, "change": 2, "change_pct": None}
    assert metrics["error_rate"]["current"] == pytest.approx(1 / 3)


async def test_insights_over_a_named_period_compare_with_the_same_length_before(
    http: httpx.AsyncClient, shop: dict[str, str]
) -> None:
    response = await http.get(
        "/insights", params={"period": "7d", "until": str(T0 + DAY), "source": "web"}, headers=shop
    )

    body = response.json()
    assert body["window"] == {"since": T0 - 6 * DAY, "until": T0 + DAY}
    assert body["previous_window"] == {"since": T0 - 13 * DAY, "until": T0 - 6 * DAY}
    # web events from T0-6d to T0+1d: p1, e1-e4.
    assert body["metrics"]["total_events"] == {"current": 5, "previous": 0, "change": 5, "change_pct": None}


# -- who may ask, and what they see -------------------------------------------------------------------

GETS = ["/stats", "/events", "/properties", "/properties/received", "/breakdown?property=path", "/insights"]


async def test_another_gateways_read_key_sees_none_of_these_events(
    http: httpx.AsyncClient, shop: dict[str, str], app: Starlette
) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})
    await seed(app, events=[web_event("page_view", T0 + HOUR, visitor="o1", path="/o", gateway_id="other")])
    other = await read_headers(http, "other")

    stats = await ask(http, other, "/stats")
    log = await ask(http, other, "/events")
    rows = await query(http, other, {"group_by": ["event"]})
    props = await ask(http, other, "/properties")
    breakdown = await ask(http, other, "/breakdown", property="path")
    insights = await ask(http, other, "/insights")
    demo_paths = {e["path"] for e in (await ask(http, shop, "/events"))["events"]}

    assert (stats["total_events"], [e["event"] for e in stats["top_events"]]) == (1, ["page_view"])
    assert [e["path"] for e in log["events"]] == ["/o"]
    assert rows == [{"event": "page_view", "event_count": 1}]
    assert props["property_keys"] == []
    assert [v["value"] for v in breakdown["values"]] == ["/o"]
    assert insights["metrics"]["total_sessions"]["current"] == 1
    assert "/o" not in demo_paths


async def test_without_a_read_key_every_question_answers_401(http: httpx.AsyncClient) -> None:
    other_kinds = [{"X-API-Key": await create_key(http, DEMO, kind)} for kind in ("org", "sk")]
    statuses = []
    for headers in [{}, *other_kinds]:
        for path in GETS:
            response = await http.get(path, headers=headers)
            statuses.append((path, response.status_code, response.headers.get("www-authenticate")))
        response = await http.post("/query", json={}, headers=headers)
        statuses.append(("/query", response.status_code, response.headers.get("www-authenticate")))

    assert statuses == [(path, 401, "Bearer") for _ in range(3) for path in [*GETS, "/query"]]


BAD_PARAMETERS: list[tuple[str, dict[str, str], str]] = [
    ("/stats", {"groupBy": "week"}, "groupBy"),
    ("/stats", {"group_by": "week"}, "group_by"),
    ("/stats", {"source": "email"}, "source"),
    ("/stats", {"primitive": "widget"}, "primitive"),
    ("/stats", {"limit": "0"}, "limit"),
    ("/events", {"limit": "1001"}, "limit"),
    ("/events", {"limit": "many"}, "limit"),
    ("/events", {"since": "5", "until": "3"}, "since"),
    ("/events", {"event": ""}, "event"),
    ("/properties", {"sample": "0"}, "sample"),
    ("/properties/received", {"period": "1y"}, "period"),
    ("/breakdown", {}, "property"),
    ("/breakdown", {"property": "properties."}, "property"),
    ("/breakdown", {"property": "path", "limit": "-1"}, "limit"),
    ("/insights", {"until": "tomorrow"}, "until"),
    ("/insights", {"source": "x"}, "source"),
]


async def test_bad_parameters_get_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    headers = await read_headers(http)
    answers = [await http.get(path, params=params, headers=headers) for path, params, _ in BAD_PARAMETERS]

    assert [(r.status_code, r.json().get("field")) for r in answers] == [(400, field) for _, _, field in BAD_PARAMETERS]
