"""Seed 003's `trackMCP` options under their own (camelCase) names, and the SDK's `agnost` logger.

The tracked server runs under uvicorn on a loopback socket, the SDK's client calls it, and the fake Agnost
backend on another socket receives what the tracker sends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import Implementation
from mcp_gateway_tracking import HttpSink, track_mcp
from mcp_gateway_tracking.sinks import DEFAULT_BATCH_SIZE

from ..support import MCP_TIMEOUT, serve_in_thread
from .backend import FakeBackend
from .demo_server import build_demo_server

NEVER: float = 3600.0
"""A flush interval no test outlives: a partial batch then leaves only when flushed, or when batching is off."""


async def call_add(url: str) -> None:
    with anyio.fail_after(MCP_TIMEOUT):
        async with Client(url, mode="legacy", client_info=Implementation(name="seed", version="1")) as client:
            assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3}


async def test_the_seeds_option_names_disable_input_output_and_request_queuing(
    backend: FakeBackend, tmp_path: Path
) -> None:
    server = build_demo_server()
    tracker = track_mcp(
        server,
        "org-seed",
        endpoint=backend.url,
        spool_dir=tmp_path / "spool",
        flush_interval=NEVER,
        identify=lambda request, env: {"userId": "u-1"},
        disableInput=True,
        disableOutput=True,
        enableRequestQueuing=False,
        maxRetries=5,
        retryDelay=20,
    )
    try:
        with serve_in_thread(server.streamable_http_app(), tmp_path / "unused.db") as live:
            await call_add(live.url("/mcp"))
            # No flush: with queuing off each item leaves as soon as it is captured.
            await backend.wait_for(lambda: len(backend.events_named("add")) == 1)
    finally:
        await tracker.aclose()

    [event] = backend.events_named("add")
    assert (event.args, event.result, event.success) == (None, None, True)
    [session] = backend.sessions.values()
    assert session.user_data == {"userId": "u-1"}
    assert isinstance(tracker.sink, HttpSink)
    assert (tracker.sink.settings.max_retries, tracker.sink.settings.retry_delay) == (5, 0.02)  # retryDelay is in ms


async def test_request_queuing_on_holds_a_partial_batch_until_it_is_flushed(
    backend: FakeBackend, tmp_path: Path
) -> None:
    server = build_demo_server()
    tracker = track_mcp(
        server, "org-seed", endpoint=backend.url, spool_dir=tmp_path / "spool", flush_interval=NEVER, batchSize=50
    )
    try:
        with serve_in_thread(server.streamable_http_app(), tmp_path / "unused.db") as live:
            await call_add(live.url("/mcp"))
            assert backend.events_named("add") == []  # queued: a batch of 50 waits for company
            assert await tracker.flush(10)
    finally:
        await tracker.aclose()
    [event] = backend.events_named("add")
    assert event.args is not None and '"a"' in event.args


def test_an_option_given_in_both_spellings_with_different_values_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size and batchSize"):
        track_mcp(build_demo_server(), "org", batch_size=10, batchSize=20)


def test_both_spellings_agreeing_and_the_python_default_are_fine() -> None:
    server = build_demo_server()
    tracker = track_mcp(server, "org", disable_input=True, disableInput=True, batch_size=DEFAULT_BATCH_SIZE)
    assert tracker.middleware._disable_input is True
    tracker.detach()


def test_an_unknown_option_name_is_a_type_error() -> None:
    options: dict[str, Any] = {"disableInputs": True}
    with pytest.raises(TypeError, match="disableInputs"):
        track_mcp(build_demo_server(), "org", **options)


async def test_the_sdk_logs_under_the_seeds_logger_name(
    backend: FakeBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agnost")  # the seed's `logging.getLogger("agnost").setLevel(DEBUG)`
    server = build_demo_server()
    tracker = track_mcp(
        server, "org-seed", endpoint=backend.url, spool_dir=tmp_path / "spool", enableRequestQueuing=False
    )
    try:
        with serve_in_thread(server.streamable_http_app(), tmp_path / "unused.db") as live:
            await call_add(live.url("/mcp"))
            await backend.wait_for(lambda: len(backend.events_named("add")) == 1)
    finally:
        await tracker.aclose()
    names = {record.name for record in caplog.records if record.name.startswith("agnost")}
    assert "agnost.http_sink" in names
    assert all(name == "agnost" or name.startswith("agnost.") for name in names)
