"""`mcp-gateway migrate-db` carries integrations and their outbox into PostgreSQL: the secrets still open (same key
file beside the database) and new deliveries follow the copied ones (their `seq` sequence moved past them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from mcp_gateway import create_app
from mcp_gateway.cli import run

from .integrations_support import WebhookReceiver, create_integration, wait_until, webhook_integration, webhook_receiver
from .postgres import PostgresServer
from .support import DEMO, BoundedASGITransport, lifespan_running
from .test_integrations_outbox import settings_for


@pytest.fixture
def empty_postgres(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.release_database(url)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    with webhook_receiver(tmp_path) as receiver:
        yield receiver


async def _track_and_wait(settings_db: Path, url: str | None, receiver: WebhookReceiver, *event_ids: str) -> None:
    app = create_app(settings_for(settings_db, url))
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            if url is None:
                await create_integration(http, webhook_integration(receiver))
            for event_id in event_ids:
                body = {"event_name": "Purchase", "event_id": event_id}
                response = await http.post("/track", json=body, headers={"X-Gateway-ID": DEMO})
                assert response.status_code == 200, response.text
            await wait_until(lambda: set(event_ids) <= set(receiver.event_ids()))


async def test_integrations_and_deliveries_survive_migrate_db(
    tmp_path: Path, empty_postgres: str, receiver: WebhookReceiver
) -> None:
    db_path = tmp_path / "gateway.db"
    await _track_and_wait(db_path, None, receiver, "evt-sqlite-1", "evt-sqlite-2", "evt-sqlite-3")
    argv = ["migrate-db", "--db", str(db_path), "--database-url", empty_postgres]
    assert await anyio.to_thread.run_sync(run, argv) == 0
    await _track_and_wait(db_path, empty_postgres, receiver, "evt-postgres")  # same data dir: same key file
    assert all(message.verified for message in receiver.received)  # the copied secret still signs
