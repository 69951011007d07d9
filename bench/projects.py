"""Seed 002's project and account routes on a project with many events: how long `GET /projects`,
`GET /projects/{id}` and `GET /account` take (each counts the project's events of today and ever), what the
`max_events_lifetime` check costs `/track`, how long `DELETE /projects/{id}` takes to answer, and
the background purge to remove it all.

    .venv/bin/python bench/projects.py                    # 100,000 events, about a minute on 2 CPUs
    .venv/bin/python bench/projects.py --events 1000000

In-process (httpx over ASGI, the app's lifespan running), SQLite in a temporary folder. The events are web
events of today, stored through the store's real write path (`capture_web`, rollups included) in batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.store import EventRow, Store, WebFields

ADMIN: Final = "bench-admin-token-0123456789abcdef"
BATCH: Final = 5000
RUNS: Final = 20


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=600) as client:
            yield app, client


def rows(gateway_id: str, count: int, start_ms: int, span_ms: int) -> list[EventRow]:
    step = max(1, span_ms // max(count, 1))
    return [
        EventRow(
            gateway_id=gateway_id,
            id=uuid.uuid4().hex,
            source="web",
            session_id=None,
            name="page_view" if n % 4 else "signup",
            primitive_type=None,
            operation=None,
            latency_ms=None,
            success=None,
            error_type=None,
            args=None,
            result=None,
            properties={"plan": "pro"} if n % 10 == 0 else None,
            ts_ms=start_ms + n * step,
            received_at_ms=start_ms + n * step,
            web=WebFields(anonymous_id=f"v{n % 5000}", path=f"/p{n % 50}"),
        )
        for n in range(count)
    ]


async def fill(store: Store, gateway_id: str, events: int) -> float:
    now = int(time.time() * 1000)
    day_start = now - now % 86_400_000
    started = time.perf_counter()
    for offset in range(0, events, BATCH):
        count = min(BATCH, events - offset)
        span = max(1, now - day_start)
        await store.capture_web(rows(gateway_id, count, day_start + span * offset // events, span * count // events))
    return time.perf_counter() - started


async def timed(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> list[float]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        response = await client.request(method, path, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
        assert response.is_success, (path, response.status_code, response.text[:200])
    return times


def line(label: str, times: list[float]) -> None:
    times = sorted(times)
    print(f"  {label:<34} p50 {statistics.median(times):8.2f} ms   max {times[-1]:8.2f} ms")


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Settings(db_path=Path(folder) / "bench.db", admin_token=ADMIN, retention_days=0)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        for limit in (None, 10**12):
            settings = base.model_copy(update={"max_events_lifetime": limit, "db_path": Path(folder) / f"{limit}.db"})
            async with running(settings) as (app, client):
                account = await client.post("/v1/accounts", json={"id": "bench", "name": "Bench"}, headers=admin)
                key = {"X-API-Key": account.json()["api_key"]}
                project = (await client.post("/projects", json={"name": "Shop"}, headers=key)).json()
                body = {"token": project["project_token"], "event": "page_view"}
                print(f"/track with max_events_lifetime={limit}:")
                line("POST /track", await timed(client, "POST", "/track", json=body))
        settings = base.model_copy(update={"db_path": Path(folder) / "big.db"})
        async with running(settings) as (app, client):
            account = await client.post("/v1/accounts", json={"id": "bench", "name": "Bench"}, headers=admin)
            key = {"X-API-Key": account.json()["api_key"]}
            project = (await client.post("/projects", json={"name": "Shop"}, headers=key)).json()
            await client.post("/projects", json={"name": "Other"}, headers=key)
            seconds = await fill(app.state.services.store, project["id"], events)
            print(f"stored {events:,} events of today in {seconds:.1f} s ({events / seconds:,.0f}/s)")
            shown = (await client.get(f"/projects/{project['id']}", headers=key)).json()
            assert shown["usage_today"] == events and shown["events_total"] == events, shown
            line("GET /projects (2 projects)", await timed(client, "GET", "/projects", headers=key))
            line("GET /projects/{id}", await timed(client, "GET", f"/projects/{project['id']}", headers=key))
            line("GET /account", await timed(client, "GET", "/account", headers=key))
            started = time.perf_counter()
            deleted = await client.delete(f"/projects/{project['id']}", headers=key)
            answered = time.perf_counter() - started
            assert deleted.status_code == 202, deleted.text
            removing = deleted.json()["removing"]
            listed = await timed(client, "GET", "/projects", headers=key)  # while the purge runs
            await app.state.purger.wait_idle()
            purged = time.perf_counter() - started
            assert await app.state.services.store.get_gateway(project["id"]) is None
            print(
                f"DELETE /projects/{{id}}: answered (202) in {answered * 1000:.0f} ms; {sum(removing.values()):,} rows"
                f" in {len(removing)} tables purged in the background in {purged:.1f} s"
            )
            line("GET /projects during the purge", listed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events stored in the project (default 100,000)")
    asyncio.run(main(parser.parse_args().events))
