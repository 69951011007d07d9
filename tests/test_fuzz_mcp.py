"""Bad input on the MCP surface, generated: JSON-RPC messages with every method the protocol knows (and made-up
ones), params of any JSON shape, odd ids and versions, batches, JSON that is no message at all, and bytes that
are no JSON, posted to the plain JSON-RPC endpoint and to Streamable HTTP over a real socket. No answer may be
a 5xx or carry a traceback; a JSON answer is JSON-RPC (or the gateway's JSON error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_gateway import Settings, create_app

from .support import ADMIN_TOKEN, DEMO, LiveServer, serve_in_thread

EXAMPLES: Final = 150
METHODS: Final = (
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
)
ENDPOINTS: Final = ("/v1/mcp/sse", "/mcp")
HEADERS: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
known_params = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["book_demo", "nope"]) | st.text(max_size=10),
        "uri": st.sampled_from(["pricing://current", "docs://primary", "system://hint"]) | st.text(max_size=20),
        "arguments": st.dictionaries(st.sampled_from(["name", "email", "company", "message"]), json_values),
        "protocolVersion": st.sampled_from(["2025-06-18", "2025-11-25", "1999-01-01"]) | st.text(max_size=10),
        "capabilities": json_values,
        "clientInfo": json_values,
        "_meta": json_values,
        "cursor": json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]) | json_values,
        "method": st.sampled_from(METHODS) | st.text(max_size=20) | json_values,
    },
    optional={"id": st.integers() | st.text(max_size=8) | json_values, "params": known_params | json_values},
)
bodies = (
    messages.map(json.dumps)
    | st.lists(messages, max_size=3).map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=64).map(lambda raw: raw.decode("latin-1"))
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[LiveServer]:
    db_path = Path(tmp_path_factory.mktemp("fuzz-mcp")) / "gateway.db"
    settings = Settings(db_path=db_path, database_url=module_database_url, admin_token=ADMIN_TOKEN)
    with serve_in_thread(create_app(settings), db_path) as live:
        yield live


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_mcp_message_gets_a_5xx_or_a_traceback(server: LiveServer, endpoint: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=15) as http:

        @given(body=bodies)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def send(body: str) -> None:
            response = http.post(endpoint, params={"gid": DEMO}, content=body.encode("utf-8"), headers=HEADERS)
            assert response.status_code < 500, (body, response.status_code, response.text[:300])
            assert "Traceback" not in response.text, body
            if response.headers.get("content-type", "").startswith("application/json") and response.content:
                answer: Any = response.json()
                for reply in answer if isinstance(answer, list) else [answer]:
                    assert reply.get("jsonrpc") == "2.0" or "error" in reply, (body, reply)

        send()
