"""The tracking SDK against this gateway over a real socket: a server tracked with an org key of the gateway
delivers its session and every call, the gateway's analytics count them, and no secret reaches the store."""

from __future__ import annotations

from pathlib import Path

import httpx
from mcp.client import Client
from mcp.types import Implementation
from mcp_gateway_tracking import track_mcp
from mcp_gateway_tracking.pii import hash_text

from .support import DEMO, LiveServer, create_key, stored_rows
from .tracking.demo_server import SECRET_EMAIL, SECRET_PASSWORD, build_demo_server

FLUSH_TIMEOUT = 10.0


async def test_a_tracked_server_sends_its_session_and_calls_to_the_gateway(
    live_server: LiveServer, live_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = await create_key(live_http, DEMO, "org")
    read = await create_key(live_http, DEMO, "read")
    server = build_demo_server()
    tracker = track_mcp(server, org, endpoint=live_server.base_url, spool_dir=tmp_path, batch_size=50)
    try:
        async with Client(server, mode="legacy", client_info=Implementation(name="sdk-to-gateway", version="2.0")) as c:
            for n in range(3):
                await c.call_tool("add", {"a": n, "b": 1})
            await c.call_tool("sign_up", {"email": SECRET_EMAIL, "password": SECRET_PASSWORD})
        assert await tracker.flush(FLUSH_TIMEOUT)
    finally:
        await tracker.aclose()

    names = [row["name"] for row in stored_rows(live_server.db_path, "SELECT name FROM events ORDER BY seq")]
    assert sorted(names) == ["add", "add", "add", "sign_up", "tools/list"]  # the client lists tools to check results
    assert (tracker.sent, tracker.dropped) == (1 + len(names), {})
    answer = await live_http.get(
        "/analytics/tools", params={"period": "24h"}, headers={"Authorization": f"Bearer {read}"}
    )
    assert answer.status_code == 200, answer.text
    calls = {row["name"]: row["calls"] for row in answer.json()["primitives"]}
    assert calls == {"add": 3, "sign_up": 1}

    [session] = stored_rows(live_server.db_path, "SELECT client_config FROM mcp_sessions WHERE gateway_id = ?", DEMO)
    assert session["client_config"] == "sdk-to-gateway 2.0"
    [sign_up] = stored_rows(live_server.db_path, "SELECT args FROM events WHERE name = ?", "sign_up")
    assert hash_text(SECRET_EMAIL.lower()) in sign_up["args"]
    assert SECRET_EMAIL not in sign_up["args"] and SECRET_PASSWORD not in sign_up["args"]
