"""The 2026-07-28 revision's POST (sessionless Streamable HTTP), served in the request's own task.

The SDK's entry for it (`handle_modern_request`), in its default SSE mode, runs every request's handler as a
sibling task in a task group, with a memory stream and a disconnect watcher, so that it can still switch to
`text/event-stream` when the handler emits a notification or runs past 15 s. That machinery costs more than the
handler of a typical call: a plain SDK server answers `tools/call echo` in ~360 µs of CPU this way and in ~200 µs
in JSON mode, which skips it (`bench/mcp_throughput.py`).

`serve_modern_post` serves the same exchange with the same SDK pieces — `serve_one`, the inbound classifier, the
`Mcp-Param-*` check, the reply writer, the SSE framing — without that machinery: the handler runs in the request's
task; its first notification commits `text/event-stream` and is written at once; a handler that completes without
one gets the JSON reply with the table-mapped status, as the SDK's does. Only a handler still running after the
SDK's window starts a watcher task, which commits the stream, pings every window, and cancels the handler when the
client disconnects, as the SDK's does.

A request it does not serve — not a POST, an Accept or Content-Type the SDK refuses, a body that is not one
JSON-RPC request, a routing header the classifier rejects, `subscriptions/listen`, JSON-response mode — is declined
before anything is written, and the caller hands it to the SDK's own entry with its body replayed, so every
rejection is the SDK's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from mcp.server._streamable_http_modern import (  # the SDK's own wire rules for this revision (mcp is pinned)
    _SSE_HEADERS,
    _mcp_param_rejection,
    _sse_event,
    _to_jsonrpc_response,
    _write,
)
from mcp.server.connection import Connection
from mcp.server.runner import serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import (
    InboundLadderRejection,
    _annotated_positions,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.shared.message import MessageMetadata, ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp.types import JSONRPCNotification, JSONRPCRequest, ProgressToken, RequestId
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Send

from .inline_sse import InlineSse, Keepalive
from .runtime import GatewayRuntime

_LISTEN: Final = "subscriptions/listen"
"""Answered only as an event stream: left to the SDK."""


@dataclass
class _InlineDispatchContext:
    """`DispatchContext` for one 2026-07-28 request: no back channel (the revision has none); notifications and
    progress go onto the request's own response, which the first of them turns into an event stream."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    stream: InlineSse
    progress_token: ProgressToken | None = None
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        body = dict(params) if params is not None else None
        await self.stream.event(_sse_event(JSONRPCNotification(jsonrpc="2.0", method=method, params=body)))

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)


def _request_of(request: Request, body: bytes) -> tuple[JSONRPCRequest, dict[str, Any]] | None:
    """The JSON-RPC request in `body` (a POST's) if this entry serves it, with its decoded form; None to leave it to
    the SDK."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None
    if check_accept_headers(request) != (True, True):
        return None
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict) or "id" not in decoded:  # a notification, a batch, not an object
        return None
    try:
        req = JSONRPCRequest.model_validate(decoded)
    except ValidationError:
        return None
    if req.method == _LISTEN or find_duplicated_routing_header(request.headers.items()) is not None:
        return None
    return req, decoded


async def serve_modern_post(runtime: GatewayRuntime, request: Request, body: bytes, send: Send) -> bool:
    """Serve the 2026-07-28 POST `request`, whose body `body` was read; False, with nothing sent, to leave it to the
    SDK's entry (`handle_modern_request`), which then answers it (the body replayed)."""
    parsed = _request_of(request, body)
    if parsed is None:
        return False
    req, decoded = parsed
    verdict = classify_inbound_request(decoded, headers=dict(request.headers.items()))  # one pass over the headers
    if isinstance(verdict, InboundLadderRejection):
        return False
    app, state = runtime.lowlevel, runtime.lifespan_state
    if _may_declare_header_params(runtime, req) and await _mcp_param_rejection(app, request, req, verdict, state):
        return False
    stream = InlineSse(send, _SSE_HEADERS)
    dctx = _InlineDispatchContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
        request_id=req.id,
        message_metadata=ServerMessageMetadata(request_context=request),
        stream=stream,
        progress_token=progress_token_from_params(req.params),
    )
    connection = Connection.from_envelope(verdict.protocol_version, verdict.client_info, verdict.client_capabilities)
    scope, receive = request.scope, request.receive
    with anyio.CancelScope() as serving:
        keepalive = Keepalive(stream, receive, serving)
        try:
            reply = await _to_jsonrpc_response(
                req.id, serve_one(app, dctx, req.method, req.params, connection=connection, lifespan_state=state)
            )
        finally:
            keepalive.stop()
        if stream.committed or keepalive.started:
            await stream.event(_sse_event(reply), last=True)
        else:
            await _write(reply, scope, receive, send)
    return True


def _may_declare_header_params(runtime: GatewayRuntime, req: JSONRPCRequest) -> bool:
    """False when `req` is a `tools/call` of a tool whose input schema declares no `x-mcp-header` parameter: the
    SDK's `Mcp-Param-*` check (a walk of the schema on every call) then has nothing to compare. Known per tool and
    schema object, as the server looked it up last."""
    lookup = runtime.lowlevel.get_tool_input_schema
    name = (req.params or {}).get("name")
    if req.method != "tools/call" or lookup is None or not isinstance(name, str):
        return True
    try:
        schema = lookup(name)
    except Exception:  # the SDK's check logs it and lets the call through
        return True
    if schema is None:
        return True
    known = runtime.header_params.get(name)
    if known is None or known[0] is not schema:
        known = runtime.header_params[name] = (schema, next(_annotated_positions(schema), None) is not None)
    return known[1]
