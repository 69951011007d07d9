"""What the gateway does with requests it cannot or must not serve, and with changes made while it runs."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

from mcp_gateway import Settings, create_app
from mcp_gateway import cli as gateway_cli
from mcp_gateway.gateways import default_manifest

from .support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    DEMO,
    LiveServer,
    admin_json,
    connect,
    jsonrpc_request,
    leads_of,
    serve_in_thread,
    sse_messages,
    text_of,
)

JSONRPC = "/v1/mcp/sse?gid=demo"
STREAMABLE_ACCEPT = {"Accept": "application/json, text/event-stream"}

MCP_ROUTES: list[tuple[str, str]] = [
    ("GET", "/v1/mcp/sse?gid={gid}"),
    ("POST", "/v1/mcp/sse?gid={gid}"),
    ("POST", "/mcp?gid={gid}"),
    ("GET", "/mcp?gid={gid}"),
    ("DELETE", "/mcp?gid={gid}"),
    ("POST", "/v1/mcp/{gid}/messages?session_id=0123456789abcdef0123456789abcdef"),
]
"""Every MCP HTTP entry point, with `{gid}` where the gateway id goes."""


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1].split('?')[0]}"


async def call_route(
    http: httpx.AsyncClient, method: str, path: str, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = json.dumps(jsonrpc_request("tools/list")).encode() if method == "POST" else None
    all_headers = {"Content-Type": "application/json", **STREAMABLE_ACCEPT, **(headers or {})}
    return await http.request(method, path, content=body, headers=all_headers)


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The `{"error": ...}` body every gateway HTTP error carries."""
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def jsonrpc_error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert body["jsonrpc"] == "2.0"
    assert "result" not in body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str)
    return body


