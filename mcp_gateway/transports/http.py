"""The MCP HTTP routes: gateway resolution, SSE, Streamable HTTP and plain JSON-RPC.

    GET  /v1/mcp/sse?gid=ID            SSE transport: an `endpoint` event, then server messages
    POST /v1/mcp/{gid}/messages?session_id=…   the SSE transport's client-to-server messages
    POST /v1/mcp/sse?gid=ID            plain JSON-RPC, answered as application/json
    GET|POST|DELETE /mcp?gid=ID        Streamable HTTP (session protocol and 2026-07-28 revision)

The gateway comes from `?gid=` or the `X-Gateway-ID` header. Before any SDK code runs, the
request is checked: gateway given (400) and known (404), MCP enabled for it (403), Host allowed
(421) and Origin in the gateway's allowed origins (403) — the SDK's own DNS-rebinding rules,
answered as JSON.
"""

from __future__ import annotations

import collections
import json
import logging
import uuid
from http import HTTPStatus
from typing import Annotated, Final

from mcp.types import JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse
from pydantic import Field
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..gateways import GatewayDirectory, request_gateway
from ..openapi import GATEWAY_PARAMS, Empty, ErrorBody, GatewayId, Operation, Param, Reply
from ..web import ApiError, read_body
from .forwarding import ClaimingSend, Forwarder
from .jsonrpc import MAX_BATCH, answer_jsonrpc_post
from .runtime import MCP_PATH, GatewayRuntime, GatewayRuntimes

logger = logging.getLogger(__name__)

SSE_RETRY_AFTER_SECONDS: Final = 10
"""What a client over its SSE connection limit is told to wait."""

# -- what the routes read and answer, for the OpenAPI document: the SDK's own JSON-RPC models

JsonRpcCall = JSONRPCRequest | JSONRPCNotification
PlainJsonRpcBody = JsonRpcCall | Annotated[list[JsonRpcCall], Field(min_length=1, max_length=MAX_BATCH)]
"""What `POST /v1/mcp/sse` reads (`jsonrpc.answer_jsonrpc_post`): one request or notification, or a batch."""
JsonRpcReply = JSONRPCResponse | JSONRPCError
McpError = ErrorBody | JSONRPCError
"""Our HTTP-level errors, or the SDK's JSON-RPC error objects (a parse error, an invalid request)."""

SESSION_HEADER: Final = Param("Mcp-Session-Id", "header", "The session the server gave in its `initialize` answer")
VERSION_HEADER: Final = Param("MCP-Protocol-Version", "header", "The negotiated protocol revision")


