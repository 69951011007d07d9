"""Plain JSON-RPC over one HTTP POST: the seed's curl call, answered through the SDK's kernel.

`POST /v1/mcp/sse` with `Content-Type: application/json` and no session gets its JSON-RPC reply
as `application/json`. Each request runs through the SDK's single-exchange entry point
(`serve_one`: the same handler kernel, middleware chain and result serialisation every SDK
transport uses) on a born-ready connection, without the per-request session, task group and
memory streams a stateless Streamable HTTP exchange costs. Batches (a JSON array) are answered
as arrays; notifications are acknowledged with 202.

A request is served at the latest handshake revision unless its `_meta` carries a 2026-07-28
envelope (protocol version, client info, capabilities), which is then honoured.

An `initialize` opens a session (`jsonrpc_sessions.py`): its answer names it in an `Mcp-Session-Id` header,
and a later POST carrying that header is served as the client that initialized, at the revision negotiated,
and tracked in that client's session. An unknown or expired id is answered 404 with a JSON-RPC error (start
over with `initialize`), as Streamable HTTP answers one; a body holding an `initialize` is served whatever its
header says. In a batch, the requests after an `initialize` belong to the session it opened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from mcp.server.connection import Connection
from mcp.server.runner import modern_error_data, serve_one
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp.shared.message import MessageMetadata, ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp.types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    JSONRPCRequest,
    RequestId,
)
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from mcp_gateway_tracking.privacy import exceeds
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .jsonrpc_sessions import JsonRpcSession, JsonRpcSessions
from .runtime import GatewayRuntime
from .session_limits import MAX_OPENING_BODY_BYTES

MAX_BATCH: Final = 100
"""Most requests one batch may carry."""

TRANSPORT_KIND: Final = "jsonrpc-post"

SESSION_HEADER: Final = "mcp-session-id"
_INITIALIZE: Final = "initialize"


@dataclass
class _PostDispatchContext:
    """`DispatchContext` for one request in a POST: nothing can flow back but the reply."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        return None  # a plain POST has no stream to carry notifications

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