async def put_manifest(http: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/manifest")
    updated: dict[str, Any] = await admin_json(http, "PUT", f"/v1/gateways/{DEMO}/manifest", manifest | changes)
    return updated


# -- which gateway -----------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", MCP_ROUTES, ids=route_id)
@pytest.mark.parametrize("gid", ["nope", "Not-A-Valid-Id!", "x" * 300], ids=["unknown", "invalid", "too-long"])
async def test_unknown_gateway_gets_404_json(module_http: httpx.AsyncClient, route: tuple[str, str], gid: str) -> None:
    method, path = route
    response = await call_route(module_http, method, path.format(gid=gid))

    assert response.status_code == 404
    assert error_body(response) == {"error": "Gateway Not Configured"}


async def test_unknown_gateway_in_the_header_gets_404_json(http: httpx.AsyncClient) -> None:
    response = await call_route(http, "POST", "/v1/mcp/sse", headers={"X-Gateway-ID": "nope"})

    assert response.status_code == 404
    assert error_body(response) == {"error": "Gateway Not Configured"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", [r for r in MCP_ROUTES if "{gid}/" not in r[1]], ids=route_id)
async def test_request_without_gateway_id_gets_400_json(module_http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    method, path = route
    response = await call_route(module_http, method, path.split("?")[0])

    assert response.status_code == 400
    body = error_body(response)
    assert set(body) == {"error", "field"}
    assert body["field"] == "X-Gateway-ID"


async def test_gateway_id_may_come_from_the_x_gateway_id_header(http: httpx.AsyncClient) -> None:
    response = await call_route(http, "POST", "/v1/mcp/sse", headers={"X-Gateway-ID": DEMO})

    assert response.status_code == 200
    assert [tool["name"] for tool in response.json()["result"]["tools"]] == ["book_demo", "track_event"]


# -- JSON-RPC errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe{}", b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000],
    ids=["garbage", "empty", "not-utf8", "unclosed-deep", "too-deep"],
)
async def test_malformed_json_is_a_parse_error(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(JSONRPC, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    error = jsonrpc_error(response)
    assert error["id"] is None
    assert error["error"]["code"] == PARSE_ERROR


async def test_malformed_json_on_streamable_http_is_a_parse_error(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/mcp?gid=demo", content=b"{not json", headers={"Content-Type": "application/json", **STREAMABLE_ACCEPT}
    )

    assert response.status_code == 400
    assert jsonrpc_error(response)["error"]["code"] == PARSE_ERROR


async def test_unknown_method_is_method_not_found(http: httpx.AsyncClient) -> None:
    response = await http.post(JSONRPC, json=jsonrpc_request("no/such/method", request_id="abc"))

    error = jsonrpc_error(response)
    assert error["id"] == "abc"
    assert error["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("resources/read", {}),
        ("resources/read", {"uri": 42}),
        ("resources/read", {"uri": "pricing://nope"}),
        ("tools/call", {}),
        ("tools/call", {"name": "book_demo", "arguments": "not-an-object"}),
        ("tools/list", {"cursor": 5}),
        ("prompts/get", {"name": 5}),
        ("prompts/get", {"name": "no_such_prompt"}),
        ("prompts/get", {"name": "recommend_plan", "arguments": {"budget": "10"}}),
    ],
    ids=[
        "no-uri",
        "uri-not-string",
        "unknown-uri",
        "no-tool-name",
        "arguments-not-object",
        "bad-cursor",
        "bad-name",
        "unknown-prompt",
        "missing-prompt-argument",
    ],
)
async def test_bad_params_are_invalid_params(http: httpx.AsyncClient, method: str, params: dict[str, Any]) -> None:
    response = await http.post(JSONRPC, json=jsonrpc_request(method, params, request_id=7))

    error = jsonrpc_error(response)
    assert error["id"] == 7
    assert error["error"]["code"] == INVALID_PARAMS


@pytest.mark.parametrize(
    "body",
    [
        "hello",
        42,
        [],
        [jsonrpc_request("ping")] * 101,
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]},
    ],
    ids=["string", "number", "empty-batch", "batch-of-101", "bool-id", "object-id", "v1", "method-int", "params-list"],
)
async def test_a_body_that_is_not_a_request_is_an_invalid_request(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post(JSONRPC, json=body)

    assert response.status_code == 400
    assert jsonrpc_error(response)["error"]["code"] == INVALID_REQUEST


async def test_jsonrpc_post_refuses_other_content_types_and_oversized_bodies(http: httpx.AsyncClient) -> None:
    wrong_type = await http.post(JSONRPC, content=b"{}", headers={"Content-Type": "text/plain"})
    too_big = await http.post(JSONRPC, content=b" " * (2 * 1024 * 1024), headers={"Content-Type": "application/json"})

    assert wrong_type.status_code == 415
    assert too_big.status_code == 413
    error_body(wrong_type)
    error_body(too_big)


# -- DNS rebinding and browser origins ----------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", MCP_ROUTES, ids=route_id)
async def test_origin_not_allowed_gets_403_json(module_http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    method, path = route
    response = await call_route(module_http, method, path.format(gid=DEMO), headers={"Origin": "https://evil.example"})

    assert response.status_code == 403
    assert set(error_body(response)) == {"error"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", MCP_ROUTES, ids=route_id)
async def test_host_not_allowed_gets_421_json(module_http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    method, path = route
    response = await call_route(module_http, method, path.format(gid=DEMO), headers={"Host": "evil.example"})

    assert response.status_code == 421
    error_body(response)


async def test_allowed_origins_follow_the_admin_api_without_restart(http: httpx.AsyncClient) -> None:
    async def status_from(origin: str) -> int:
        return (await call_route(http, "POST", JSONRPC, headers={"Origin": origin})).status_code

    assert await status_from("http://localhost:5173") == 200
    assert await status_from("https://shop.example") == 403

    await admin_json(http, "PUT", f"/v1/gateways/{DEMO}/origins", {"allowed_origins": ["https://shop.example"]})

    assert await status_from("https://shop.example") == 200
    assert await status_from("http://localhost:5173") == 403
    assert await status_from("https://shop.example:8443") == 403


# -- SSE connection limit ----------------------------------------------------------------------------


async def open_sse_stream(stack: contextlib.AsyncExitStack, client: httpx.AsyncClient, url: str) -> str:
    """Open an SSE stream that stays open until `stack` closes; return its `endpoint` event's data."""
    response = await stack.enter_async_context(client.stream("GET", url))
    assert response.status_code == 200, response.status_code
    lines = response.aiter_lines()
    # Keep the line iterator referenced until the stack closes: a collected one closes the stream.
    stack.push_async_callback(lines.aclose)  # type: ignore[attr-defined]
    async for line in lines:
        if line == "event: endpoint":
            data = await anext(lines)
            assert data.startswith("data: ")
            return data.removeprefix("data: ")
    raise AssertionError("the SSE stream ended before its endpoint event")


async def test_eleventh_concurrent_sse_stream_from_one_ip_gets_429_with_retry_after(
    live_server: LiveServer,
) -> None:
    url = live_server.url("/v1/mcp/sse?gid=demo")
    with anyio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as client, contextlib.AsyncExitStack() as streams:
            endpoints = [await open_sse_stream(streams, client, url) for _ in range(10)]
            refused = await client.get(url)

            assert len(set(endpoints)) == 10
            assert all(e.startswith("/v1/mcp/demo/messages?session_id=") for e in endpoints)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "10"
            assert error_body(refused)["retry_after"] == 10
            # A plain JSON-RPC POST on the same path is not a stream and is not limited.
            assert (await client.post(url, json=jsonrpc_request("ping"))).status_code == 200

        async with httpx.AsyncClient(timeout=10) as client:
            # All ten are closed: the server frees their slots once it sees the disconnects.
            async with contextlib.AsyncExitStack() as streams:
                for _ in range(10):
                    while True:
                        response = await streams.enter_async_context(client.stream("GET", url))
                        if response.status_code == 200:
                            break
                        assert response.status_code == 429
                        await response.aclose()  # give the connection back before retrying


# -- changes while running ---------------------------------------------------------------------------

OPEN_SESSION_TRANSPORTS = ["sse-2025-11-25", "streamable-http-2026-07-28", "jsonrpc-post-2025-11-25"]


@pytest.mark.parametrize("transport", OPEN_SESSION_TRANSPORTS)
async def test_manifest_change_via_admin_api_shows_up_in_an_open_session(
    transport: str, live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    async with connect(transport, live_server) as session:
        before = text_of(await session.read_resource("system://hint"))
        await put_manifest(
            live_http,
            system_hint="Only quote the Solo plan.",
            pricing=[{"name": "Solo", "price": 9, "features": ["1 seat"]}],
        )
        after = text_of(await session.read_resource("system://hint"))
        pricing = json.loads(text_of(await session.read_resource("pricing://current")))

    assert before == default_manifest().system_hint
    assert after == "Only quote the Solo plan."
    assert [(tier["name"], tier["price"]) for tier in pricing["tiers"]] == [("Solo", 9)]


async def test_manifest_change_from_another_process_shows_up_without_restart(
    tmp_path: Path, db_path: Path, database_url: str | None
) -> None:
    settings = Settings(db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, gateway_cache_seconds=0)
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(
        default_manifest().model_copy(update={"system_hint": "Set from the CLI."}).model_dump_json()
    )
    with serve_in_thread(create_app(settings), db_path) as server:
        async with connect("jsonrpc-post-2025-11-25", server) as session:
            before = text_of(await session.read_resource("system://hint"))
            code = await anyio.to_thread.run_sync(
                gateway_cli.run, ["gateways", "set-manifest", DEMO, str(manifest_file), "--db", str(db_path)]
            )
            after = text_of(await session.read_resource("system://hint"))

    assert code == 0
    assert before == default_manifest().system_hint
    assert after == "Set from the CLI."


@pytest.mark.parametrize("transport", OPEN_SESSION_TRANSPORTS)
async def test_disabled_tool_is_not_listed_and_cannot_be_called(
    transport: str, live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    booking = {"name": "Ada", "email": "ada@example.com"}
    async with connect(transport, live_server) as session:
        listed_before = [tool.name for tool in (await session.list_tools()).tools]
        await put_manifest(live_http, enabled_tools=[])
        listed_disabled = [tool.name for tool in (await session.list_tools()).tools]
        with pytest.raises(MCPError) as caught:
            await session.call_tool("book_demo", booking)
        leads_while_disabled = await leads_of(live_http)
        await put_manifest(live_http, enabled_tools=["book_demo"])
        listed_again = [tool.name for tool in (await session.list_tools()).tools]
        booked = await session.call_tool("book_demo", booking)

    assert listed_before == ["book_demo", "track_event"]
    assert listed_disabled == []
    assert caught.value.code == INVALID_PARAMS
    assert leads_while_disabled == []
    assert listed_again == ["book_demo"]
    assert not booked.is_error


@pytest.mark.parametrize("route", MCP_ROUTES, ids=route_id)
async def test_gateway_with_mcp_disabled_gets_403_json(http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    method, path = route
    await put_manifest(http, mcp_enabled=False)
    disabled = await call_route(http, method, path.format(gid=DEMO))
    await put_manifest(http, mcp_enabled=True)
    enabled = await call_route(http, "POST", JSONRPC)  # not `route`: a GET of the SSE route would stream forever

    assert disabled.status_code == 403
    assert set(error_body(disabled)) == {"error"}
    assert enabled.status_code == 200


# -- never a 500, never a traceback ------------------------------------------------------------------

_J = {"Content-Type": "application/json"}
_ADMIN_J = {**ADMIN_HEADERS, **_J}
NASTY_REQUESTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("admin-deep-json", "POST", "/v1/gateways", {"content": b"[" * 100_000, "headers": _ADMIN_J}),
    ("admin-not-utf8", "POST", "/v1/gateways", {"content": b"\xff\xfe", "headers": _ADMIN_J}),
    ("admin-null-body", "PUT", "/v1/gateways/demo/manifest", {"content": b"null", "headers": _ADMIN_J}),
    ("admin-list-body", "PUT", "/v1/gateways/demo/origins", {"content": b"[1]", "headers": _ADMIN_J}),
    ("admin-superscript-limit", "GET", "/v1/gateways/demo/leads?limit=%C2%B2", {"headers": ADMIN_HEADERS}),
    ("admin-negative-limit", "GET", "/v1/gateways/demo/leads?limit=-1", {"headers": ADMIN_HEADERS}),
    ("admin-long-limit", "GET", "/v1/gateways/demo/leads?limit=" + "9" * 400, {"headers": ADMIN_HEADERS}),
    ("admin-huge-limit", "GET", "/v1/gateways/demo/leads?limit=" + "9" * 5000, {"headers": ADMIN_HEADERS}),
    ("admin-odd-id", "GET", "/v1/gateways/%00%ff", {"headers": ADMIN_HEADERS}),
    ("admin-no-body", "POST", "/v1/gateways", {"headers": ADMIN_HEADERS}),
    ("rpc-deep-json", "POST", JSONRPC, {"content": b"[" * 100_000, "headers": _J}),
    ("rpc-huge-int-id", "POST", JSONRPC, {"content": b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b"}", "headers": _J}),
    (
        "rpc-unknown-version",
        "POST",
        JSONRPC,
        {"json": jsonrpc_request("ping"), "headers": {"MCP-Protocol-Version": "x"}},
    ),
    ("rpc-future-envelope", "POST", JSONRPC, {"json": jsonrpc_request("tools/list", {"_meta": {"x": [1]}})}),
    ("rpc-null-params", "POST", JSONRPC, {"json": {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": None}}),
    ("rpc-unknown-tool", "POST", JSONRPC, {"json": jsonrpc_request("tools/call", {"name": "rm -rf"})}),
    ("rpc-unicode-gid", "POST", "/v1/mcp/sse?gid=d%C3%A9mo", {"json": jsonrpc_request("ping")}),
    ("mcp-no-accept", "POST", "/mcp?gid=demo", {"json": jsonrpc_request("ping")}),
    ("mcp-bad-session", "POST", "/mcp?gid=demo", {"json": jsonrpc_request("ping"), "headers": {"Mcp-Session-Id": "x"}}),
    ("mcp-put", "PUT", "/mcp?gid=demo", {}),
    ("messages-no-session", "POST", "/v1/mcp/demo/messages", {"json": jsonrpc_request("ping")}),
    ("messages-bad-session", "POST", "/v1/mcp/demo/messages?session_id=zz", {"json": jsonrpc_request("ping")}),
    ("unknown-path", "GET", "/v1/nothing", {}),
    ("wrong-method", "DELETE", "/v1/gateways", {"headers": ADMIN_HEADERS}),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), [r[1:] for r in NASTY_REQUESTS], ids=[r[0] for r in NASTY_REQUESTS]
)
async def test_bad_requests_never_get_a_500_or_a_traceback(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await http.request(method, path, **kwargs)

    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?session_id=not-hex", 400), ("?session_id=0123456789abcdef0123456789abcdef", 404)],
    ids=["no-session", "bad-session", "unknown-session"],
)
async def test_sse_message_errors_from_the_sdk_leave_as_json(http: httpx.AsyncClient, query: str, status: int) -> None:
    response = await http.post(f"/v1/mcp/{DEMO}/messages{query}", json=jsonrpc_request("ping"))

    assert response.status_code == status
    error_body(response)


async def test_text_the_reply_cannot_encode_as_utf8_still_gets_a_json_rpc_reply(http: httpx.AsyncClient) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "book_\\ud800", "arguments": {}}}'
    response = await http.post(JSONRPC, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code < 500
    assert "error" in response.json() or response.json()["result"]["isError"]


MALFORMED_MESSAGES: list[tuple[str, bytes]] = [
    ("not-json", b"not json SECRET-BODY-MARKER"),
    ("not-json-rpc", b'{"jsonrpc": "2.0", "SECRET-BODY-MARKER": true}'),
    ("wrong-version", b'{"jsonrpc": "1.0", "id": 1, "method": "SECRET-BODY-MARKER"}'),
]


@pytest.mark.parametrize("body", [body for _, body in MALFORMED_MESSAGES], ids=[name for name, _ in MALFORMED_MESSAGES])
async def test_a_malformed_sse_message_is_a_json_400_logged_in_one_short_line_without_its_body(
    live_server: LiveServer, live_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    async with (
        live_http.stream("GET", f"/v1/mcp/sse?gid={DEMO}") as stream,
        contextlib.aclosing(sse_messages(stream)) as messages,
    ):
        with anyio.fail_after(10):
            endpoint = await anext(messages)
        assert endpoint.event == "endpoint"
        with caplog.at_level(logging.DEBUG):
            caplog.clear()
            response = await live_http.post(endpoint.data, content=body, headers={"Content-Type": "application/json"})
            logged = [record for record in caplog.records if record.name.startswith(("mcp", "uvicorn"))]
        valid = await live_http.post(endpoint.data, json=jsonrpc_request("ping"))  # the session still works

    assert len(logged) <= 1, [record.getMessage() for record in logged]
    assert all(record.levelno <= logging.WARNING and record.exc_info is None for record in logged)
    assert all("SECRET-BODY-MARKER" not in record.getMessage() for record in logged)
    assert response.status_code == 400
    assert error_body(response)["field"] == "body"
    assert "SECRET-BODY-MARKER" not in response.text
    assert valid.status_code == 202


@pytest.mark.parametrize("flag", ["mcp_enabled", "tracking_enabled"])
@pytest.mark.parametrize("sent", [0, 1, "true", "false", "yes"], ids=["0", "1", "str-true", "str-false", "yes"])
async def test_a_manifest_boolean_takes_only_json_true_or_false(http: httpx.AsyncClient, flag: str, sent: Any) -> None:
    """pydantic's lax mode would read 0 as false: a boolean switch (tracking off) must be said as one."""
    manifest = default_manifest().model_dump(mode="json")
    response = await http.put(f"/v1/gateways/{DEMO}/manifest", headers=ADMIN_HEADERS, json=manifest | {flag: sent})

    assert response.status_code == 422, response.text
    assert error_body(response)["field"] == flag
    kept = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/manifest")
    assert kept[flag] is True
