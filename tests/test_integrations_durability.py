"""The outbox survives a SIGKILL: every delivery committed with an acknowledged event is sent after a restart,
never silently dropped (a delivery in flight at the kill is sent again: duplicates are fine, `event_id` goes with
it). The real `mcp-gateway serve` runs as a subprocess; the platform is a signed-webhook receiver on loopback that
answers slowly, so the kill lands with deliveries claimed and on the wire."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Final

import anyio
import httpx
import pytest

from .integrations_support import Answer, create_integration, wait_until, webhook_integration, webhook_receiver
from .support import DEMO, gateway_process, stored_rows

pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and on PostgreSQL

FIRST: Final = 100
"""Events acknowledged before the kill is armed."""
SECOND: Final = 200
"""Events sent concurrently after; the server is killed when `KILL_AFTER` of them are acknowledged."""
KILL_AFTER: Final = 100
CONCURRENCY: Final = 50
RUN_TIMEOUT: Final = 60.0

SETTINGS: Final = {
    "track_rate_limit": "100000",
    "forward_poll_seconds": "0.05",
    "forward_retry_base_seconds": "0.05",
    "forward_retry_max_seconds": "0.2",
    "forward_lease_seconds": "1",
}


async def test_every_committed_delivery_is_sent_after_a_sigkill(db_path: Path, tmp_path: Path) -> None:
    acknowledged: list[str] = []
    with webhook_receiver(tmp_path) as receiver:
        receiver.default = Answer(delay_s=0.3)
        async with gateway_process(db_path, **SETTINGS) as (process, base_url):
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=RUN_TIMEOUT) as http:
                await create_integration(http, webhook_integration(receiver))

                async def send(event_id: str, kill: bool) -> None:
                    body = {"event_name": "Purchase", "event_id": event_id, "user": {"email": f"{event_id}@x.io"}}
                    try:
                        response = await http.post("/track", json=body, headers={"X-Gateway-ID": DEMO})
                    except httpx.TransportError:
                        return  # cut off by the kill: not acknowledged
                    if response.status_code == 200:
                        acknowledged.append(event_id)
                        if kill and len(acknowledged) == FIRST + KILL_AFTER:
                            process.send_signal(signal.SIGKILL)  # no await between the 200 and the kill

                with anyio.fail_after(RUN_TIMEOUT):
                    async with anyio.create_task_group() as tg:
                        for index in range(FIRST):
                            tg.start_soon(send, f"evt_{index:04d}", False)
                    await wait_until(lambda: receiver.requests() >= 1)  # a delivery is on the wire now
                    async with anyio.create_task_group() as tg:
                        for index in range(FIRST, FIRST + SECOND):
                            tg.start_soon(send, f"evt_{index:04d}", True)
                    await process.wait()
            assert process.returncode == -signal.SIGKILL

        rows = stored_rows(db_path, "SELECT event_id, status FROM deliveries")
        assert len(acknowledged) >= FIRST + KILL_AFTER
        committed = {row["event_id"] for row in rows}
        assert set(acknowledged) <= committed  # each acknowledged event's delivery was committed with it
        assert len(rows) == len(committed)  # one delivery per event
        assert any(row["status"] == "pending" for row in rows)  # the kill left work behind

        receiver.default = Answer()
        async with gateway_process(db_path, **SETTINGS):
            await wait_until(lambda: not stored_rows(db_path, "SELECT 1 FROM deliveries WHERE status != 'sent'"))
        assert set(acknowledged) <= set(receiver.event_ids())
        assert all(message.verified for message in receiver.received)
