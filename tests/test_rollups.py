"""The writer's hourly rollups count every stored event exactly once, by name and by dimension, in
the same transaction as the event; duplicates add nothing."""

from __future__ import annotations

from starlette.applications import Starlette

from mcp_gateway.store.rollups import referrer_host

from .analytics_support import HOUR, MINUTE, T0, mcp_call, mcp_session, seed, store_of, web_event


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
