"""Several gateway processes on one PostgreSQL database: a client's requests may reach any of them.

Two real `mcp-gateway serve` processes on two ports stand for processes behind a load balancer, so each request
is aimed at the process the test chooses: an MCP session opened on one is used through the other (forwarded to
the process holding it), an event stored through one streams from the other, and one event id sent to both is
stored once. Then `serve --workers 2` shares one port between two processes the kernel hands connections to.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import psycopg
import pytest

from .support import (
    ADMIN_HEADERS,
    DEMO,
    HANDSHAKE,
    SseMessage,
    database_url,
    gateway_process,
    jsonrpc_request,
    scrape,
    sse_messages,
    stored_rows,
    value,
)

pytestmark = [
    pytest.mark.parametrize("backend", ["postgresql"]),  # SQLite is one process's database
    pytest.mark.usefixtures("database_url"),  # the processes use it: it is in their environment
]

WAIT: Final = 10.0
STREAMABLE: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: Final = {
    "protocolVersion": HANDSHAKE,
    "capabilities": {},
    "clientInfo": {"name": "workers-test", "version": "1.0"},
}
BOOKING: Final = {"name": "Ada", "email": "ada@example.com", "company": "Analytical Engines"}


@contextlib.asynccontextmanager
async def two_processes(tmp_path: Path, *flags: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two gateway processes on the test's PostgreSQL database (one new connection per request)."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with (
        gateway_process(tmp_path / "unused.db", *flags) as (_, first_url),
        gateway_process(tmp_path / "unused.db", *flags) as (_, second_url),
        httpx.AsyncClient(base_url=first_url, limits=no_reuse, timeout=WAIT) as first,
        httpx.AsyncClient(base_url=second_url, limits=no_reuse, timeout=WAIT) as second,
    ):
        yield first, second


def reply_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a Streamable HTTP answer (JSON, or one SSE `message` event)."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        body: dict[str, Any] = response.json()
        return body
    data = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    message: dict[str, Any] = json.loads(data[-1])
    return message


async def open_session(http: httpx.AsyncClient) -> dict[str, str]:
    """initialize + notifications/initialized over Streamable HTTP; the headers the session's requests carry."""
    response = await http.post(f"/mcp?gid={DEMO}", json=jsonrpc_request("initialize", INITIALIZE), headers=STREAMABLE)
    assert reply_of(response)["result"]["protocolVersion"] == HANDSHAKE
    session = {**STREAMABLE, "Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": HANDSHAKE}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(f"/mcp?gid={DEMO}", json=initialized, headers=session)).status_code == 202
    return session


async def test_a_streamable_http_session_opened_on_one_process_is_used_through_another(tmp_path: Path) -> None:
    async with two_processes(tmp_path) as (first, second):
        session = await open_session(first)

        listed = reply_of(
            await second.post(f"/mcp?gid={DEMO}", json=jsonrpc_request("tools/list", {}, 2), headers=session)
        )
        booked = reply_of(
            await second.post(
                f"/mcp?gid={DEMO}",
                json=jsonrpc_request("tools/call", {"name": "book_demo", "arguments": BOOKING}, 3),
                headers=session,
            )
        )
        ended = await second.delete(f"/mcp?gid={DEMO}", headers=session)
        after = await first.post(f"/mcp?gid={DEMO}", json=jsonrpc_request("tools/list", {}, 4), headers=session)
        leads = (await second.get(f"/v1/gateways/{DEMO}/leads", headers=ADMIN_HEADERS)).json()

    assert [tool["name"] for tool in listed["result"]["tools"]] == ["book_demo", "track_event"]
    assert not booked["result"].get("isError"), booked
    assert ended.status_code == 200
    assert after.status_code == 404  # the session ended where it lived
    assert [lead["email"] for lead in leads["leads"]] == ["ada@example.com"]


