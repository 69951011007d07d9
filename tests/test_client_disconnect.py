"""A client that goes away in the middle of its request body: an ordinary event, not a server error."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Final

import anyio
import httpx
import pytest

from .support import ADMIN_TOKEN, LiveServer, scrape, value

REQUESTS_TOTAL: Final = "mcp_gateway_http_requests_total"
WAIT_TIMEOUT: Final = 10.0

CUT_SHORT: Final = [
    ("/track", "/track?gid=demo"),
    ("/v1/mcp/sse", "/v1/mcp/sse?gid=demo"),
    ("/mcp", "/mcp?gid=demo"),
    ("/v1/gateways", "/v1/gateways"),
]
"""(route template, request target): routes whose body is read by us, by the SDK, by the admin API."""


@contextlib.contextmanager
def uvicorn_records_captured(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """uvicorn's loggers do not propagate to the root logger caplog listens on: listen on them too."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


async def send_half_a_body_and_hang_up(server: LiveServer, target: str) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head.encode() + b'{"jsonrpc": "2.0", "id": 1, "method": ')


@pytest.mark.parametrize(("route", "target"), CUT_SHORT, ids=[route for route, _ in CUT_SHORT])
async def test_a_client_hanging_up_mid_body_is_counted_499_and_logged_without_a_traceback(
    live_server: LiveServer, live_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, route: str, target: str
) -> None:
    with caplog.at_level(logging.DEBUG), uvicorn_records_captured(caplog):
        await send_half_a_body_and_hang_up(live_server, target)
        with anyio.fail_after(WAIT_TIMEOUT):  # the server notices the hang-up on its own time
            while not (scraped := await scrape(live_http)).get((REQUESTS_TOTAL, _labels(route, "499"))):
                await anyio.sleep(0.02)

    assert value(scraped, REQUESTS_TOTAL, route=route, method="POST", status="499") == 1
    assert value(scraped, REQUESTS_TOTAL, route=route, method="POST", status="500") == 0
    problems = [record for record in caplog.records if record.exc_info or record.levelno >= logging.WARNING]
    assert [record.getMessage() for record in problems] == []
    assert any("client closed the connection" in record.getMessage() for record in caplog.records)


def _labels(route: str, status: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"route": route, "method": "POST", "status": status}.items()))
