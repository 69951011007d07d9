"""GET /live (a snapshot of the last minutes) and GET /stream (Server-Sent Events of each stored event).

The snapshot is asked in-process on data seeded relative to the clock, since "the last 5 minutes" is. The
stream runs over a real socket (`live_http`): httpx's in-process transport cannot stream a response; events
are stored through the ingestion routes while it is open. The feed's slow-subscriber and replay limits are
checked on a `LiveFeed` of their own.
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import anyio
import httpx
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.applications import Starlette

from mcp_gateway.analytics import live
from mcp_gateway.analytics.live import FeedItem, LiveFeed, StreamArgs
from mcp_gateway.ingest.enrich import sha256_hex

from .analytics_support import MINUTE, mcp_call, mcp_session, read_headers, seed, store_of, web_event
from .support import DEMO, SseMessage, admin_json, create_key, sse_messages

SESSION: Final = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
WAIT: Final = 5.0
"""Longest a test waits for one message on a stream."""


# -- GET /live ---------------------------------------------------------------------------------------


async def test_live_counts_what_happened_in_the_last_five_minutes(app: Starlette, http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    now = int(time.time() * 1000)
    seconds = 1000
    events = [
        # two web sessions active in the window, one that was active 10 minutes ago
        web_event("page_view", now - 4 * MINUTE, visitor="v1", session="w1", path="/pricing", country="DE"),
        web_event("page_view", now - 90 * seconds, visitor="v1", session="w1", path="/docs", country="DE"),
        web_event("page_view", now - 2 * MINUTE, visitor="v2", session="w2", path="/pricing"),
        web_event("page_view", now - 10 * MINUTE, visitor="v3", session="w3", path="/old"),
        # one MCP session active in the window, one 40 minutes ago (outside the 30-minute series too)
        mcp_call("m1", "search", now - 3 * MINUTE, 10.0),
        mcp_call("m1", "book_demo", now - 30 * seconds, 30.0, success=False, error_type="ValueError"),
        mcp_call("m2", "search", now - 40 * MINUTE, 5.0),
        # another gateway's visitor, a minute ago
        web_event("page_view", now - MINUTE, visitor="a1", session="a1s", path="/acme", gateway_id="acme"),
    ]
    sessions = [
        mcp_session("m1", now - 3 * MINUTE, client="cursor 1.0", country="FR"),
        mcp_session("m2", now - 40 * MINUTE),
    ]
    await seed(app, sessions=sessions, events=events)

    response = await http.get("/live", headers=await read_headers(http))

    assert response.status_code == 200, response.text
    body = response.json()
    # In the window (5 min): w1 (2 events), w2 (1), m1 (2) = 5 events; visitors v1, v2; sessions w1, w2, m1.
    assert (body["gateway_id"], body["window_seconds"], body["events"]) == (DEMO, 300, 5)
    assert (body["active_visitors"], body["active_web_sessions"], body["active_mcp_sessions"]) == (2, 2, 1)
    assert body["active_sessions"] == 3
    # /pricing: v1 and v2 (2 visitors, 2 events); /docs: v1 only.
    assert body["top_pages"] == [
        {"path": "/pricing", "visitors": 2, "events": 2},
        {"path": "/docs", "visitors": 1, "events": 1},
    ]
    # One call each; equal counts go by type, then name.
    assert body["top_tools"] == [
        {"primitive_type": "tool", "name": "book_demo", "calls": 1, "errors": 1, "avg_latency_ms": 30.0},
        {"primitive_type": "tool", "name": "search", "calls": 1, "errors": 0, "avg_latency_ms": 10.0},
    ]
    # Most recently seen first: m1 (30 s ago), w1 (90 s), w2 (2 min).
    m1, w1, w2 = body["sessions"]
    assert m1 == {
        "session_id": "m1",
        "source": "mcp",
        "visitor_id": None,
        "client": "cursor 1.0",
        "current_page": None,
        "last_tool": "book_demo",
        "events": 2,
        "last_seen": now - 30 * seconds,
        "country": "FR",
    }
    assert (w1["source"], w1["visitor_id"], w1["client"], w1["current_page"], w1["last_tool"]) == (
        "web",
        "v1",
        None,
        "/docs",
        None,
    )
    assert (w1["events"], w1["last_seen"], w1["country"]) == (2, now - 90 * seconds, "DE")
    assert (w2["session_id"], w2["current_page"], w2["events"]) == ("w2", "/pricing", 1)
    # Per minute over 30 minutes: every demo event but m2's (40 min ago), each in its own minute.
    series = body["events_per_minute"]
    asked_at = body["now"]
    first_minute = asked_at - asked_at % MINUTE - 29 * MINUTE
    assert [point["minute"] for point in series] == [first_minute + i * MINUTE for i in range(30)]
    demo_times = [e.ts_ms for e in events if e.gateway_id == DEMO and e.ts_ms >= first_minute]
    expected = collections.Counter(ts - ts % MINUTE for ts in demo_times)
    assert {p["minute"]: p["events"] for p in series if p["events"]} == dict(expected)
    assert sum(p["events"] for p in series) == 6


async def test_a_shorter_window_counts_only_what_is_in_it(app: Starlette, http: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    await seed(
        app,
        sessions=[mcp_session("m1", now - 3 * MINUTE)],
        events=[
            web_event("page_view", now - 2 * MINUTE, visitor="v1", session="w1", path="/pricing"),
            mcp_call("m1", "search", now - 20_000, 4.0),
        ],
    )

    response = await http.get("/live", params={"window": "60", "limit": "1"}, headers=await read_headers(http))

    body = response.json()
    # Only the call 20 s ago is in the last 60 s.
    assert (body["events"], body["active_visitors"], body["active_mcp_sessions"], body["top_pages"]) == (1, 0, 1, [])
    assert [s["session_id"] for s in body["sessions"]] == ["m1"]


async def test_live_of_another_gateway_sees_none_of_these_events(app: Starlette, http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    now = int(time.time() * 1000)
    await seed(app, events=[web_event("page_view", now - MINUTE, visitor="v1", session="w1", path="/pricing")])

    response = await http.get("/live", headers=await read_headers(http, "acme"))

    body = response.json()
    assert (body["gateway_id"], body["events"], body["active_sessions"]) == ("acme", 0, 0)
    assert (body["sessions"], body["top_pages"], sum(p["events"] for p in body["events_per_minute"])) == ([], [], 0)


@pytest.mark.parametrize("kind", [None, "org", "sk"])
async def test_live_without_a_read_key_is_401(http: httpx.AsyncClient, kind: str | None) -> None:
    headers = {} if kind is None else {"X-API-Key": await create_key(http, DEMO, kind)}

    response = await http.get("/live", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "5"}, "window"),
        ({"window": "3601"}, "window"),
        ({"window": "soon"}, "window"),
        ({"limit": "0"}, "limit"),
    ],
)
async def test_live_bad_parameters_are_400_naming_them(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/live", params=params, headers=await read_headers(http))

    assert response.status_code == 400
    assert response.json()["field"] == field


# -- GET /stream over a real socket -------------------------------------------------------------------


class Stream:
    def __init__(self, messages: AsyncGenerator[SseMessage]) -> None:
        self._messages = messages

    async def next(self) -> SseMessage:
        with anyio.fail_after(WAIT):
            return await anext(self._messages)


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    """An open `GET /stream`: by the time this yields, the server has subscribed it to the feed."""
    async with client.stream("GET", "/stream", params=params, headers=headers) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        async with contextlib.aclosing(sse_messages(response)) as messages:
            yield Stream(messages)


async def capture_calls(client: httpx.AsyncClient, org: str, *calls: tuple[str, str]) -> None:
    """Store MCP calls `(primitive_type, name)` of one session, in order, through the ingestion API."""
    session = {"session_id": SESSION, "client_config": "claude-desktop 1.0"}
    events = [
        {
            "session_id": SESSION,
            "primitive_type": kind,
            "primitive_name": name,
            "latency": 12.5,
            "success": True,
            "args": {"q": name},
            "event_id": uuid.uuid4().hex,
        }
        for kind, name in calls
    ]
    response = await client.post(
        "/api/v1/capture-batch", json={"sessions": [session], "events": events}, headers={"X-Org-Id": org}
    )
    assert response.status_code == 200, response.text


async def track_page(client: httpx.AsyncClient, name: str, path: str, gateway_id: str = DEMO) -> None:
    """Store a web event on `path` through seed 001's `POST /track/events/batch` (which, unlike `/track/event`, needs
    no session started first, so the stream sees this one event)."""
    event = {"event_name": name, "url": f"https://shop.test{path}"}
    body = {"session_id": "web-1", "visitor_id": "visitor-1", "events": [event]}
    response = await client.post("/track/events/batch", json=body, headers={"X-Gateway-ID": gateway_id})
    assert response.status_code == 200, response.text


async def test_stream_sends_each_event_stored_after_it_opened(live_http: httpx.AsyncClient) -> None:
    org, read = await create_key(live_http, DEMO, "org"), await create_key(live_http, DEMO, "read")
    await capture_calls(live_http, org, ("tool", "before"))

    async with stream(live_http, params={"api_key": read}) as events:
        await capture_calls(live_http, org, ("tool", "search"))
        await track_page(live_http, "PageView", "/pricing")
        call, page = await events.next(), await events.next()

    assert call.event == "message"
    assert call.id == str(call.json()["seq"])
    data = call.json()
    assert (data["name"], data["source"], data["primitive_type"], data["operation"]) == (
        "search",
        "mcp",
        "tool",
        "call",
    )
    assert (data["session_id"], data["latency_ms"], data["success"], data["args"]) == (
        SESSION,
        12.5,
        True,
        {"q": "search"},
    )
    assert page.json()["name"] == "PageView"
    assert (page.json()["source"], page.json()["path"], page.json()["visitor_id"]) == (
        "web",
        "/pricing",
        sha256_hex("visitor-1"),
    )
    assert int(page.id or 0) > int(call.id or 0)
    assert not {"ip_hash", "email_hash", "user_id_hash"} & set(page.json())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"primitive": "tool"}, ("mcp", "tool", "book_demo")),
        ({"event": "search"}, ("mcp", "prompt", "search")),
        ({"primitive": "tool", "event": "search"}, ("mcp", "tool", "search")),
        ({"source": "web"}, ("web", None, "search")),
        ({"source": "web", "event": "PageView"}, ("web", None, "PageView")),
    ],
)
async def test_stream_sends_only_events_that_match_its_filters(
    live_http: httpx.AsyncClient, params: dict[str, str], expected: tuple[str, str | None, str]
) -> None:
    org, read = await create_key(live_http, DEMO, "org"), await create_key(live_http, DEMO, "read")

    async with stream(live_http, params=params, headers={"X-API-Key": read}) as events:
        # Stored in this order; the first that matches must be the first to arrive.
        await capture_calls(live_http, org, ("resource", "docs://primary"), ("prompt", "search"), ("tool", "book_demo"))
        await track_page(live_http, "search", "/search")
        await capture_calls(live_http, org, ("tool", "search"))
        await track_page(live_http, "PageView", "/pricing")
        first = (await events.next()).json()

    assert (first["source"], first["primitive_type"], first["name"]) == expected


async def test_last_event_id_resumes_after_that_event(live_http: httpx.AsyncClient) -> None:
    org, read = await create_key(live_http, DEMO, "org"), await create_key(live_http, DEMO, "read")
    headers = {"Authorization": f"Bearer {read}"}
    async with stream(live_http, headers=headers) as events:
        await capture_calls(live_http, org, ("tool", "one"), ("tool", "two"), ("tool", "three"))
        one = await events.next()
    await capture_calls(live_http, org, ("tool", "four"))  # while disconnected

    assert one.id is not None
    async with stream(live_http, headers={**headers, "Last-Event-ID": one.id}) as events:
        replayed = [(await events.next()).json()["name"] for _ in range(3)]
        await capture_calls(live_http, org, ("tool", "five"))
        live_one = (await events.next()).json()["name"]

    assert one.json()["name"] == "one"
    assert replayed == ["two", "three", "four"]
    assert live_one == "five"


async def test_a_read_key_streams_only_its_own_gateways_events(live_http: httpx.AsyncClient) -> None:
    await admin_json(live_http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    demo_org = await create_key(live_http, DEMO, "org")
    acme_read = await create_key(live_http, "acme", "read")

    async with stream(live_http, params={"api_key": acme_read}) as events:
        await capture_calls(live_http, demo_org, ("tool", "search"))
        await track_page(live_http, "PageView", "/pricing")
        await track_page(live_http, "PageView", "/acme", gateway_id="acme")
        first = (await events.next()).json()

    assert (first["name"], first["path"]) == ("PageView", "/acme")


async def test_more_streams_than_a_key_may_hold_get_429(live_http: httpx.AsyncClient) -> None:
    read = await create_key(live_http, DEMO, "read")
    async with contextlib.AsyncExitStack() as open_streams:
        for _ in range(live.MAX_STREAMS_PER_KEY):
            await open_streams.enter_async_context(stream(live_http, params={"api_key": read}))

        response = await live_http.get("/stream", params={"api_key": read})

        assert response.status_code == 429
        assert response.headers["retry-after"] == str(live.STREAM_RETRY_AFTER_SECONDS)
    # Closed streams free their places, as soon as the server has seen them close.
    with anyio.fail_after(WAIT):
        while await _stream_status(live_http, read) == 429:
            await anyio.sleep(0.05)


async def _stream_status(client: httpx.AsyncClient, read_key: str) -> int:
    """The status `GET /stream` answers, without reading the stream."""
    async with client.stream("GET", "/stream", params={"api_key": read_key}) as response:
        return response.status_code


# -- GET /stream refusals (answered before any streaming, so in-process) ---------------------------


@pytest.mark.parametrize("kind", [None, "org", "pk"])
async def test_stream_without_a_read_key_is_401(http: httpx.AsyncClient, kind: str | None) -> None:
    params = {} if kind is None else {"api_key": await create_key(http, DEMO, kind)}

    response = await http.get("/stream", params=params)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"source": "email"}, {}, "source"),
        ({"primitive": "widget"}, {}, "primitive"),
        ({"event": ""}, {}, "event"),
        ({"last_event_id": "-1"}, {}, "last_event_id"),
        ({}, {"Last-Event-ID": "yesterday"}, "Last-Event-ID"),
    ],
)
async def test_stream_bad_parameters_are_400_naming_them(
    http: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    response = await http.get("/stream", params=params, headers={**headers, **await read_headers(http)})

    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_openapi_documents_the_stream_and_the_snapshot(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]

    assert "text/event-stream" in paths["/stream"]["get"]["responses"]["200"]["content"]
    assert {p["name"] for p in paths["/stream"]["get"]["parameters"]} >= {"event", "primitive", "source"}
    assert {p["name"] for p in paths["/live"]["get"]["parameters"]} == {"window", "limit", "gateway"}


# -- the feed itself ---------------------------------------------------------------------------------


async def _drain(receive: MemoryObjectReceiveStream[FeedItem]) -> list[str]:
    """Every item until the subscription's queue is closed."""
    with anyio.fail_after(WAIT), receive:
        return [item.name async for item in receive]


