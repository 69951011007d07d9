"""The Agnost-compatible ingestion API, as seed 003 documents it, plus a batch form.

    POST /api/v1/capture-session   CaptureSession -> 200 {"session_id"}
    POST /api/v1/capture-event     CaptureEvent   -> 200 {"success": true, "event_id"}
    POST /api/v1/capture-batch     CaptureBatch   -> 200 {"success": true, "sessions": [...], "events": [...]}

`X-Org-Id` carries a key of kind `org`, which names the gateway: missing or unknown -> 401. A bad
body -> 400 naming the field; an event whose session is unknown -> 404 (in a batch, that event's
status is `unknown_session` and the rest are stored). A 200 means the rows are committed. The same
`event_id` twice stores one event and answers the same id (`"status": "duplicate"` in a batch).
"""

from __future__ import annotations

from typing import Final, Literal

from mcp_gateway_tracking.wire import CaptureBatch, CaptureEvent, CaptureSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from typing_extensions import TypedDict

from ..keys import KeyService
from ..openapi import Operation
from ..store import CaptureStatus, KeyKind
from ..web import ApiError, read_model
from .capture import Ingestor

ORG_HEADER: Final = "x-org-id"
ORG_KINDS: Final[tuple[KeyKind, ...]] = ("org",)
BATCH_BODY_FACTOR: Final = 8
"""A batch may be this many times the single-request body limit."""


class SessionCaptured(TypedDict):
    session_id: str


class EventCaptured(TypedDict):
    success: Literal[True]
    event_id: str


class SessionStatus(TypedDict):
    session_id: str
    status: CaptureStatus


class EventStatus(TypedDict):
    event_id: str
    status: CaptureStatus


class BatchCaptured(TypedDict):
    success: Literal[True]
    sessions: list[SessionStatus]
    events: list[EventStatus]


class AgnostApi:
    def __init__(self, keys: KeyService, ingestor: Ingestor, *, max_body_bytes: int) -> None:
        self._keys = keys
        self._ingestor = ingestor
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/capture-session", self.capture_session, methods=["POST"]),
            Route("/api/v1/capture-event", self.capture_event, methods=["POST"]),
            Route("/api/v1/capture-batch", self.capture_batch, methods=["POST"]),
        ]

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "POST",
                "/api/v1/capture-session",
                "Record an MCP client session (Agnost's capture-session)",
                "ingest",
                security="org",
                body=CaptureSession,
                response=SessionCaptured,
                errors=(400, 413, 415),
            ),
            Operation(
                "POST",
                "/api/v1/capture-event",
                "Record one tool, resource or prompt call of a captured session",
                "ingest",
                security="org",
                body=CaptureEvent,
                response=EventCaptured,
                errors=(400, 404, 413, 415),
                description="404 when the event's session was not captured first.",
            ),
            Operation(
                "POST",
                "/api/v1/capture-batch",
                "Record sessions, then events, in one request",
                "ingest",
                security="org",
                body=CaptureBatch,
                response=BatchCaptured,
                errors=(400, 413, 415),
                description="Each item answers its own status; an event of an unknown session is `unknown_session`.",
            ),
        ]

    async def _gateway_id(self, request: Request) -> str:
        org_id = request.headers.get(ORG_HEADER, "").strip()
        if not org_id:
            raise ApiError(401, "Missing X-Org-Id header", field="X-Org-Id")
        key = await self._keys.resolve(org_id, ORG_KINDS)
        if key is None:
            raise ApiError(401, "Unknown organization id", field="X-Org-Id")
        return key.gateway_id

    async def capture_session(self, request: Request) -> JSONResponse:
        gateway_id = await self._gateway_id(request)
        session = await read_model(request, CaptureSession, limit=self._max_body_bytes)
        await self._ingestor.capture(gateway_id, CaptureBatch(sessions=[session]))
        return JSONResponse(SessionCaptured(session_id=session.session_id))

    async def capture_event(self, request: Request) -> JSONResponse:
        gateway_id = await self._gateway_id(request)
        event = await read_model(request, CaptureEvent, limit=self._max_body_bytes)
        outcome = await self._ingestor.capture(gateway_id, CaptureBatch(events=[event]))
        event_id, status = outcome.events[0]
        if status == "unknown_session":
            raise ApiError(404, "Session not found: capture the session first", field="session_id")
        return JSONResponse(EventCaptured(success=True, event_id=event_id))

    async def capture_batch(self, request: Request) -> JSONResponse:
        gateway_id = await self._gateway_id(request)
        batch = await read_model(request, CaptureBatch, limit=self._max_body_bytes * BATCH_BODY_FACTOR)
        outcome = await self._ingestor.capture(gateway_id, batch)
        return JSONResponse(
            BatchCaptured(
                success=True,
                sessions=[SessionStatus(session_id=sid, status=status) for sid, status in outcome.sessions],
                events=[EventStatus(event_id=eid, status=status) for eid, status in outcome.events],
            )
        )
