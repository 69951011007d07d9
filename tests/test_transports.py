"""Every MCP transport, over a real socket (or a real subprocess for stdio), serves the same gateway.

Each behaviour runs once per transport in `support.TRANSPORTS`: SSE and Streamable HTTP with the
official SDK client at both the 2025-11-25 session protocol and the sessionless 2026-07-28
revision, stdio against the `mcp-gateway stdio` process, and plain JSON-RPC POSTs as curl sends them.

One server runs for the whole module (starting and stopping uvicorn costs a fifth of a second);
each test gets a gateway of its own on it, created like `demo` with the bundled manifest, so no
test sees another's leads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent

from mcp_gateway import Settings, create_app

from .support import (
    ADMIN_TOKEN,
    DEMO,
    HANDSHAKE,
    MODERN,
    TRANSPORTS,
    JsonRpcPostSession,
    LiveServer,
    McpSession,
    admin_json,
    connect,
    expected_protocol_version,
    json_of,
    jsonrpc_request,
    leads_of,
    serve_in_thread,
    text_of,
)

RESOURCE_URIS = ["docs://primary", "pricing://current", "system://hint"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[LiveServer]:
    db_path = tmp_path_factory.mktemp("transports") / "gateway.db"
    settings = Settings(db_path=db_path, database_url=module_database_url, admin_token=ADMIN_TOKEN)
    with serve_in_thread(create_app(settings), db_path) as server:
        yield server


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


@pytest.fixture
async def gateway_id(admin: httpx.AsyncClient) -> str:
    """A fresh gateway with the bundled manifest, as `demo` has."""
    new_id = f"t-{uuid.uuid4().hex[:16]}"
    await admin_json(admin, "POST", "/v1/gateways", {"id": new_id, "name": "Test gateway"})
    return new_id


async def manifest_of(admin: httpx.AsyncClient, gateway_id: str) -> dict[str, Any]:
    manifest: dict[str, Any] = await admin_json(admin, "GET", f"/v1/gateways/{gateway_id}/manifest")
    return manifest


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful tool call, checked against its text rendering."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    content: dict[str, Any] = result.structured_content
    assert json.loads(result.content[0].text) == content
    return content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    assert result.structured_content is None
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    return result.content[0].text


async def book(session: McpSession, **arguments: Any) -> CallToolResult:
    return await session.call_tool("book_demo", arguments)


async def test_session_speaks_its_revision_and_lists_the_gateway_primitives(transport: str, server: LiveServer) -> None:
    async with connect(transport, server, DEMO) as session:
        assert session.protocol_version == expected_protocol_version(transport)
        tools = await session.list_tools()
        if isinstance(session, JsonRpcPostSession):  # the reply's shape follows the revision asked for
            assert ("resultType" in session.last_result) == (session.protocol_version == MODERN)
        resources = await session.list_resources()
        prompts = await session.list_prompts()

    assert [tool.name for tool in tools.tools] == ["book_demo", "track_event"]
    schema = tools.tools[0].input_schema
    assert set(schema["properties"]) == {"name", "email", "company", "message"}
    assert sorted(schema["required"]) == ["email", "name"]

    assert sorted(str(resource.uri) for resource in resources.resources) == RESOURCE_URIS
    assert {str(r.uri): r.mime_type for r in resources.resources} == {
        "docs://primary": "application/json",
        "pricing://current": "application/json",
        "system://hint": "text/plain",
    }

    assert [prompt.name for prompt in prompts.prompts] == ["recommend_plan"]
    arguments = prompts.prompts[0].arguments or []
    assert {argument.name: argument.required for argument in arguments} == {
        "needs": True,
        "team_size": False,
        "budget": False,
    }


async def test_every_resource_serves_the_gateway_manifest(
    transport: str, server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    manifest = await manifest_of(admin, gateway_id)
    async with connect(transport, server, gateway_id) as session:
        listed = await session.list_resources()
        reads = {str(resource.uri): await session.read_resource(str(resource.uri)) for resource in listed.resources}

    assert sorted(reads) == RESOURCE_URIS
    pricing = json_of(reads["pricing://current"])
    assert pricing["gateway"] == "Test gateway"
    assert [tier["name"] for tier in pricing["tiers"]] == ["Starter", "Growth", "Enterprise"]
    assert pricing["tiers"] == manifest["pricing"]
    assert json_of(reads["docs://primary"]) == {"url": manifest["docs_url"], "covers": manifest["docs_summary"]}
    assert text_of(reads["system://hint"]) == manifest["system_hint"]
    assert reads["pricing://current"].contents[0].mime_type == "application/json"
    assert reads["system://hint"].contents[0].mime_type == "text/plain"


async def test_valid_booking_stores_one_lead_with_the_given_details(
    transport: str, server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    async with connect(transport, server, gateway_id) as session:
        result = await book(
            session,
            name="  Ada Lovelace ",
            email="Ada@Example.com",
            company="Analytical Engines",
            message="Show me the analytics.",
        )

    booked = structured(result)
    assert booked["status"] == "booked"
    leads = await leads_of(admin, gateway_id)
    assert [lead["id"] for lead in leads] == [booked["lead_id"]]
    assert leads[0] | {"created_at_ms": 0} == {
        "id": booked["lead_id"],
        "gateway_id": gateway_id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines",
        "message": "Show me the analytics.",
        "source": "mcp",
        "created_at_ms": 0,
        "crm_lead_id": None,
    }


INVALID_BOOKINGS: list[tuple[str, dict[str, Any]]] = [
    ("email", {"name": "Ada", "email": "not-an-email"}),
    ("email", {"name": "Ada"}),
    ("name", {"name": "   ", "email": "ada@example.com"}),
    ("company", {"name": "Ada", "email": "ada@example.com", "company": "x" * 201}),
]
"""Bookings `book_demo` must refuse, each with the field its error has to name."""


async def test_invalid_booking_is_a_tool_error_naming_the_field_and_stores_nothing(
    transport: str, server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    async with connect(transport, server, gateway_id) as session:
        errors = [
            (field, error_text(await session.call_tool("book_demo", arguments)))
            for field, arguments in INVALID_BOOKINGS
        ]

    for field, text in errors:
        assert field in text, (field, text)
    assert await leads_of(admin, gateway_id) == []


async def test_second_booking_with_the_same_email_returns_the_first_lead(
    transport: str, server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    async with connect(transport, server, gateway_id) as session:
        first = structured(await book(session, name="Ada Lovelace", email="ada@example.com"))
        second = structured(await book(session, name="A. Lovelace", email=" ADA@example.COM ", company="Other"))

    assert first["status"] == "booked"
    assert second["status"] == "already_booked"
    assert second["lead_id"] == first["lead_id"]
    leads = await leads_of(admin, gateway_id)
    assert [(lead["id"], lead["name"]) for lead in leads] == [(first["lead_id"], "Ada Lovelace")]


async def test_recommend_plan_prompt_quotes_the_tiers_the_needs_and_the_hint(
    transport: str, server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    manifest = await manifest_of(admin, gateway_id)
    async with connect(transport, server, gateway_id) as session:
        prompt = await session.get_prompt(
            "recommend_plan", {"needs": "capture leads from agents", "team_size": "12", "budget": "100 USD"}
        )

    assert len(prompt.messages) == 1
    message = prompt.messages[0]
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    text = message.content.text
    for tier in manifest["pricing"]:
        assert tier["name"] in text
    assert "Growth: 49 USD/month" in text
    assert "Enterprise: contact sales" in text
    for fact in ("capture leads from agents", "Team size: 12", "Budget: 100 USD", manifest["system_hint"]):
        assert fact in text


async def test_reading_an_unknown_resource_is_invalid_params(transport: str, server: LiveServer) -> None:
    async with connect(transport, server, DEMO) as session:
        with pytest.raises(MCPError) as caught:
            await session.read_resource("pricing://nope")

    assert caught.value.code == INVALID_PARAMS


async def test_stdio_also_speaks_the_2025_11_25_session_protocol(
    server: LiveServer, admin: httpx.AsyncClient, gateway_id: str
) -> None:
    async with connect("stdio-2025-11-25", server, gateway_id) as session:
        assert session.protocol_version == HANDSHAKE
        hint = text_of(await session.read_resource("system://hint"))
        booked = structured(await book(session, name="Ada", email="ada@example.com"))

    assert hint == (await manifest_of(admin, gateway_id))["system_hint"]
    assert [lead["id"] for lead in await leads_of(admin, gateway_id)] == [booked["lead_id"]]


# -- plain JSON-RPC as curl sends it ----------------------------------------------------------------


async def test_plain_jsonrpc_post_is_answered_as_json_without_a_session(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/mcp/sse?gid=demo",
        content=json.dumps(jsonrpc_request("resources/read", {"uri": "system://hint"}, request_id="req-1")),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in response.headers
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] == "req-1"
    assert body["result"]["contents"][0]["uri"] == "system://hint"


async def test_plain_jsonrpc_batch_is_answered_in_order_and_notifications_get_no_reply(
    admin: httpx.AsyncClient,
) -> None:
    batch = [
        jsonrpc_request("tools/list", request_id=1),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        jsonrpc_request("no/such/method", request_id=2),
        jsonrpc_request("prompts/list", request_id=3),
    ]
    response = await admin.post("/v1/mcp/sse?gid=demo", json=batch)
    notification = await admin.post(
        "/v1/mcp/sse?gid=demo", json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )

    assert response.status_code == 200
    replies = response.json()
    assert [reply["id"] for reply in replies] == [1, 2, 3]
    assert "result" in replies[0] and "result" in replies[2]
    assert replies[1]["error"]["code"] == -32601
    assert notification.status_code == 202
    assert notification.content == b""


async def test_plain_jsonrpc_tool_error_is_a_result_with_is_error(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/mcp/sse?gid=demo",
        json=jsonrpc_request("tools/call", {"name": "book_demo", "arguments": {"name": "Ada", "email": "nope"}}),
    )

    assert response.status_code == 200
    assert response.json()["result"]["isError"] is True
