"""Who may ask, over a real socket: seed 002's `?token=` and `project`, an unknown key told so, and seed 000's
dashboard API limit (1000 requests a minute per key) on the analytics and admin APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from mcp_gateway import Settings, create_app
from mcp_gateway.accounts.access import READ_KEY_COOKIE

from .support import ADMIN_HEADERS, DEMO, LiveServer, admin_json, create_key, serve_in_thread

WINDOW = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}
"""A fixed window, so two answers to one question are equal."""


async def revoke(http: httpx.AsyncClient, key: str) -> None:
    [record] = [
        k for k in (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys"))["keys"] if key.startswith(k["prefix"])
    ]
    await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{record['id']}")


@pytest.fixture
async def read_key(live_http: httpx.AsyncClient) -> str:
    return await create_key(live_http, DEMO, "read")


# -- which key ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["never-created", "revoked", "not-a-read-key"])
async def test_an_unknown_or_revoked_key_is_told_so_not_that_a_key_is_required(
    live_http: httpx.AsyncClient, case: str
) -> None:
    if case == "never-created":
        key = "rk_nobody-made-this-key-0123456789"
    else:
        key = await create_key(live_http, DEMO, "read" if case == "revoked" else "pk")
        if case == "revoked":
            await revoke(live_http, key)

    refused = await live_http.get("/stats", params=WINDOW, headers={"Authorization": f"Bearer {key}"})
    missing = await live_http.get("/stats", params=WINDOW)

    assert refused.status_code == 401 and missing.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    error = refused.json()["error"].lower()
    assert ("unknown or revoked" in error) if case != "not-a-read-key" else ("not a read key" in error)
    assert "required" not in error
    assert "required" in missing.json()["error"]


async def test_seed_002s_token_in_the_query_reads_as_the_header_does(
    live_http: httpx.AsyncClient, read_key: str
) -> None:
    by_query = await live_http.get("/events", params={**WINDOW, "token": read_key})
    by_header = await live_http.get("/events", params=WINDOW, headers={"X-API-Key": read_key})
    stats = await live_http.get("/stats", params={**WINDOW, "token": read_key})

    assert by_query.status_code == 200, by_query.text
    assert by_query.json() == by_header.json()
    assert stats.status_code == 200, stats.text


# -- project -----------------------------------------------------------------------------------------


async def test_project_naming_the_keys_own_gateway_asks_about_it(live_http: httpx.AsyncClient, read_key: str) -> None:
    named = await live_http.get("/events", params={**WINDOW, "project": DEMO, "token": read_key})
    unnamed = await live_http.get("/events", params={**WINDOW, "token": read_key})
    funnel = await live_http.post(
        "/funnel", json={**WINDOW, "project": DEMO, "steps": ["page_view", "signup"]}, headers={"X-API-Key": read_key}
    )

    assert named.status_code == 200, named.text
    assert named.json() == unnamed.json()
    assert funnel.status_code == 200, funnel.text


@pytest.mark.parametrize(
    "request_args",
    [
        {"method": "GET", "url": "/events", "params": {**WINDOW, "project": "acme"}},
        {"method": "GET", "url": "/stats", "params": {"project": "acme"}},
        {"method": "POST", "url": "/funnel", "json": {"project": "acme", "steps": ["page_view", "signup"]}},
        {"method": "POST", "url": "/query?project=acme", "json": {}},
        {"method": "GET", "url": "/stream", "params": {"project": "acme"}},
        {"method": "GET", "url": "/events", "params": {"project": "no-such-gateway"}},
    ],
    ids=["events", "stats", "funnel-body", "query-string-of-a-post", "stream", "unknown-project"],
)
async def test_project_naming_a_gateway_the_key_may_not_read_is_403(
    live_http: httpx.AsyncClient, read_key: str, request_args: dict[str, Any]
) -> None:
    await admin_json(live_http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})

    refused = await live_http.request(**request_args, headers={"X-API-Key": read_key})

    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == "project"


async def test_the_leads_project_filter_stays_the_forms_project(live_http: httpx.AsyncClient, read_key: str) -> None:
    answer = await live_http.get("/analytics/leads", params={"project": "spring-campaign", "token": read_key})

    assert answer.status_code == 200, answer.text
    assert answer.json()["leads"] == []


# -- the dashboard API limit -------------------------------------------------------------------------


def test_the_default_limit_is_seed_000s_1000_a_minute() -> None:
    assert Settings().api_rate_limit == 1000


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[LiveServer]:
    with serve_in_thread(create_app(settings.model_copy(update={"api_rate_limit": 3})), settings.db_path) as server:
        yield server


@pytest.fixture
async def limited_http(limited_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited_server.base_url) as client:
        yield client


def assert_seed_000s_429(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body == {
        "error": f"Rate limit exceeded. Maximum {limit} requests per minute.",
        "retry_after": body["retry_after"],
    }
    assert 1 <= body["retry_after"] <= 60
    assert response.headers["retry-after"] == str(body["retry_after"])
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == str(body["retry_after"])


async def test_a_read_key_past_its_limit_gets_429_and_another_key_does_not(limited_http: httpx.AsyncClient) -> None:
    first = await create_key(limited_http, DEMO, "read")
    second = await create_key(limited_http, DEMO, "read")

    answers = [await limited_http.get("/stats", params={**WINDOW, "token": first}) for _ in range(4)]
    other = await limited_http.get("/stats", params={**WINDOW, "token": second})

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert_seed_000s_429(answers[3], 3)
    assert other.status_code == 200


async def test_the_dashboards_pages_count_against_the_keys_limit(limited_http: httpx.AsyncClient) -> None:
    key = await create_key(limited_http, DEMO, "read")
    limited_http.cookies.set(READ_KEY_COOKIE, key)

    page = await limited_http.get("/dashboard")
    card = await limited_http.get("/dashboard/sections/overview")
    api = await limited_http.get("/stats", params={**WINDOW, "token": key})
    past_page = await limited_http.get("/dashboard")
    past_card = await limited_http.get("/dashboard/sections/overview")

    assert [page.status_code, card.status_code, api.status_code] == [200, 200, 200]
    assert [page.headers["x-ratelimit-remaining"], card.headers["x-ratelimit-remaining"]] == ["2", "1"]
    assert_seed_000s_429(past_card, 3)  # a card is fetched by a script: the API's JSON answer
    assert past_page.status_code == 429  # the page is for a person: HTML saying so, with the same headers
    assert past_page.headers["content-type"].startswith("text/html")
    assert "Rate limit exceeded" in past_page.text
    assert past_page.headers["retry-after"] == past_card.headers["retry-after"]
    assert past_page.headers["x-ratelimit-remaining"] == "0"


async def test_the_admin_api_past_its_limit_gets_429(limited_http: httpx.AsyncClient) -> None:
    answers = [await limited_http.get("/v1/gateways", headers=ADMIN_HEADERS) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit"] == "3"
    assert_seed_000s_429(answers[3], 3)


async def test_the_analytics_mcp_endpoint_counts_against_the_same_limit(limited_http: httpx.AsyncClient) -> None:
    key = await create_key(limited_http, DEMO, "read")
    headers = {"X-API-Key": key, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    rest = [await limited_http.get("/stats", params={**WINDOW, "token": key}) for _ in range(2)]
    mcp = [await limited_http.post("/analytics/mcp", json=ping, headers=headers) for _ in range(2)]

    assert [a.status_code for a in rest] == [200, 200]
    assert mcp[0].status_code == 200, mcp[0].text
    assert_seed_000s_429(mcp[1], 3)


async def test_the_analytics_mcp_endpoint_tells_an_unknown_key_so(live_http: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": "rk_nobody-made-this-key-0123456789", "Accept": "application/json, text/event-stream"}

    refused = await live_http.post(
        "/analytics/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers
    )

    assert refused.status_code == 401
    assert "unknown or revoked" in refused.json()["error"].lower()
