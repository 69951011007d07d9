"""The writer's hourly rollups count every stored event exactly once, by name and by dimension, in
the same transaction as the event; duplicates add nothing."""

from __future__ import annotations

import random

from starlette.applications import Starlette

from mcp_gateway.store import EventRow, sketch
from mcp_gateway.store.session_counts import SESSION_COLUMNS, CountKey, Tally, contributions, facts_of
from mcp_gateway.store.session_rollup import referrer_host

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, seed, store_of, web_event


async def test_web_events_are_counted_per_hour_name_and_dimension(app: Starlette) -> None:
    events = [
        web_event(
            "page_view", T0 + 1 * MINUTE, visitor="v1", path="/", referrer="https://www.google.com/q", country="DE"
        ),
        web_event("page_view", T0 + 2 * MINUTE, visitor="v1", path="/pricing", country="DE"),
        web_event("page_view", T0 + HOUR + 5 * MINUTE, visitor="v2", path="/", country="FR", device_type="mobile"),
        web_event("signup", T0 + HOUR + 6 * MINUTE, visitor="v2"),
    ]
    await seed(app, events=events)
    store = store_of(app)

    totals = await store.fetch(
        "SELECT hour_ms, name, events FROM event_rollups WHERE dimension = '' ORDER BY hour_ms, name"
    )
    paths = await store.fetch(
        "SELECT value, SUM(events) FROM event_rollups WHERE dimension = 'path' GROUP BY value ORDER BY value"
    )
    countries = await store.fetch(
        "SELECT value, SUM(events) FROM event_rollups WHERE dimension = 'country' GROUP BY value ORDER BY value"
    )
    hosts = await store.fetch("SELECT value FROM event_rollups WHERE dimension = 'referrer_host'")
    actors = await store.fetch("SELECT hour_ms, actor, events FROM activity_rollups ORDER BY hour_ms, actor")

    assert totals == [(T0, "page_view", 2), (T0 + HOUR, "page_view", 1), (T0 + HOUR, "signup", 1)]
    assert paths == [("/", 2), ("/pricing", 1)]
    assert countries == [("DE", 2), ("FR", 1)]
    assert hosts == [("google.com",)]
    assert actors == [(T0, "v1", 2), (T0 + HOUR, "v2", 2)]


async def test_mcp_calls_are_counted_by_client_and_duplicates_add_nothing(app: Starlette) -> None:
    sessions = [mcp_session("s1", T0, client="claude-desktop 1.0"), mcp_session("s2", T0, client="cursor 1.2")]
    calls = [mcp_call("s1", "search", T0 + MINUTE, 10.0), mcp_call("s2", "search", T0 + MINUTE, 20.0)]
    await seed(app, sessions=sessions, events=calls)
    store = store_of(app)
    await store.capture([], calls)  # the same events again: duplicates

    clients = await store.fetch("SELECT value, events FROM event_rollups WHERE dimension = 'client' ORDER BY value")
    actors = await store.fetch("SELECT actor, session_id, events FROM activity_rollups ORDER BY actor")

    assert clients == [("claude-desktop 1.0", 1), ("cursor 1.2", 1)]
    assert actors == [("", "s1", 1), ("", "s2", 1)]  # MCP calls: sessions, no users


def test_referrer_host_drops_www_and_tolerates_junk() -> None:
    assert referrer_host("https://www.Example.com:8443/a?b") == "example.com"
    assert referrer_host("not a url") is None
    assert referrer_host("http://[::1") is None
    assert referrer_host(None) is None