async def test_a_subscriber_that_falls_behind_is_cut_off_without_holding_up_others(app: Starlette) -> None:
    feed = LiveFeed(store_of(app), interval=0.01, queue_size=2)
    now = int(time.time() * 1000)
    async with feed.run():
        slow = await feed.subscribe(DEMO, StreamArgs())
        other = await feed.subscribe(DEMO, StreamArgs(event="e2"))
        await seed(app, events=[web_event(f"e{i}", now, visitor="v") for i in range(3)])

        with anyio.fail_after(WAIT):
            assert (await other.receive.receive()).name == "e2"

        # Nobody read the slow one: its queue held two, and the third event (offered to both at once) closed it.
        assert slow.overflowed
        assert await _drain(slow.receive) == ["e0", "e1"]
        feed.unsubscribe(slow)
    assert not other.overflowed
    assert await _drain(other.receive) == []  # the feed stopped, which ended this stream


async def test_a_resume_further_back_than_the_replay_limit_says_what_it_skipped(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_REPLAY", 2)
    now = int(time.time() * 1000)
    await seed(app, events=[web_event(f"e{i}", now, visitor="v") for i in range(4)])
    feed = LiveFeed(store_of(app), page=1)
    async with feed.run():
        subscription = await feed.subscribe(DEMO, StreamArgs())
        messages = [message async for message in feed.replay(subscription, 0)]
        feed.unsubscribe(subscription)

    first, second, gap = messages
    assert [json.loads(str(m.data))["name"] for m in (first, second)] == ["e0", "e1"]
    assert (gap.event, gap.id) == ("gap", str(subscription.start_seq))
    assert json.loads(str(gap.data)) == {"after": int(second.id or 0), "resumed_after": subscription.start_seq}
