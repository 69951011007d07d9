"""A tracked stdio server whose backend is down, slow or answering 500: every answer arrives, stdout carries
JSON-RPC and nothing else, the process exits cleanly, and what it captured waits in the spool for the backend.

The server runs as a real subprocess and is spoken to over raw pipes, so that any stray byte on its stdout (a
print, a log line, a traceback) is seen here rather than skipped by a client.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.types.version import LATEST_HANDSHAKE_VERSION
from mcp_gateway_tracking import HttpSink

from .backend import FakeBackend

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BACKEND_TIMEOUT: Final = "0.2"
"""Seconds the server's sink waits for one backend request: well under the slow backend's answer."""
DEADLINE: Final = 30.0
MAX_LINE: Final = 1_000_000

Failure = Literal["down", "slow", "error"]


async def request(process: Process, reader: BufferedByteReceiveStream, message: dict[str, Any]) -> dict[str, Any]:
    """Send one JSON-RPC request and read the next stdout line, which must be its response."""
    assert process.stdin is not None
    await process.stdin.send(json.dumps(message).encode() + b"\n")
    line = await reader.receive_until(b"\n", MAX_LINE)
    response: dict[str, Any] = json.loads(line)
    assert response.get("jsonrpc") == "2.0" and response.get("id") == message["id"], line
    return response


@pytest.mark.parametrize("failure", ["down", "slow", "error"])
async def test_a_stdio_server_answers_everything_and_writes_only_json_rpc_when_the_backend_fails(
    failure: Failure, tmp_path: Path
) -> None:
    backend = FakeBackend()
    if failure != "down":
        backend.mode = failure
        await backend.start()
    spool = tmp_path / "spool"
    command = [sys.executable, "-m", "tests.tracking.stdio_server", backend.url, str(spool), BACKEND_TIMEOUT]
    try:
        with anyio.fail_after(DEADLINE):
            async with await anyio.open_process(command, cwd=REPO_ROOT, env=dict(os.environ)) as process:
                assert process.stdout is not None and process.stderr is not None and process.stdin is not None
                reader = BufferedByteReceiveStream(process.stdout)
                initialize = {
                    "protocolVersion": LATEST_HANDSHAKE_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "failure-tests", "version": "1.0"},
                }
                response = await request(
                    process, reader, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize}
                )
                assert "result" in response
                await process.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
                for n in range(2, 5):
                    call = {"name": "add", "arguments": {"a": n, "b": 1}}
                    response = await request(
                        process, reader, {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": call}
                    )
                    assert response["result"]["structuredContent"] == {"result": n + 1}
                response = await request(process, reader, {"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
                assert [tool["name"] for tool in response["result"]["tools"]] == ["add", "sign_up", "refuse", "crash"]

                await process.stdin.aclose()
                assert await process.wait() == 0
                rest = b"".join([chunk async for chunk in reader])
                errors = b"".join([chunk async for chunk in process.stderr])
        assert rest == b"", f"stdout after the last answer: {rest!r}"
        assert b"Traceback" not in errors, errors.decode(errors="replace")

        # Nothing was lost: the next sink on the same spool delivers the session and every event.
        backend.mode = "up"
        if failure == "down":
            await backend.start()
        sink = HttpSink(backend.url, "org-next", spool_dir=spool)
        sink.start()
        assert await sink.flush(DEADLINE)
        await sink.aclose()
    finally:
        await backend.stop()
    [session] = backend.sessions.values()
    assert session.client_config == "failure-tests 1.0" and session.connection_type == "stdio"
    assert sorted(event.primitive_name for event in backend.events.values()) == ["add", "add", "add", "tools/list"]
    assert backend.orphans == 0