async def test_session_rows_match_their_events_whatever_order_batches_arrive_in(app: Starlette) -> None:
    rng = random.Random(11)
    sessions = [mcp_session(f"m{i}", T0, client="cursor 1.2") for i in range(3)]
    events: list[EventRow] = []
    for _ in range(300):
        ts = T0 + rng.randrange(6 * HOUR)
        if rng.random() < 0.5:
            name = rng.choice(["search", "book_demo"])
            events.append(mcp_call(f"m{rng.randrange(3)}", name, ts, 5.0, success=rng.random() < 0.8))
        else:
            events.append(
                web_event(
                    rng.choice(["page_view", "signup"]),
                    ts,
                    visitor="v",
                    session=f"w{rng.randrange(4)}",
                    path=rng.choice(["/", "/pricing", None]),
                    referrer=rng.choice(["https://www.google.com/", None]),
                    traffic_source=rng.choice(["google", "direct"]),
                )
            )
    shuffled = events[:]
    rng.shuffle(shuffled)
    await seed(app, sessions=sessions)
    for start in range(0, len(shuffled), 37):  # many batches, out of time order
        await seed(app, events=shuffled[start : start + 37])

    rows = await store_of(app).fetch(
        "SELECT id, started_ms, last_ms, events, page_views, entry_path, exit_path, traffic_source, referrer_host,"
        " calls, errors, booked_ms, client FROM sessions ORDER BY id"
    )

    expected = []
    for sid in sorted({e.session_id for e in events if e.session_id}):
        mine = sorted((e for e in events if e.session_id == sid), key=lambda e: e.ts_ms)
        with_path = [e for e in mine if e.web and e.web.path]
        attributed = [e for e in mine if e.web and e.web.traffic_source]
        calls = [e for e in mine if e.source == "mcp"]
        booked = [e.ts_ms for e in calls if e.success and e.name == "book_demo"]
        first_attr = attributed[0].web if attributed else None
        expected.append(
            (
                sid,
                mine[0].ts_ms,
                mine[-1].ts_ms,
                len(mine),
                sum(e.name == "page_view" for e in mine),
                with_path[0].web.path if with_path and with_path[0].web else None,
                with_path[-1].web.path if with_path and with_path[-1].web else None,
                first_attr.traffic_source if first_attr else None,
                referrer_host(first_attr.referrer) if first_attr else None,
                len(calls),
                sum(not e.success for e in calls),
                min(booked) if booked else None,
                "cursor 1.2" if sid.startswith("m") else None,
            )
        )
    # Ties in time make entry/exit ambiguous; the data has none at the same millisecond on one session.
    assert rows == expected


