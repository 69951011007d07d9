"""The SDK's Streamable HTTP session manager, with each session's request POSTs answered from the request's task.

A session's POST carrying a request is answered as `text/event-stream` (the request's notifications and the
server's requests to the client, then its reply). The SDK's transport builds that answer with sse-starlette's
`EventSourceResponse`, four tasks and two memory streams per POST: ~340 µs of the ~540 µs of CPU a plain SDK
server spends per session `tools/call echo` here, against ~200 µs in JSON-response mode (see `inline_sse.py`).

`InlineSseTransport` keeps the SDK's transport whole — the session, its dispatcher and message router, the
`initialize` exchange, notifications, responses, GET and DELETE, every check and error — and changes one thing:
the events routed to a request's stream are written by the POST's own task with `InlineSse`, framed by the same
sse-starlette `ServerSentEvent`, with `Keepalive` for a request that runs past 15 s. A POST it does not take that
way (anything but a well-formed request in an established session, an event store for resumability, JSON-response
mode) is served by the SDK's code unchanged.

`InlineSseSessionManager` is the SDK's manager making its sessions' transports of that class.
"""

from __future__ import annotations

import functools
import logging
from typing import Final
from uuid import uuid4

import anyio
import pydantic_core
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import (
    CONTENT_TYPE_SSE,
    MCP_SESSION_ID_HEADER,
    REQUEST_STREAM_BUFFER_SIZE,
    EventMessage,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.types import DEFAULT_NEGOTIATED_VERSION, JSONRPCError, JSONRPCRequest, JSONRPCResponse, jsonrpc_message_adapter
from pydantic import ValidationError
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .inline_sse import InlineSse, Keepalive

logger = logging.getLogger(__name__)

_INITIALIZE: Final = "initialize"


class InlineSseTransport(StreamableHTTPServerTransport):
    """The SDK's Streamable HTTP transport for one session, answering its request POSTs with `InlineSse`."""

    async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        writer = self._read_stream_writer
        message = await self._plain_request(request) if writer is not None else None
        if writer is None or message is None:  # the SDK's own code reads the body Starlette has kept
            await super()._handle_post_request(scope, request, receive, send)
            return
        if not await self._validate_request_headers(request, send):
            return
        request_id = str(message.id)
        send_stream, events = anyio.create_memory_object_stream[EventMessage](REQUEST_STREAM_BUFFER_SIZE)
        self._request_streams[request_id] = (send_stream, events)
        protocol_version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
        stream = InlineSse(send, self._sse_headers)
        with anyio.CancelScope() as serving:
            keepalive = Keepalive(stream, receive, serving)
            try:
                await stream.commit()  # at once, as the SDK's response does
                await writer.send(self._create_session_message(message, request, request_id, protocol_version))
                async for event_message in events:
                    last = isinstance(event_message.message, JSONRPCResponse | JSONRPCError)
                    await stream.event(ServerSentEvent(**self._create_event_data(event_message)).encode(), last=last)
                    if last:
                        break
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):  # the session ended meanwhile
                logger.debug("session %s ended with request %s in flight", self.mcp_session_id, request_id)
            finally:
                keepalive.stop()
                await self._clean_up_memory_streams(request_id)
            await stream.end()  # when no reply ended it: the stream closed without one

    async def _plain_request(self, request: Request) -> JSONRPCRequest | None:
        """The request a POST carries, if this transport answers it inline; None leaves the POST to the SDK's code
        (which then reads the body again from Starlette's copy and answers any error)."""
        if self.is_json_response_enabled or self._event_store is not None or not self.mcp_session_id:
            return None
        if check_accept_headers(request) != (True, True) or not self._check_content_type(request):
            return None
        try:
            decoded = pydantic_core.from_json(await request.body())
            message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
        except (ValueError, ValidationError):
            return None
        if not isinstance(message, JSONRPCRequest) or message.method == _INITIALIZE:
            return None
        return message

    @functools.cached_property
    def _sse_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers the SDK's response carries (its own, and those sse-starlette adds), the same for every POST
        of the session."""
        assert self.mcp_session_id is not None
        return [
            (b"cache-control", b"no-cache, no-transform"),
            (b"connection", b"keep-alive"),
            (b"content-type", CONTENT_TYPE_SSE.encode()),
            (MCP_SESSION_ID_HEADER.encode(), self.mcp_session_id.encode()),
            (b"x-accel-buffering", b"no"),
        ]


class InlineSseSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, its sessions served by `InlineSseTransport`."""

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # The SDK's `_admit_session`, with the transport class changed.
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        http_transport = InlineSseTransport(
            mcp_session_id=uuid4().hex,
            is_json_response_enabled=self.json_response,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        session_id = http_transport.mcp_session_id
        assert session_id is not None
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = http_transport
        logger.info("Created new transport with session ID: %s", session_id)
        return http_transport