async def test_sse_messages_posted_to_another_process_reach_the_stream_of_the_session(tmp_path: Path) -> None:
    async with (
        two_processes(tmp_path) as (first, second),
        first.stream("GET", f"/v1/mcp/sse?gid={DEMO}") as stream,
    ):
        messages = sse_messages(stream)

        async def next_message() -> SseMessage:
            with anyio.fail_after(WAIT):
                return await anext(messages)

        endpoint = await next_message()
        assert endpoint.event == "endpoint"
        posted = await second.post(endpoint.data, json=jsonrpc_request("initialize", INITIALIZE, 1))
        initialized = (await next_message()).json()
        await second.post(endpoint.data, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        await second.post(endpoint.data, json=jsonrpc_request("tools/list", {}, 2))
        listed = (await next_message()).json()
        await messages.aclose()

    assert posted.status_code == 202
    assert initialized["id"] == 1 and initialized["result"]["protocolVersion"] == HANDSHAKE
    assert listed["id"] == 2 and [tool["name"] for tool in listed["result"]["tools"]] == ["book_demo", "track_event"]


async def test_a_session_whose_process_is_gone_is_unknown_everywhere(tmp_path: Path) -> None:
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with gateway_process(tmp_path / "unused.db") as (_, survivor_url):
        async with httpx.AsyncClient(base_url=survivor_url, limits=no_reuse, timeout=WAIT) as survivor:
            async with (
                gateway_process(tmp_path / "unused.db") as (doomed, doomed_url),
                httpx.AsyncClient(base_url=doomed_url, limits=no_reuse, timeout=WAIT) as http,
            ):
                session = await open_session(http)
                doomed.kill()
                await doomed.wait()
            answer = await survivor.post(f"/mcp?gid={DEMO}", json=jsonrpc_request("tools/list", {}, 2), headers=session)

    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")


async def test_an_event_stored_through_one_process_streams_from_the_other(tmp_path: Path) -> None:
    async with two_processes(tmp_path) as (first, second):
        keys = {}
        for kind in ("read", "sk"):
            created = await first.post(f"/v1/gateways/{DEMO}/keys", json={"kind": kind}, headers=ADMIN_HEADERS)
            keys[kind] = created.json()["key"]
        async with first.stream("GET", "/stream", headers={"X-API-Key": keys["read"]}) as stream:
            messages = sse_messages(stream)
            bearer = {"Authorization": f"Bearer {keys['sk']}"}
            stored = await second.post("/v1/track", json={"event": "moved", "event_id": "evt_moved"}, headers=bearer)
            with anyio.fail_after(WAIT):
                message = await anext(messages)
            await messages.aclose()

    assert stored.status_code == 202
    assert message.json()["name"] == "moved"


async def test_one_event_id_sent_to_both_processes_at_once_is_stored_once(tmp_path: Path) -> None:
    event_id = "evt_" + uuid.uuid4().hex
    async with two_processes(tmp_path) as (first, second):
        created = await first.post(f"/v1/gateways/{DEMO}/keys", json={"kind": "sk"}, headers=ADMIN_HEADERS)
        bearer = {"Authorization": f"Bearer {created.json()['key']}"}
        answers: list[httpx.Response] = []

        async def send(http: httpx.AsyncClient) -> None:
            answers.append(await http.post("/v1/track", json={"event": "paid", "event_id": event_id}, headers=bearer))

        async with anyio.create_task_group() as tg:
            for http in (first, second) * 5:
                tg.start_soon(send, http)

    assert [answer.status_code for answer in answers] == [202] * 10
    assert {answer.json()["event_id"] for answer in answers} == {event_id}
    assert stored_rows(tmp_path, "SELECT COUNT(*) AS n FROM events WHERE id = ?", event_id) == [{"n": 1}]


async def test_serve_with_two_workers_answers_every_request_of_every_session(tmp_path: Path) -> None:
    """`serve --workers 2`: connections go to either process; every session's every request is answered."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with (
        gateway_process(tmp_path / "unused.db", "--workers", "2") as (_, base_url),
        httpx.AsyncClient(base_url=base_url, limits=no_reuse, timeout=WAIT) as http,
    ):
        for index in range(6):
            session = await open_session(http)
            for request_id in range(2, 6):
                arguments = {**BOOKING, "email": f"person{index}@example.com"}
                call = jsonrpc_request("tools/call", {"name": "book_demo", "arguments": arguments}, request_id)
                assert not reply_of(await http.post(f"/mcp?gid={DEMO}", json=call, headers=session))["result"].get(
                    "isError"
                )
        leads = (await http.get(f"/v1/gateways/{DEMO}/leads", headers=ADMIN_HEADERS)).json()["leads"]

    assert sorted(lead["email"] for lead in leads) == [f"person{index}@example.com" for index in range(6)]


async def test_a_session_held_on_another_host_is_a_404_naming_that_host(tmp_path: Path) -> None:
    """Forwarding is between the processes of one host; a session another host holds gets an answer saying so."""
    session_id = uuid.uuid4().hex
    async with two_processes(tmp_path) as (first, _):
        url = database_url()
        assert url is not None
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO mcp_session_owners (session_id, owner, created_at_ms) VALUES (%s, %s, 0)",
                (session_id, "gateway-host-2|/tmp/mcp-gateway-x/1-abc.sock"),
            )
        headers = {**STREAMABLE, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE}
        answer = await first.post(f"/mcp?gid={DEMO}", json=jsonrpc_request("tools/list", {}, 2), headers=headers)

    assert answer.status_code == 404
    assert "gateway-host-2" in answer.json()["error"]


async def test_with_workers_any_scrape_of_metrics_counts_every_process(tmp_path: Path) -> None:
    """`serve --workers 2`: the processes keep their metrics in shared files, so whichever one a scrape reaches
    answers the totals: every request and every stored event, counted once."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with (
        gateway_process(tmp_path / "unused.db", "--workers", "2") as (_, base_url),
        httpx.AsyncClient(base_url=base_url, limits=no_reuse, timeout=WAIT) as http,
    ):
        created = await http.post(f"/v1/gateways/{DEMO}/keys", json={"kind": "sk"}, headers=ADMIN_HEADERS)
        bearer = {"Authorization": f"Bearer {created.json()['key']}"}
        before = await scrape(http)
        for index in range(20):
            answer = await http.post("/v1/track", json={"event": "paid", "event_id": f"evt_{index}"}, headers=bearer)
            assert answer.status_code == 202
        scrapes = [await scrape(http) for _ in range(6)]

    requests = {"route": "/v1/track", "method": "POST", "status": "202"}
    for scraped in scrapes:
        assert value(scraped, "mcp_gateway_http_requests_total", **requests) == 20
        assert value(scraped, "mcp_gateway_events_stored_total", source="server") == 20
        assert (
            value(scraped, "mcp_gateway_writer_transactions_total")
            >= value(before, "mcp_gateway_writer_transactions_total") + 1
        )