async def test_daily_rollups_add_up_to_the_hourly_ones(app: Starlette) -> None:
    rng = random.Random(5)
    await seed(app, sessions=[mcp_session("s", T0)])
    events = [web_event("page_view", T0 + rng.randrange(3 * DAY), visitor="v", path="/") for _ in range(200)]
    events += [mcp_call("s", "search", T0 + rng.randrange(3 * DAY), float(rng.randrange(1, 500))) for _ in range(200)]
    await seed(app, events=events)
    store = store_of(app)

    hourly = await store.fetch(
        "SELECT hour_ms - hour_ms % 86400000, source, name, dimension, value, SUM(events) FROM event_rollups"
        " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    )
    daily = await store.fetch(
        "SELECT day_ms, source, name, dimension, value, events FROM event_rollups_daily ORDER BY 1, 2, 3, 4, 5"
    )
    mcp_hourly = await store.fetch(
        "SELECT hour_ms - hour_ms % 86400000, name, SUM(calls), SUM(latency_sum_ms) FROM mcp_rollups GROUP BY 1, 2"
        " ORDER BY 1, 2"
    )
    mcp_daily = await store.fetch("SELECT day_ms, name, calls, latency_sum_ms FROM mcp_rollups_daily ORDER BY 1, 2")

    assert hourly == daily
    assert mcp_hourly == mcp_daily


async def test_a_session_keeps_its_call_latency_and_its_last_end_with_a_numeric_score(app: Starlette) -> None:
    await seed(app, sessions=[mcp_session("m", T0)])
    events = [
        mcp_call("m", "search", T0 + MINUTE, 10.0),
        mcp_call("m", "search", T0 + 2 * MINUTE, 32.5, success=False),
        web_event("$session_end", T0 + 5 * MINUTE, visitor="v", session="w", properties={"engagement_score": 40}),
        web_event("$session_end", T0 + 9 * MINUTE, visitor="v", session="w", properties={"engagement_score": 72.5}),
        web_event("$session_end", T0 + 9 * MINUTE, visitor="u", session="x", properties={"engagement_score": "high"}),
    ]
    await seed(app, events=events[::-1])  # newest first: the later end must still win

    rows = await store_of(app).fetch("SELECT id, calls, errors, latency_ms, ended_ms, engagement_score FROM sessions")

    assert sorted(rows) == [
        ("m", 2, 1, 42.5, None, None),
        ("w", 0, 0, 0.0, T0 + 9 * MINUTE, 72.5),
        ("x", 0, 0, 0.0, T0 + 9 * MINUTE, None),  # not a number: no score
    ]


async def test_session_counts_add_up_to_the_sessions_rows_whatever_order_batches_arrive_in(app: Starlette) -> None:
    """Sessions span midnights and their landing moves as earlier events arrive late: the per-day counts still
    equal what the final `sessions` rows contribute, and every visitor is in its landing's sketches."""
    rng = random.Random(23)
    sessions = [mcp_session(f"m{i}", T0, client=rng.choice(["cursor 1.2", "claude-desktop 1.0"])) for i in range(4)]
    events: list[EventRow] = []
    for _ in range(400):
        ts = T0 + rng.randrange(3 * DAY)
        if rng.random() < 0.3:
            events.append(
                mcp_call(f"m{rng.randrange(4)}", "search", ts, rng.uniform(1, 50), success=rng.random() < 0.8)
            )
        else:
            events.append(
                web_event(
                    rng.choice(["page_view", "page_view", "signup"]),
                    ts,
                    visitor=f"v{rng.randrange(5)}",
                    session=f"w{rng.randrange(8)}",
                    path=rng.choice(["/", "/pricing", "/docs", None]),
                    referrer=rng.choice(["https://www.google.com/", "https://news.ycombinator.com/", None]),
                    traffic_source=rng.choice(["google", "hn", None]),
                    country=rng.choice(["DE", "FR", None]),
                )
            )
    rng.shuffle(events)
    await seed(app, sessions=sessions)
    for start in range(0, len(events), 29):
        await seed(app, events=events[start : start + 29])
    store = store_of(app)

    counted = await store.fetch(
        "SELECT gateway_id, day_ms, source, dimension, value, sessions, bounces, calls, errors, latency_ms"
        " FROM session_counts WHERE sessions <> 0 OR bounces <> 0 OR calls <> 0 OR errors <> 0"
    )
    facts = facts_of(await store.fetch(f"SELECT {SESSION_COLUMNS} FROM sessions"))
    expected: dict[CountKey, Tally] = {}
    for row in facts:
        for key, tally in contributions(row):
            expected.setdefault(key, Tally()).add(tally)

    rounded = {key: (t.sessions, t.bounces, t.calls, t.errors, round(t.latency_ms, 6)) for key, t in expected.items()}
    assert {CountKey(*row[:5]): (*row[5:9], round(row[9], 6)) for row in counted} == rounded
    assert {key.dimension for key in expected} == {
        "length",
        "country",
        "landing",
        "referrer",
        "entry",
        "exit",
        "client",
    }
    sketches = {
        CountKey(*row[:5]): row[5]
        for row in await store.fetch(
            "SELECT gateway_id, day_ms, source, dimension, value, visitors FROM session_counts"
            " WHERE dimension IN ('country', 'landing')"
        )
    }
    for row in facts:
        for key, _ in contributions(row):
            if row.actor and key.dimension in ("country", "landing"):
                index, rank = sketch.position(row.actor)
                assert sketches[key][index] >= rank
