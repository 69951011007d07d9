"""Connection hardening of `mcp-gateway serve` (`mcp_gateway.connections`), against a real server process on
loopback: slow clients are cut off once reading their request takes too long, one address cannot hold more than
its share of connections, and neither touches long-lived streams or other clients.

Timeouts are set small (half a second to a second); the bounds the tests wait within are loose.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from mcp_gateway import Settings
from mcp_gateway.cli import run
from mcp_gateway.connections import ConnectionLimits, GuardedH11Protocol, GuardedHttpToolsProtocol, use_limits

from .support import DEMO, HANDSHAKE, create_key, gateway_process, jsonrpc_request, sse_messages

CLOSE_BOUND: Final = 10.0
"""Longest a test waits for the server to close a connection it should close after a second or so."""

SLOW: Final = {"header_timeout_seconds": "1", "body_timeout_seconds": "1"}
"""Read deadlines of a second: what the tests of slow clients set."""

OTHER_CLIENT: Final = "127.0.0.2"
"""A second loopback address (all of 127/8 is loopback on Linux): a well-behaved client beside the one flooding."""

FLOODING_CLIENT: Final = "127.0.0.3"

PARTIAL_HEADERS: Final = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
STREAMABLE: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: Final = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


@contextlib.asynccontextmanager
async def served(tmp_path: Path, *flags: str, **settings: str) -> AsyncIterator[tuple[str, int]]:
    """`mcp-gateway serve` with `settings` (MCP_GATEWAY_* variables) and `flags`: its base URL and port."""
    async with gateway_process(tmp_path / "g.db", *flags, **settings) as (_, base_url):
        yield base_url, int(base_url.rsplit(":", 1)[1])


async def open_raw(port: int, local_host: str = "127.0.0.1") -> anyio.abc.SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port, local_host=local_host)


async def read_until_closed(stream: anyio.abc.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection; fails if that takes over `CLOSE_BOUND`."""
    received = bytearray()
    with anyio.fail_after(CLOSE_BOUND):
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return bytes(received)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer.split(b" ", 2)[1])


async def test_a_client_stalled_in_its_header_line_is_answered_408_and_closed(tmp_path: Path) -> None:
    async with served(tmp_path, **SLOW) as (_, port), await open_raw(port) as slow:
        await slow.send(PARTIAL_HEADERS)
        answer = await read_until_closed(slow)

    assert status_of(answer) == 408
    assert answer.endswith(b'{"error": "Request headers not received in time"}')


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    async with served(tmp_path, **SLOW) as (_, port), await open_raw(port) as silent:
        assert await read_until_closed(silent) == b""


async def test_the_next_request_on_a_kept_alive_connection_gets_the_header_timeout_too(tmp_path: Path) -> None:
    async with served(tmp_path, **SLOW) as (_, port), await open_raw(port) as client:
        await client.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = bytearray()
        with anyio.fail_after(CLOSE_BOUND):
            while not first.endswith(b"}"):  # the whole JSON answer of /health
                first += await client.receive()
        await client.send(PARTIAL_HEADERS)
        second = await read_until_closed(client)

    assert status_of(bytes(first)) == 200
    assert status_of(second) == 408


