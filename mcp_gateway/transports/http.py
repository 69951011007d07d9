"""The MCP HTTP routes: gateway resolution, SSE, Streamable HTTP and plain JSON-RPC.

    GET  /v1/mcp/sse?gid=ID            SSE transport: an `endpoint` event, then server messages
    POST /v1/mcp/{gid}/messages?session_id=…   the SSE transport's client-to-server messages
    POST /v1/mcp/sse?gid=ID            plain JSON-RPC, answered as application/json
    GET|POST|DELETE /mcp?gid=ID        Streamable HTTP (session protocol and 2026-07-28 revision)

The gateway comes from `?gid=` or the `X-Gateway-ID` header. Before any SDK code runs, the
request is checked: gateway given (400) and known (404), MCP enabled for it (403), Host allowed
(421) and Origin in the gateway's allowed origins (403) — the SDK's own DNS-rebinding rules,
answered as JSON. A request that would open an MCP session is then admitted by `SessionLimits` (429 or 503, with
`Retry-After`), which may end the least recently active idle session to make room.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Final

from mcp.types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import Field, ValidationError, WithJsonSchema
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ..config import Settings
from ..gateways import GatewayDirectory
from ..openapi import GATEWAY_PARAMS, Empty, ErrorBody, GatewayId, Operation, Param, Reply
from ..web import ApiError, AsgiEndpoint, ConnectionLimiter, JsonErrors, read_body, request_gateway
from .forwarding import ClaimingSend, Forwarder
from .jsonrpc import MAX_BATCH, answer_jsonrpc_post
from .jsonrpc_sessions import JsonRpcSessions
from .modern import serve_modern_post
from .runtime import MCP_PATH, GatewayRuntime, GatewayRuntimes
from .session_limits import (
    MAX_OPENING_BODY_BYTES,
    Closer,
    CompletableSend,
    EvictableReceive,
    OpeningSend,
    SessionLimits,
    client_key,
    is_modern,
    opens_session,
)

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
SseSessionId = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "uuid"}, {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}],
            "description": "A UUID, as the `endpoint` event names it (32 hex digits) or with hyphens",
        }
    ),
]
"""The SSE transport's session id: the SDK reads it as a UUID (400 otherwise) and names it in 32 hex digits."""
_SSE_SESSION_ID: Final = re.compile(
    r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
VERSION_HEADER: Final = Param("MCP-Protocol-Version", "header", "The negotiated protocol revision")


def _replay(body: bytes, receive: Receive) -> Receive:
    """An ASGI `receive` giving `body`, already read from `receive`, as the request's only message; then what
    `receive` gives (a disconnect)."""
    replayed = False

    async def receive_replaying() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_replaying


class McpRoutes:
    """ASGI endpoints that put one gateway's SDK transports behind one HTTP surface."""

    def __init__(self, settings: Settings, directory: GatewayDirectory, runtimes: GatewayRuntimes) -> None:
        self._settings = settings
        self._directory = directory
        self._runtimes = runtimes
        self.sse_limiter = ConnectionLimiter(settings.max_sse_connections_per_ip)
        self.sessions = SessionLimits(
            max_sessions=settings.max_mcp_sessions,
            max_per_ip=settings.max_mcp_sessions_per_ip,
            new_per_ip_per_minute=settings.new_mcp_sessions_per_ip_per_minute,
            idle_timeout=settings.mcp_session_idle_seconds,
        )
        self.jsonrpc_sessions = JsonRpcSessions(
            max_sessions=settings.max_mcp_sessions,
            max_per_client=settings.max_mcp_sessions_per_ip,
            idle_timeout=settings.mcp_session_idle_seconds,
        )
        """The plain JSON-RPC POST's sessions (`initialize` opens one), under the same limits as the others."""
        self._inline_modern = not settings.mcp_json_response
        """2026-07-28 POSTs served by `serve_modern_post`; in JSON-response mode the SDK's entry is as light."""
        self.forwarder: Forwarder | None = None
        """Set while other processes may hold sessions (PostgreSQL): requests for theirs are forwarded there."""

    def routes(self) -> list[BaseRoute]:
        return [
            Route(MCP_PATH, AsgiEndpoint(self.streamable_http), methods=["GET", "POST", "DELETE"]),
            Route("/v1/mcp/sse", AsgiEndpoint(self.sse), methods=["GET", "POST"]),
            Route("/v1/mcp/{gid}/messages", AsgiEndpoint(self.sse_message), methods=["POST"]),
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
                errors=(*checked, 406, 413, 415, 429, 503),
                error_type=McpError,
                description=f"{accept} An `initialize` without a session is refused with 429 (too many new or open "
                "sessions from this client) or 503 (every session busy), with `Retry-After`.",
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
                "Plain JSON-RPC: one request (or a batch) answered as JSON",
                "mcp",
                body=PlainJsonRpcBody,
                response=JsonRpcReply | list[JsonRpcReply],
                params=(*GATEWAY_PARAMS, SESSION_HEADER, VERSION_HEADER),
                replies=(Reply(202, "Only notifications: nothing to answer"),),
                errors=(*checked, 404, 413, 415),
                error_type=McpError,
                description="Sessionless unless the client wants one: an `initialize` answer names a session in its "
                "`Mcp-Session-Id` header, and later POSTs carrying it are served and tracked as that client. An "
                "unknown or expired session id is 404 (a JSON-RPC error): start over with `initialize`.",
            ),
            Operation(
                "GET",
                "/v1/mcp/sse",
                "SSE transport: an `endpoint` event naming where to POST messages, then the server's messages",
                "mcp",
                response=str,
                content_type=sse,
                params=GATEWAY_PARAMS,
                errors=(*checked, 429, 503),
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
                    Param("session_id", "query", "The session the `endpoint` event named", SseSessionId, required=True),
                ),
                errors=(*checked, 413),
                error_type=McpError,
                description="The answer comes on the SSE stream. A body that is not one JSON-RPC message is 400.",
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
        session_id = request.headers.get("mcp-session-id")
        if (forwarder := self.forwarder) is not None:
            if session_id is None:
                send = ClaimingSend(send, forwarder.owners)
            elif await forwarder.forward_if_elsewhere(session_id, scope, receive, send):
                return
        if session_id is not None and (session := self.sessions.started(session_id, stream=request.method == "GET")):
            watched = _StatusOf(send) if request.method == "DELETE" else None
            try:
                await runtime.session_manager.handle_request(scope, receive, JsonErrors(watched or send))
            finally:
                ended = watched is not None and watched.status in _SESSION_GONE  # deleted, or unknown to the SDK
                self.sessions.ended(session, stream=request.method == "GET", deleted=ended)
        elif request.method == "POST" and session_id is None and self._inline_modern and is_modern(scope):
            body, errors = await read_body(request, self._settings.max_body_bytes), JsonErrors(send)
            if not await serve_modern_post(runtime, request, body, errors):  # declined: nothing was sent
                await runtime.session_manager.handle_request(scope, _replay(body, receive), errors)
        elif request.method == "POST" and session_id is None and opens_session(scope):
            receive = _replay(await read_body(request, MAX_OPENING_BODY_BYTES), receive)
            reservation = await self.sessions.reserve(_client_of(request))
            host = request.headers.get("host", "").encode("latin-1")
            try:
                send = OpeningSend(send, reservation, lambda opened: _session_ender(runtime, opened, host))
                await runtime.session_manager.handle_request(scope, receive, JsonErrors(send))
            finally:
                reservation.release()
        else:
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
        session_id = request.headers.get("mcp-session-id")
        forwarder = self.forwarder
        if forwarder is not None and session_id is not None:
            if await forwarder.forward_if_elsewhere(session_id, scope, receive, send):
                return
        body = await read_body(request, self._settings.max_body_bytes)
        response = await answer_jsonrpc_post(runtime, request, body, self.jsonrpc_sessions, _client_of(request))
        if forwarder is not None and (opened := response.headers.get("mcp-session-id")) is not None:
            await forwarder.owners.claim(opened)  # before the client learns it: its next POST may reach another process
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
            reservation = await self.sessions.reserve(_client_of(request))
            # An SSE session lives as long as its stream; eviction ends it as a client's disconnect would.
            evictable, response = EvictableReceive(receive), CompletableSend(send)
            session = reservation.fill(uuid.uuid4().hex, evictable.evict, streams=1)
            try:
                lowlevel = runtime.lowlevel
                async with runtime.sse.connect_sse(scope, evictable, JsonErrors(response)) as (reader, writer):
                    await lowlevel.run(reader, writer, lowlevel.create_initialization_options())
            finally:
                self.sessions.forget(session)
            if evictable.evicted:
                await response.complete()
        finally:
            self.sse_limiter.release(client_ip)

    async def sse_message(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime = await self._resolve(request, request.path_params["gid"])
        session_id = request.query_params.get("session_id")
        if session_id is None or not _SSE_SESSION_ID.fullmatch(session_id):
            raise ApiError(400, "session_id must be the id the endpoint event named (a UUID)", field="session_id")
        if self.forwarder is not None and await self.forwarder.forward_if_elsewhere(
            session_id.lower(), scope, receive, send
        ):
            return
        body = await read_body(request, self._settings.max_body_bytes)
        try:
            jsonrpc_message_adapter.validate_json(body, by_name=False)
        except ValidationError:  # the SDK would log it with a traceback quoting the body
            logger.debug("SSE message endpoint: a body that is not one JSON-RPC message (400)")
            raise ApiError(400, "Body is not a JSON-RPC message", field="body") from None
        await runtime.sse.handle_post_message(scope, _replay(body, receive), JsonErrors(send))


_SESSION_GONE: Final = (200, 204, 404)
"""Answers to a DELETE after which the SDK holds no such session."""


class _StatusOf:
    """Wraps `send` to note the status answered."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def _client_of(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


def _session_ender(runtime: GatewayRuntime, session_id: str, host: bytes) -> Closer:
    """Ends a Streamable HTTP session as its client would, with the SDK's own DELETE (the Host of the request that
    opened it passes the transport's check again); the session manager forgets it before this returns."""

    async def end() -> None:
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": MCP_PATH,
            "raw_path": MCP_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", host), (b"mcp-session-id", session_id.encode())],
            "client": None,
            "server": None,
        }
        await runtime.session_manager.handle_request(scope, _no_body, _discard)

    return end


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    pass