class _Reply(JSONResponse):
    """A JSON-RPC reply: compact, and ASCII-escaped, so text the client sent that UTF-8 cannot encode
    (a lone surrogate echoed in an error) is still a valid reply, never a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _error(request_id: RequestId | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _connection_for(params: Mapping[str, Any] | None, header_version: str | None) -> Connection:
    meta = (params or {}).get("_meta")
    if isinstance(meta, Mapping) and meta.get(PROTOCOL_VERSION_META_KEY) in MODERN_PROTOCOL_VERSIONS:
        return Connection.from_envelope(
            meta[PROTOCOL_VERSION_META_KEY], meta.get(CLIENT_INFO_META_KEY), meta.get(CLIENT_CAPABILITIES_META_KEY)
        )
    version = header_version if header_version in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
    return Connection.from_envelope(version, None, None)


def _session_connection(session: JsonRpcSession) -> Connection:
    """A born-ready connection of `session`: its client, at its revision, under its id."""
    connection = Connection.from_envelope(session.protocol_version, None, None)
    connection.client_params = session.client_params
    connection.session_id = session.session_id
    return connection


@dataclass
class _Exchange:
    """One POST: the gateway, the sessions, and the session its requests belong to so far."""

    runtime: GatewayRuntime
    request: Request
    sessions: JsonRpcSessions | None
    client: str
    session: JsonRpcSession | None = None
    opened: str | None = None
    """The id of the session an `initialize` of this POST opened."""


async def _answer_one(exchange: _Exchange, message: Any) -> dict[str, Any] | None:
    request = exchange.request
    if isinstance(message, dict) and "method" in message and "id" not in message:
        return None  # a notification: nothing to answer, and nothing it could change without a session
    try:
        req = JSONRPCRequest.model_validate(message)
    except ValidationError:
        request_id = message.get("id") if isinstance(message, dict) else None
        valid_id = request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None
        return _error(valid_id, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 request object")
    dctx = _PostDispatchContext(
        transport=TransportContext(kind=TRANSPORT_KIND, can_send_request=False, headers=request.headers),
        request_id=req.id,
        message_metadata=ServerMessageMetadata(request_context=request),
    )
    opening = req.method == _INITIALIZE and exchange.sessions is not None
    if opening and exceeds(req.params, MAX_OPENING_BODY_BYTES):  # the session would keep it: bounded like /mcp's
        message = f"Invalid Request: initialize params larger than {MAX_OPENING_BODY_BYTES} characters"
        return _error(req.id, INVALID_REQUEST, message)
    if exchange.session is not None and not opening:
        connection = _session_connection(exchange.session)
    else:
        connection = _connection_for(req.params, request.headers.get("mcp-protocol-version"))
        if opening:  # named before it runs, so tracking files the handshake under the session it opens
            connection.session_id = JsonRpcSessions.new_id()
    try:
        result = await serve_one(
            exchange.runtime.lowlevel,
            dctx,
            req.method,
            req.params,
            connection=connection,
            lifespan_state=exchange.runtime.lifespan_state,
        )
    except Exception as exc:
        error = modern_error_data(exc)
        return {"jsonrpc": "2.0", "id": req.id, "error": error.model_dump(mode="json", exclude_none=True)}
    if opening and exchange.sessions is not None and connection.client_params is not None and connection.session_id:
        exchange.session = exchange.sessions.open(
            connection.session_id,
            gateway_id=exchange.runtime.gateway_id,
            client=exchange.client,
            client_params=connection.client_params,
            protocol_version=connection.protocol_version,
        )
        exchange.opened = connection.session_id
    return {"jsonrpc": "2.0", "id": req.id, "result": result}


def _initializes(decoded: Any) -> bool:
    messages = decoded if isinstance(decoded, list) else [decoded]
    return any(isinstance(m, dict) and m.get("method") == _INITIALIZE for m in messages)


def _session_not_found() -> Response:
    """The SDK's Streamable HTTP answer to an unknown session: 404, a JSON-RPC error without an id."""
    return _Reply(_error(None, INVALID_REQUEST, "Session not found"), status_code=404)


async def answer_jsonrpc_post(
    runtime: GatewayRuntime,
    request: Request,
    body: bytes,
    sessions: JsonRpcSessions | None = None,
    client: str = "unknown",
) -> Response:
    """The HTTP response to a plain JSON-RPC POST whose body is `body`; with `sessions`, `initialize` opens one
    (for `client`, the address limits count by) and the `Mcp-Session-Id` header joins one."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return _Reply(_error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"), status_code=400)
    exchange = _Exchange(runtime, request, sessions, client)
    if sessions is not None and (session_id := request.headers.get(SESSION_HEADER)) is not None:
        exchange.session = sessions.get(session_id, runtime.gateway_id)
        if exchange.session is None and not _initializes(decoded):
            return _session_not_found()
    response = await _answer(exchange, decoded)
    if exchange.opened is not None:
        response.headers["Mcp-Session-Id"] = exchange.opened
    return response


async def _answer(exchange: _Exchange, decoded: Any) -> Response:
    if isinstance(decoded, list):
        if not decoded or len(decoded) > MAX_BATCH:
            message = f"Invalid Request: a batch holds 1 to {MAX_BATCH} requests"
            return _Reply(_error(None, INVALID_REQUEST, message), status_code=400)
        replies = [reply for item in decoded if (reply := await _answer_one(exchange, item)) is not None]
        return _Reply(replies) if replies else Response(status_code=202)
    reply = await _answer_one(exchange, decoded)
    if reply is None:
        return Response(status_code=202)
    status = ERROR_CODE_HTTP_STATUS.get(reply["error"]["code"], 200) if "error" in reply else 200
    return _Reply(reply, status_code=status)