class ConnectionLimiter:
    """Counts open connections per key (client IP) and refuses past a maximum."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._open: collections.Counter[str] = collections.Counter()

    def acquire(self, key: str) -> bool:
        if self._open[key] >= self.maximum:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]


class _Asgi:
    """Marks a bound method as a raw ASGI endpoint (Starlette would treat it as request -> response)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class JsonErrors:
    """Wraps an ASGI `send` so an SDK error answered as plain text (or with no body) leaves as JSON.

    The SDK's transports answer some HTTP-level errors (unknown SSE session, bad Accept header, …)
    as `text/plain`; every error of ours is `{"error": message}`. JSON and SSE responses pass as they are.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._held: Message | None = None
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400:  # the headers are read only for an error: not on every answer
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if not content_type.startswith(("application/json", "text/event-stream")):
                    self._held = message
                    return
        elif message["type"] == "http.response.body" and self._held is not None:
            self._body += message.get("body", b"")
            if message.get("more_body", False):
                return
            status = self._held["status"]
            text = self._body.decode(errors="replace").strip() or HTTPStatus(status).phrase
            body = json.dumps({"error": text}).encode()
            headers = [(k, v) for k, v in self._held.get("headers", []) if k.lower() not in _REPLACED_HEADERS]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({**self._held, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
            return
        await self._send(message)


_REPLACED_HEADERS: Final = (b"content-type", b"content-length")


class McpRoutes:
    """ASGI endpoints that put one gateway's SDK transports behind one HTTP surface."""

    def __init__(self, settings: Settings, directory: GatewayDirectory, runtimes: GatewayRuntimes) -> None:
        self._settings = settings
        self._directory = directory
        self._runtimes = runtimes
        self.sse_limiter = ConnectionLimiter(settings.max_sse_connections_per_ip)
        self.forwarder: Forwarder | None = None
        """Set while other processes may hold sessions (PostgreSQL): requests for theirs are forwarded there."""

    def routes(self) -> list[BaseRoute]:
        return [
            Route(MCP_PATH, _Asgi(self.streamable_http), methods=["GET", "POST", "DELETE"]),
            Route("/v1/mcp/sse", _Asgi(self.sse), methods=["GET", "POST"]),
            Route("/v1/mcp/{gid}/messages", _Asgi(self.sse_message), methods=["POST"]),
        ]

    def operations(self) -> list[Operation]:
        checked = (400, 403, 404, 421)  # before any SDK code: gateway given, known, MCP on, Host and Origin allowed
        streamable = (*GATEWAY_PARAMS, SESSION_HEADER, VERSION_HEADER)
        accept = "`Accept` must list both `application/json` and `text/event-stream` (406 otherwise)."
        sse = "text/event-stream"
        return [
            Operation(
                "POST",
                MCP_PATH,
                "Streamable HTTP: send one JSON-RPC message",
                "mcp",
                body=JSONRPCMessage,
                response=JsonRpcReply,
                params=streamable,
                replies=(
                    Reply(200, "The reply, after any messages the server sends first", str, sse),
                    Reply(202, "A notification or a response: accepted, nothing to answer"),
                ),
                errors=(*checked, 406, 413, 415),
                error_type=McpError,
                description=accept,
            ),
            Operation(
                "GET",
                MCP_PATH,
                "Streamable HTTP: a session's stream of server-initiated messages",
                "mcp",
                response=str,
                content_type=sse,
                params=streamable,
                errors=(*checked, 405, 406, 409),
                error_type=McpError,
                description="405 for the sessionless revision (2026-07-28), which has no such stream.",
            ),
            Operation(
                "DELETE",
                MCP_PATH,
                "Streamable HTTP: end a session",
                "mcp",
                response=Empty,
                params=streamable,
                errors=(*checked, 405),
                error_type=McpError,
            ),
            Operation(
                "POST",
                "/v1/mcp/sse",
                "Plain JSON-RPC: one request (or a batch) answered as JSON, no session",
                "mcp",
                body=PlainJsonRpcBody,
                response=JsonRpcReply | list[JsonRpcReply],
                params=(*GATEWAY_PARAMS, VERSION_HEADER),
                replies=(Reply(202, "Only notifications: nothing to answer"),),
                errors=(*checked, 413, 415),
                error_type=McpError,
            ),
            Operation(
                "GET",
                "/v1/mcp/sse",
                "SSE transport: an `endpoint` event naming where to POST messages, then the server's messages",
                "mcp",
                response=str,
                content_type=sse,
                params=GATEWAY_PARAMS,
                errors=(*checked, 429),
                error_type=McpError,
            ),
            Operation(
                "POST",
                "/v1/mcp/{gid}/messages",
                "SSE transport: one client message for an open SSE session",
                "mcp",
                body=JSONRPCMessage,
                response=str,
                status=202,
                content_type="text/plain",
                params=(
                    Param("gid", "path", "The gateway's id", GatewayId),
                    Param("session_id", "query", "The session the `endpoint` event named", uuid.UUID, required=True),
                ),
                errors=checked,
                error_type=McpError,
                description="The answer comes on the SSE stream.",
            ),
        ]

    async def _resolve(self, request: Request, gateway_id: str | None = None) -> GatewayRuntime:
        gateway = await request_gateway(request, self._directory, gateway_id)
        if not gateway.manifest.mcp_enabled:
            raise ApiError(403, "MCP is not enabled for this gateway")
        runtime = await self._runtimes.get(gateway)
        rejection = await runtime.guard.validate_request(request, is_post=False)
        if rejection is not None:
            raise ApiError(rejection.status_code, bytes(rejection.body).decode())
        return runtime

    async def streamable_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime = await self._resolve(request)
        if (forwarder := self.forwarder) is not None:
            if (session_id := request.headers.get("mcp-session-id")) is None:
                send = ClaimingSend(send, forwarder.owners)
            elif await forwarder.forward_if_elsewhere(session_id, scope, receive, send):
                return
        await runtime.session_manager.handle_request(scope, receive, JsonErrors(send))

    async def sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime = await self._resolve(request)
        if request.method == "POST":
            await self._jsonrpc(runtime, request, scope, receive, send)
        else:
            await self._sse_stream(runtime, request, scope, receive, send)

    async def _jsonrpc(
        self, runtime: GatewayRuntime, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            raise ApiError(415, "Content-Type must be application/json")
        body = await read_body(request, self._settings.max_body_bytes)
        response = await answer_jsonrpc_post(runtime, request, body)
        await response(scope, receive, send)

    async def _sse_stream(
        self, runtime: GatewayRuntime, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        client_ip = request.client.host if request.client else "unknown"
        if not self.sse_limiter.acquire(client_ip):
            raise ApiError(
                429,
                f"Too many SSE connections: at most {self.sse_limiter.maximum} per IP",
                headers={"Retry-After": str(SSE_RETRY_AFTER_SECONDS)},
                retry_after=SSE_RETRY_AFTER_SECONDS,
            )
        if self.forwarder is not None:
            send = ClaimingSend(send, self.forwarder.owners)
        try:
            lowlevel = runtime.lowlevel
            async with runtime.sse.connect_sse(scope, receive, JsonErrors(send)) as (read_stream, write_stream):
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        finally:
            self.sse_limiter.release(client_ip)

    async def sse_message(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime = await self._resolve(request, request.path_params["gid"])
        session_id = request.query_params.get("session_id")
        if (
            self.forwarder is not None
            and session_id
            and await self.forwarder.forward_if_elsewhere(session_id.lower(), scope, receive, send)
        ):
            return
        await runtime.sse.handle_post_message(scope, receive, JsonErrors(send))