async def test_a_request_body_that_stalls_is_answered_408_and_closed(tmp_path: Path) -> None:
    head = (
        f"POST /v1/mcp/sse?gid={DEMO} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    async with served(tmp_path, **SLOW) as (_, port), await open_raw(port) as slow:
        await slow.send(head.encode() + b'{"jsonrpc": "2.0", ')
        answer = await read_until_closed(slow)

    assert status_of(answer) == 408
    assert answer.endswith(b'{"error": "Request body not received in time"}')


async def test_connections_beyond_the_per_ip_cap_are_refused_while_other_addresses_are_served(tmp_path: Path) -> None:
    cap = 3
    async with (
        served(tmp_path, max_connections_per_ip=str(cap)) as (base_url, port),
        contextlib.AsyncExitStack() as held,
    ):
        admitted = [await held.enter_async_context(await open_raw(port, FLOODING_CLIENT)) for _ in range(cap)]
        refused = [await held.enter_async_context(await open_raw(port, FLOODING_CLIENT)) for _ in range(2)]
        refusals = [await read_until_closed(stream) for stream in refused]
        transport = httpx.AsyncHTTPTransport(local_address=OTHER_CLIENT)
        async with httpx.AsyncClient(base_url=base_url, transport=transport) as other:
            health = await other.get("/health")
        for stream in admitted:  # the admitted connections still work; each closes after its answer
            await stream.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answers = [await read_until_closed(stream) for stream in admitted]
        async with await open_raw(port, FLOODING_CLIENT) as after:  # closing them freed the address's places
            await after.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer_after = await read_until_closed(after)

    assert [status_of(refusal) for refusal in refusals] == [429, 429]
    assert all(refusal.endswith(b'{"error": "Too many open connections from this address"}') for refusal in refusals)
    assert health.status_code == 200
    assert [status_of(answer) for answer in answers] == [200] * cap
    assert status_of(answer_after) == 200


async def test_beyond_the_total_cap_new_connections_are_answered_503(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections="2") as (_, port):
        await anyio.sleep(0.5)  # the server sees the startup health check's connection closed: it holds none
        async with (
            await open_raw(port) as first,
            await open_raw(port) as _second,
            await open_raw(port, OTHER_CLIENT) as third,
        ):
            refusal = await read_until_closed(third)
            await first.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = await read_until_closed(first)

    assert status_of(refusal) == 503
    assert refusal.endswith(b'{"error": "Too many open connections"}')
    assert status_of(answer) == 200


def test_the_per_client_cap_counts_ipv6_by_its_64_and_exempts_trusted_proxies() -> None:
    settings = Settings(trusted_proxies=("10.0.0.0/8",))
    limits = ConnectionLimits.from_settings(settings)

    assert limits.client_key("2001:db8:1:2::7") == limits.client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert limits.client_key("2001:db8:1:3::7") != limits.client_key("2001:db8:1:2::7")
    assert limits.client_key("192.0.2.1") == "192.0.2.1"
    assert limits.client_key("::ffff:192.0.2.1") == "192.0.2.1"  # an IPv4 client of a dual-stack socket
    assert limits.client_key("::ffff:10.0.0.1") is None
    assert limits.client_key("10.1.2.3") is None


async def test_long_lived_streams_outlive_the_read_timeouts(tmp_path: Path) -> None:
    """SSE, the analytics live stream and a Streamable HTTP GET stay open well past both deadlines: only reading a
    request is timed, not answering it."""
    deadlines = {"header_timeout_seconds": "0.5", "body_timeout_seconds": "0.5"}
    ended: dict[str, bool] = {}

    async def watch(name: str, response: httpx.Response) -> None:
        assert response.status_code == 200, name
        async for _ in response.aiter_raw():
            pass
        ended[name] = True

    async with (
        served(tmp_path, **deadlines) as (base_url, _),
        httpx.AsyncClient(base_url=base_url, timeout=CLOSE_BOUND) as http,
    ):
        read_key = await create_key(http, kind="read")
        initialized = await http.post(
            f"/mcp?gid={DEMO}", json=jsonrpc_request("initialize", INITIALIZE), headers=STREAMABLE
        )
        session = {"Mcp-Session-Id": initialized.headers["mcp-session-id"], "MCP-Protocol-Version": HANDSHAKE}
        async with (
            http.stream("GET", f"/v1/mcp/sse?gid={DEMO}") as sse,
            http.stream("GET", "/stream", params={"api_key": read_key}) as live,
            http.stream("GET", f"/mcp?gid={DEMO}", headers={**session, "Accept": "text/event-stream"}) as streamable,
            anyio.create_task_group() as tg,
        ):
            messages = sse_messages(sse)
            endpoint = await anext(messages)
            tg.start_soon(watch, "live", live)
            tg.start_soon(watch, "streamable", streamable)
            await anyio.sleep(2.5)  # five deadlines long

            posted = await http.post(endpoint.data, json=jsonrpc_request("ping", None, 7))
            with anyio.fail_after(CLOSE_BOUND):
                reply = (await anext(messages)).json()
            tg.cancel_scope.cancel()
            await messages.aclose()

    assert ended == {}
    assert posted.status_code == 202
    assert reply == {"jsonrpc": "2.0", "id": 7, "result": {}}


@pytest.mark.parametrize("backend", ["postgresql"])  # several workers need PostgreSQL
@pytest.mark.usefixtures("database_url")
async def test_serve_with_workers_applies_the_read_timeouts_in_every_worker(tmp_path: Path) -> None:
    async with served(tmp_path, "--workers", "2", **SLOW) as (_, port):
        streams = [await open_raw(port) for _ in range(4)]  # the kernel spreads them over both workers
        for stream in streams:
            await stream.send(PARTIAL_HEADERS)
        answers = [await read_until_closed(stream) for stream in streams]
        for stream in streams:
            await stream.aclose()

    assert [status_of(answer) for answer in answers] == [408] * 4


# -- both of uvicorn's HTTP/1.1 parsers, in a server of a small app ------------------------------------------


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers it back slowly in two parts: the answer outlives the deadlines."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await anyio.sleep(1.5)  # three deadlines long
    await send({"type": "http.response.body", "body": b"|done"})


@contextlib.contextmanager
def small_server(protocol: type[asyncio.Protocol]) -> Iterator[int]:
    """`echo_body` under uvicorn with `protocol` and deadlines of half a second, in a thread: its port."""
    use_limits(ConnectionLimits(header_timeout=0.5, body_timeout=0.5, max_per_client=100, max_total=1000))
    config = uvicorn.Config(echo_body, port=0, http=protocol, lifespan="off", log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + CLOSE_BOUND
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(CLOSE_BOUND)
        use_limits(ConnectionLimits.from_settings(Settings()))


@pytest.mark.parametrize("protocol", [GuardedHttpToolsProtocol, GuardedH11Protocol])
async def test_both_parsers_time_headers_and_body_but_not_the_answer(protocol: type[asyncio.Protocol]) -> None:
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    with small_server(protocol) as port:
        async with await open_raw(port) as headers, await open_raw(port) as body, await open_raw(port) as slow:
            await headers.send(PARTIAL_HEADERS)
            await body.send(post + b"12345")
            await slow.send(post + b"0123456789")
            stalled_headers, stalled_body, answered = [await read_until_closed(s) for s in (headers, body, slow)]

    assert status_of(stalled_headers) == 408
    assert status_of(stalled_body) == 408
    assert status_of(answered) == 200 and answered.endswith(b"0123456789\r\n5\r\n|done\r\n0\r\n\r\n")  # chunked


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--trusted-proxy", "not-an-address"], "--trusted-proxy"),
        (["--header-timeout", "0"], "--header-timeout"),
        (["--max-connections-per-ip", "0"], "--max-connections-per-ip"),
    ],
)
def test_bad_connection_settings_are_a_clear_error(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["serve", "--db", str(tmp_path / "g.db"), *flags]) == 1

    error = capsys.readouterr().err
    assert error.startswith(f"error: invalid {named}: ")  # the flag the bad value came from
    assert "Traceback" not in error
