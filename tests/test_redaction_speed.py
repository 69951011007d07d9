"""Redaction is linear in its input, and one big anonymous request never stalls the server.

The email pattern used to backtrack on a long run of letters without `@`: 200 KB held the event
loop 39 s. These tests feed ~1 MB adversarial strings to every scan, then to a real server
(`mcp-gateway serve` in its own process), and bound the times loosely: a regression to quadratic
time takes minutes, not a second. The figures are in `bench/redaction.py`.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Final

import anyio
import httpx
import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp_gateway_tracking import LocalSink, track_mcp
from mcp_gateway_tracking.privacy import Redactor, redact_text

from .support import ADMIN_HEADERS, gateway_process, jsonrpc_request
from .tracking.helpers import Recorder

MEGABYTE: Final = 1_000_000

ADVERSARIAL: Final[dict[str, str]] = {
    "run without @": "a" * MEGABYTE,
    "run of dotted local parts": "a." * (MEGABYTE // 2),
    "many @": "a@" * (MEGABYTE // 2),
    "long dotted domain": "a@" + "b." * (MEGABYTE // 2),
    "runs between @": ("a" * 999 + "@") * (MEGABYTE // 1000),
    "digit run": "1" * MEGABYTE,
    "spaced digits": "1 " * (MEGABYTE // 2),
    "dashed digit groups": "12-" * (MEGABYTE // 3),
    "plus and digits": "+12345678901234567890 " * (MEGABYTE // 22),
    "parentheses": "(1)" * (MEGABYTE // 3),
    "phones": "+44 20 7946 0958 " * (MEGABYTE // 17),
    "emails": "ada@example.com " * (MEGABYTE // 16),
    "query string": "https://example.com/?email=a&q=b" * (MEGABYTE // 32),
}
"""~1 MB strings built to make a backtracking scan slow: long runs, many starting points, digit groups."""

SCAN_BOUND: Final = 1.0
"""Seconds one megabyte may take to redact (about 0.1 s on one core; quadratic would be minutes)."""

REQUEST_BOUND: Final = 1.0
"""Seconds a 1 MB adversarial request may take to be answered."""

HEALTH_BOUND: Final = 0.1
"""Seconds `/health` may take while such a request is being handled: every probe but an odd one (a garbage
collection pause, or the machine's other load, may catch one; a stalled event loop fails them all), and
that one under `5 * HEALTH_BOUND`."""


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_megabyte_of_adversarial_text_is_redacted_in_linear_time(text: str) -> None:
    redactor = Redactor()
    started = time.perf_counter()
    redact_text(text)
    redactor.redact({"note": text, "items": [text[:1000]] * 100})
    redactor.redact_url("https://example.com/?q=" + text[: MEGABYTE // 2])
    assert time.perf_counter() - started < 3 * SCAN_BOUND


def _adversarial_arguments(budget: int) -> dict[str, str]:
    """Arguments of about `budget` characters in all, a slice of each adversarial string."""
    share = budget // len(ADVERSARIAL)
    return {f"a{index}": text[:share] for index, text in enumerate(ADVERSARIAL.values())}


def _bodies(org_key: str, budget: int) -> list[tuple[str, dict[str, str], bytes]]:
    """One adversarial request of about `budget` characters per route that redacts what it is sent."""
    arguments = _adversarial_arguments(budget)
    session_id = str(uuid.uuid4())
    json_headers = {"Content-Type": "application/json"}
    call = jsonrpc_request("tools/call", {"name": "book_demo", "arguments": arguments})
    read = jsonrpc_request("resources/read", {"uri": "docs://x/" + ADVERSARIAL["many @"][:budget]})
    event = {"session_id": "s1", "event_name": "big", "properties": arguments}
    org = {**json_headers, "X-Org-Id": org_key}
    capture = {
        "session_id": session_id,
        "primitive_type": "tool",
        "primitive_name": "t",
        "latency": 1,
        "success": True,
        "args": json.dumps(arguments),
    }
    session = {"session_id": session_id, "client_config": "c"}
    return [
        ("/v1/mcp/sse?gid=demo", json_headers, json.dumps(call).encode()),
        ("/v1/mcp/sse?gid=demo", json_headers, json.dumps(read).encode()),
        ("/track/event?gid=demo", json_headers, json.dumps(event).encode()),
        ("/api/v1/capture-session", org, json.dumps(session).encode()),
        ("/api/v1/capture-event", org, json.dumps(capture).encode()),
    ]


async def _timed_post(http: httpx.AsyncClient, path: str, headers: dict[str, str], body: bytes) -> float:
    started = time.perf_counter()
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text[:300]
    return time.perf_counter() - started


async def _post_while_polling_health(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], body: bytes
) -> tuple[float, list[float]]:
    """How long the POST took, and how long each `/health` asked meanwhile took."""
    health: list[float] = []
    finished = anyio.Event()

    async def poll_health() -> None:
        while not finished.is_set():
            started = time.perf_counter()
            assert (await http.get("/health")).status_code == 200
            health.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(poll_health)
        try:
            took = await _timed_post(http, path, headers, body)
        finally:
            finished.set()
    return took, health


async def test_a_megabyte_adversarial_request_is_answered_fast_and_health_stays_fast(tmp_path: Path) -> None:
    async with gateway_process(tmp_path / "gateway.db") as (_, base_url):
        async with httpx.AsyncClient(base_url=base_url, timeout=5 * REQUEST_BOUND) as http:
            made = await http.post("/v1/gateways/demo/keys", headers=ADMIN_HEADERS, json={"kind": "org"})
            org_key = made.json()["key"]
            for path, headers, body in _bodies(org_key, 1000):  # first uses (the user-agent parser loads) done
                await _timed_post(http, path, headers, body)
            for path, headers, body in _bodies(org_key, 900_000):
                assert len(body) < 1024 * 1024  # under the body limit: the route reads it all
                took, health = await _post_while_polling_health(http, path, headers, body)
                assert took < REQUEST_BOUND, (path, took)
                slow = [seconds for seconds in health if seconds >= HEALTH_BOUND]
                assert health and len(slow) <= max(1, len(health) // 10), (path, sorted(health)[-3:])
                assert max(health) < 5 * HEALTH_BOUND, (path, sorted(health)[-3:])


async def test_a_server_wrapped_with_track_mcp_records_a_megabyte_adversarial_argument_fast() -> None:
    recorder = Recorder()
    server = MCPServer("echo")

    @server.tool()
    def echo(text: str) -> str:
        return text[:10]

    tracker = track_mcp(server, "org-1", sink=LocalSink(recorder, batch_size=10, flush_interval=5))
    text = ADVERSARIAL["run without @"][: MEGABYTE // 2] + ADVERSARIAL["many @"][: MEGABYTE // 2]
    async with Client(server) as client:
        started = time.perf_counter()
        assert not (await client.call_tool("echo", {"text": text})).is_error
        took = time.perf_counter() - started
    assert await tracker.flush(5)
    await tracker.aclose()
    assert took < REQUEST_BOUND
    [event] = [event for event in recorder.events if event.primitive_name == "echo"]
    assert event.args is not None and "truncated" in event.args and "a@a" not in event.args
