"""A 200 from the ingestion API means the event is on disk: it survives the server being SIGKILLed.

The real `mcp-gateway serve` runs as a subprocess; events are sent concurrently, more of them than
the test waits for, and the server is killed the moment the last awaited 200 arrives, with the
rest still in flight. Every acknowledged event must then be in the database exactly once.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

from mcp_gateway.cli import run

from .support import DEMO, database_url, gateway_process, stored_rows

pytestmark = pytest.mark.usefixtures("database_url")  # every test on SQLite and on PostgreSQL

ACKNOWLEDGED: Final = 200
"""Events whose 200 the test waits for before killing the server."""

IN_FLIGHT: Final = 60
"""Further events sent alongside, still in flight when the server dies."""

CONCURRENCY: Final = 50
"""Requests on the wire at once."""

RUN_TIMEOUT: Final = 30.0
"""Longest the whole exchange may take, from the first request to the server's death."""


async def create_org_key(db_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    argv = ["keys", "create", "--gateway", DEMO, "--kind", "org", "--db", str(db_path)]
    assert await anyio.to_thread.run_sync(run, argv) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("org_")
    return key


def stored_event_counts(db_path: Path) -> dict[str, int]:
    """Each stored event id with how many rows it has, after checking a SQLite file is intact."""
    if database_url() is None:
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = stored_rows(db_path, "SELECT id, COUNT(*) AS n FROM events WHERE gateway_id = ? GROUP BY id", DEMO)
    return {row["id"]: row["n"] for row in rows}


async def test_every_acknowledged_event_survives_a_sigkill_exactly_once(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await create_org_key(db_path, capsys)
    headers = {"X-Org-Id": key, "Content-Type": "application/json"}
    session_id = str(uuid.uuid4())
    event_ids = [f"evt_durable_{index:04d}" for index in range(ACKNOWLEDGED + IN_FLIGHT)]
    acknowledged: list[str] = []
    answered = 0

    async with gateway_process(db_path) as (process, base_url):
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=RUN_TIMEOUT) as http:
            opened = await http.post(
                "/api/v1/capture-session", json={"session_id": session_id, "client_config": "durability-test"}
            )
            assert opened.status_code == 200, opened.text

            async def send(event_id: str) -> None:
                nonlocal answered
                body = {
                    "session_id": session_id,
                    "primitive_type": "tool",
                    "primitive_name": "book_demo",
                    "latency": 12,
                    "success": True,
                    "event_id": event_id,
                }
                try:
                    response = await http.post("/api/v1/capture-event", json=body)
                except httpx.TransportError:
                    return  # cut off by the kill: not acknowledged
                answered += 1
                if response.status_code == 200:  # even one read after the kill was sent after its commit
                    assert response.json() == {"success": True, "event_id": event_id}
                    acknowledged.append(event_id)
                    if len(acknowledged) == ACKNOWLEDGED:
                        process.send_signal(signal.SIGKILL)  # at once: no await between the 200 and the kill

            with anyio.fail_after(RUN_TIMEOUT):
                async with anyio.create_task_group() as tg:
                    for event_id in event_ids:
                        tg.start_soon(send, event_id)
                await process.wait()

        assert process.returncode == -signal.SIGKILL

    stored = stored_event_counts(db_path)
    assert len(acknowledged) >= ACKNOWLEDGED
    assert {event_id: stored.get(event_id, 0) for event_id in acknowledged} == dict.fromkeys(acknowledged, 1)
    assert set(stored) <= set(event_ids)  # nothing else, and (by the counts) nothing twice
    assert set(stored.values()) == {1}
    assert answered < len(event_ids)  # the kill did cut requests off in flight


ROUNDS: Final = 5
"""Server lives in the random-kill test; every one but the last ends in a SIGKILL at a random moment."""
EVENTS: Final = 400
CALL: Final = {"primitive_type": "tool", "primitive_name": "search", "latency": 3, "success": True}


async def test_random_sigkills_and_restarts_lose_no_acknowledged_event_and_store_none_twice(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client that retries what got no answer, against a server SIGKILLed at random moments and restarted:
    MCP events (capture-event) and web events (/track) alike, every one acknowledged ends up stored exactly
    once — a retry of an event committed before its answer was cut off is a duplicate, not a second row."""
    key = await create_org_key(db_path, capsys)
    rng = random.Random(2026)
    session_id = str(uuid.uuid4())
    pending = {f"evt_random_{index:04d}": "mcp" if index % 2 else "web" for index in range(EVENTS)}
    acknowledged: set[str] = set()
    kills = 0

    for round_number in range(ROUNDS):
        last = round_number == ROUNDS - 1
        kill_at = -1 if last else rng.randrange(len(pending) // 3, len(pending) * 2 // 3)  # events left at the kill
        async with gateway_process(db_path, track_rate_limit="100000") as (process, base_url):
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=RUN_TIMEOUT) as http:
                opened = await http.post(
                    "/api/v1/capture-session",
                    json={"session_id": session_id, "client_config": "durability-test"},
                    headers={"X-Org-Id": key},
                )
                assert opened.status_code == 200, opened.text

                async def send(event_id: str, kind: str, kill_at: int = kill_at) -> None:
                    try:
                        if kind == "mcp":
                            body = {**CALL, "session_id": session_id, "event_id": event_id}
                            response = await http.post("/api/v1/capture-event", json=body, headers={"X-Org-Id": key})
                        else:
                            body = {"event_name": "Ping", "event_id": event_id}
                            response = await http.post("/track", json=body, headers={"X-Gateway-ID": DEMO})
                    except httpx.TransportError:
                        return  # cut off: retried next round
                    assert response.status_code == 200, response.text
                    acknowledged.add(event_id)
                    pending.pop(event_id, None)
                    if len(pending) == kill_at:
                        process.send_signal(signal.SIGKILL)  # at once, with the rest in flight

                with anyio.fail_after(RUN_TIMEOUT):
                    async with anyio.create_task_group() as tg:
                        for event_id, kind in list(pending.items()):
                            tg.start_soon(send, event_id, kind)
                        if not last:
                            await process.wait()
                            tg.cancel_scope.cancel()  # the requests the kill left hanging
            kills += process.returncode == -signal.SIGKILL

    stored = stored_event_counts(db_path)
    assert not pending  # the last round answered every event still unacknowledged
    assert kills == ROUNDS - 1
    assert {event_id: stored.get(event_id, 0) for event_id in acknowledged} == dict.fromkeys(acknowledged, 1)
    assert len(acknowledged) == EVENTS
