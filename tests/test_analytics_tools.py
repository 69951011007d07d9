"""Per-primitive analytics from the writer's hourly rollups: exact counts, percentiles within the stated error."""

from __future__ import annotations

import math
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_gateway_tracking.wire import CaptureBatch, CaptureEvent, CaptureSession

from mcp_gateway.gateways import GatewayCreate, GatewayDirectory
from mcp_gateway.ingest import Ingestor
from mcp_gateway.privacy import IpHasher
from mcp_gateway.store import SQLiteStore, histogram
from mcp_gateway.store.base import HOUR_MS
from mcp_gateway.store.rollups import ROLLUP_TABLES

from .support import DEMO, admin_json, create_key

SESSION = "550e8400-e29b-41d4-a716-446655440000"
TOOLS = "/analytics/tools"


def test_percentiles_from_a_histogram_are_within_the_stated_error() -> None:
    latencies = [float(v) for v in range(1, 1001)]
    counts = histogram.merge({histogram.bucket(v): 1} for v in latencies)

    for q, exact in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)]:
        value = histogram.percentile(counts, q)
        assert value is not None
        assert abs(value - exact) / exact <= histogram.RELATIVE_ERROR


def test_an_empty_histogram_has_no_percentile() -> None:
    assert histogram.percentile({}, 0.5) is None


async def capture(http: httpx.AsyncClient, org: str, events: list[dict[str, Any]]) -> None:
    session = {"session_id": SESSION, "client_config": "claude-desktop 1.0"}
    response = await http.post(
        "/api/v1/capture-batch", json={"sessions": [session], "events": events}, headers={"X-Org-Id": org}
    )
    assert response.status_code == 200, response.text
    assert {e["status"] for e in response.json()["events"]} == {"stored"}


def tool_event(name: str, latency: float, *, success: bool = True, ts_ms: int | None = None) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "primitive_type": "tool",
        "primitive_name": name,
        "latency": latency,
        "success": success,
        "event_id": uuid.uuid4().hex,
        "timestamp": ts_ms or int(time.time() * 1000),
    }


async def test_tool_stats_count_calls_and_errors_and_read_percentiles_from_rollups(http: httpx.AsyncClient) -> None:
    org = await create_key(http, DEMO, "org")
    read = await create_key(http, DEMO, "read")
    two_hours_ago = int(time.time() * 1000) - 2 * HOUR_MS
    events = [tool_event("search", float(v), success=v % 10 != 0) for v in range(1, 51)]
    events += [tool_event("search", float(v), success=v % 10 != 0, ts_ms=two_hours_ago) for v in range(51, 101)]
    events += [tool_event("book_demo", 5.0) for _ in range(3)]
    await capture(http, org, events)

    response = await http.get(TOOLS, params={"period": "7d"}, headers={"Authorization": f"Bearer {read}"})

    assert response.status_code == 200, response.text
    body = response.json()
    search, book = body["primitives"]
    assert (search["name"], search["calls"], search["errors"]) == ("search", 100, 10)
    assert search["error_rate"] == pytest.approx(0.1)
    assert search["avg_latency_ms"] == pytest.approx(50.5)
    assert search["max_latency_ms"] == 100.0
    for field, exact in [("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)]:
        assert math.isclose(search[field], exact, rel_tol=body["latency_relative_error"]), (field, search[field])
    assert (book["name"], book["calls"], book["errors"]) == ("book_demo", 3, 0)


async def test_a_window_that_ends_before_the_events_counts_nothing(http: httpx.AsyncClient) -> None:
    org = await create_key(http, DEMO, "org")
    read = await create_key(http, DEMO, "read")
    await capture(http, org, [tool_event("search", 1.0)])

    until = int(time.time() * 1000) - 2 * HOUR_MS
    response = await http.get(TOOLS, params={"until": str(until)}, headers={"X-API-Key": read})

    assert response.status_code == 200
    assert response.json()["primitives"] == []


async def test_a_read_key_sees_only_its_own_gateway(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    await capture(http, await create_key(http, "acme", "org"), [tool_event("acme_tool", 1.0)])
    demo_read = await create_key(http, DEMO, "read")
    acme_read = await create_key(http, "acme", "read")

    demo = await http.get(TOOLS, headers={"X-API-Key": demo_read})
    acme = await http.get(TOOLS, headers={"X-API-Key": acme_read})

    assert [p["name"] for p in demo.json()["primitives"]] == []
    assert [p["name"] for p in acme.json()["primitives"]] == ["acme_tool"]
    assert acme.json()["gateway_id"] == "acme"


@pytest.mark.parametrize("kind", [None, "org", "pk", "sk"])
async def test_without_a_read_key_the_answer_is_401_with_www_authenticate(
    http: httpx.AsyncClient, kind: str | None
) -> None:
    headers = {} if kind is None else {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}

    response = await http.get(TOOLS, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "5d"}, "period"),
        ({"since": "yesterday"}, "since"),
        ({"until": "not-a-time"}, "until"),
        ({"since": "2000", "until": "1000"}, "since"),
        ({"primitive": "widget"}, "primitive"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    read = await create_key(http, DEMO, "read")

    response = await http.get(TOOLS, params=params, headers={"X-API-Key": read})

    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_opening_a_database_whose_rollups_are_missing_rebuilds_them(tmp_path: Path) -> None:

    path = tmp_path / "gateway.db"
    store = SQLiteStore(path)
    await store.open()
    await GatewayDirectory(store, cache_seconds=0).create(GatewayCreate(id="g1", name="G"))
    batch = CaptureBatch(
        sessions=[CaptureSession(session_id=SESSION, client_config="c")],
        events=[CaptureEvent.model_validate(tool_event("search", float(v))) for v in (1, 2, 3)],
    )
    await Ingestor(store, IpHasher(b"secret")).capture("g1", batch)
    await store.close()
    with sqlite3.connect(path) as conn:
        for table in ROLLUP_TABLES:  # as in a database from before the rollups
            conn.execute(f"DELETE FROM {table}")

    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        rows = await reopened.mcp_rollups("g1", since_ms=0, until_ms=2**62)
        counts = await reopened.fetch("SELECT name, events FROM event_rollups WHERE dimension = ''")
        actors = await reopened.fetch("SELECT actor, events FROM activity_rollups")
    finally:
        await reopened.close()

    assert sum(r.calls for r in rows) == 3
    assert counts == [("search", 3)]
    assert actors == [("", 3)]  # MCP calls count sessions, not users
