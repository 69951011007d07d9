"""Operations: /health says whether the gateway can serve, /metrics what it has done, in Prometheus' format
(parsed here by the reference client's own parser, as a scrape would)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app

from .analytics_support import store_of
from .support import (
    DEMO,
    STARTUP_TIMEOUT,
    create_key,
    gateway_executable,
    lifespan_running,
    scrape,
    serve_environment,
    stored_rows,
    value,
)

pytestmark = pytest.mark.usefixtures("database_url")  # every test on SQLite and on PostgreSQL

GATEWAY = {"X-Gateway-ID": DEMO}
METRICS_TOKEN = "metrics-token-0123456789"


async def test_health_reports_the_database_and_the_writer_queue(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["writer_queue"] == 0


async def test_health_is_503_with_a_json_body_when_the_database_does_not_answer(
    http: httpx.AsyncClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any) -> Any:
        raise OSError("disk gone")

    monkeypatch.setattr(store_of(app), "fetch", broken)

    response = await http.get("/health")

    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


async def test_metrics_count_requests_by_route_template_and_the_events_stored(http: httpx.AsyncClient) -> None:
    for event_id in ("m-1", "m-2"):
        response = await http.post("/track", json={"event_name": "Signup", "event_id": event_id}, headers=GATEWAY)
        assert response.status_code == 200, response.text
    key = await create_key(http, kind="read")
    await http.get("/analytics/leads/lead_nope", headers={"Authorization": f"Bearer {key}"})
    await http.get("/no/such/page")
    await http.request("BREW", "/health")  # a made-up method: one OTHER label, not a new one per method

    scraped = await scrape(http)

    assert value(scraped, "mcp_gateway_http_requests_total", route="/track", method="POST", status="200") == 2
    assert (
        value(
            scraped, "mcp_gateway_http_requests_total", route="/analytics/leads/{lead_id}", method="GET", status="404"
        )
        == 1
    )
    assert value(scraped, "mcp_gateway_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(scraped, "mcp_gateway_http_requests_total", route="/health", method="OTHER", status="405") == 1
    assert value(scraped, "mcp_gateway_http_request_duration_seconds_count", route="/track", method="POST") == 2
    assert value(scraped, "mcp_gateway_events_stored_total", source="web") == 2
    transactions = value(scraped, "mcp_gateway_writer_transactions_total")
    assert transactions >= 2  # the two events, the key, the demo gateway
    assert value(scraped, "mcp_gateway_writer_batch_jobs_count") == transactions
    assert value(scraped, "mcp_gateway_writer_batch_jobs_bucket", le="+Inf") == transactions
    assert value(scraped, "mcp_gateway_writer_queue_depth") == 0
    assert ("process_resident_memory_bytes", ()) in scraped


async def test_a_duplicate_event_is_not_counted_as_stored(http: httpx.AsyncClient) -> None:
    for _ in range(2):
        await http.post("/track", json={"event_name": "Signup", "event_id": "same"}, headers=GATEWAY)

    scraped = await scrape(http)

    assert value(scraped, "mcp_gateway_events_stored_total", source="web") == 1


async def test_with_a_metrics_token_a_scrape_must_send_it(settings: Settings) -> None:
    settings = settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    app = create_app(settings)
    async with lifespan_running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            anonymous = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
            scraped = await scrape(http, Authorization=f"Bearer {METRICS_TOKEN}")

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in anonymous.json()
    assert value(scraped, "mcp_gateway_http_requests_total", route="/metrics", method="GET", status="401") == 2


async def test_metrics_over_a_real_socket(live_http: httpx.AsyncClient) -> None:
    await live_http.get("/health")

    scraped = await scrape(live_http)

    assert value(scraped, "mcp_gateway_http_requests_total", route="/health", method="GET", status="200") >= 1


def serve_then_sigterm(db_path: Path, exchange: Callable[[str], None], *flags: str) -> list[str]:
    """`mcp-gateway serve` (with `flags`) on a free port: `exchange(base_url)` runs against it, then SIGTERM and
    a clean exit are awaited. Every line the process wrote on stderr."""
    env = serve_environment()
    command = [gateway_executable(), "serve", "--port", "0", "--db", str(db_path), *flags]
    lines: list[str] = []
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        watchdog = threading.Timer(STARTUP_TIMEOUT, process.kill)
        watchdog.start()
        try:
            assert process.stderr is not None
            while (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", lines[-1] if lines else "")) is None:
                line = process.stderr.readline()
                assert line, "the server stopped before it listened"
                lines.append(line)
            exchange(f"http://127.0.0.1:{found.group(1)}")
            process.send_signal(signal.SIGTERM)
            lines += process.stderr.read().splitlines()
            assert process.wait(STARTUP_TIMEOUT) in (0, -signal.SIGTERM)  # uvicorn re-raises it after shutdown
        finally:
            watchdog.cancel()
            process.kill()
    return lines


def test_serve_with_json_logs_writes_one_json_object_per_line(tmp_path: Path) -> None:
    """`mcp-gateway serve --log-format json`: uvicorn's startup and access lines and the gateway's own records
    all come out as JSON objects, one a line, through a SIGTERM shutdown."""

    def exchange(base_url: str) -> None:
        assert httpx.get(f"{base_url}/health").status_code == 200

    lines = serve_then_sigterm(tmp_path / "g.db", exchange, "--log-format", "json")

    records = [json.loads(line) for line in lines if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(record) for record in records)
    assert any(r["logger"] == "uvicorn.access" and "GET /health" in r["message"] for r in records)
    assert any(r["logger"] == "uvicorn.error" and "Shutting down" in r["message"] for r in records)


def test_a_sigterm_flushes_what_self_tracking_still_held_in_memory(tmp_path: Path) -> None:
    """Self-tracking batches MCP calls in memory (a flush every 2 s); a SIGTERM right after the calls must still
    leave every one of them in the database."""
    db_path = tmp_path / "g.db"
    uris = ["pricing://current", "docs://primary", "system://hint"]

    def exchange(base_url: str) -> None:
        for index, uri in enumerate(uris):
            body = {"jsonrpc": "2.0", "id": index, "method": "resources/read", "params": {"uri": uri}}
            response = httpx.post(f"{base_url}/v1/mcp/sse", params={"gid": DEMO}, json=body)
            assert response.status_code == 200 and "result" in response.json(), response.text

    serve_then_sigterm(db_path, exchange)

    rows = stored_rows(
        db_path, "SELECT name FROM events WHERE gateway_id = ? AND source = 'mcp' AND primitive_type = 'resource'", DEMO
    )
    assert sorted(row["name"] for row in rows) == sorted(uris)
