"""A fake Agnost backend on a real loopback socket, served by uvicorn in the test's own event loop.

It speaks the seed's routes (`/api/v1/capture-session`, `/api/v1/capture-event`) and, unless
told otherwise, our `/api/v1/capture-batch`; it answers events of unknown sessions with 404 as the
seed says, and can be made to fail: `error` (500), `slow` (5 s, then 503, recording nothing),
`reject` (400) or `rate_limited` (429 with `Retry-After` for the next `rate_limit_count` requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import anyio
import uvicorn
from mcp_gateway_tracking import CaptureBatch, CaptureEvent, CaptureSession
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Mode = Literal["up", "error", "slow", "reject", "rate_limited"]

SLOW_SECONDS: Final = 5.0
WAIT_TIMEOUT: Final = 10.0
"""Longest a test waits for the backend to receive what it expects."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    status: int
    org: str | None


class _Server(uvicorn.Server):
    """uvicorn that tells when it is listening and leaves the process's signal handlers alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


@dataclass
class FakeBackend:
    port: int = field(default_factory=free_port)
    batch_route: bool = True
    mode: Mode = "up"
    retry_after: str = "1"
    rate_limit_count: int = 1
    sessions: dict[str, CaptureSession] = field(default_factory=dict)
    events: dict[str, CaptureEvent] = field(default_factory=dict)
    orphans: int = 0
    """Events that arrived before their session."""
    hits: list[Hit] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: _Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits_on(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    def events_named(self, name: str) -> list[CaptureEvent]:
        return [event for event in self.events.values() if event.primitive_name == name]

    # -- serving ------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/api/v1/capture-session", self._session, methods=["POST"]),
            Route("/api/v1/capture-event", self._event, methods=["POST"]),
        ]
        routes.append(
            Route("/api/v1/capture-batch", self._batch if self.batch_route else self._no_batch, methods=["POST"])
        )
        return Starlette(routes=routes)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve())
        with anyio.fail_after(WAIT_TIMEOUT):
            await self._server.ready.wait()
        assert self._server.started, "the fake backend did not start"

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with anyio.fail_after(WAIT_TIMEOUT):
            await self._task
        self._server = self._task = None

    async def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until `condition()` holds, re-checking whenever a request arrives."""
        with anyio.fail_after(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    # -- routes -----------------------------------------------------------------------------------------

    async def _answer(self, request: Request, store: Callable[[Any], Response]) -> Response:
        org = request.headers.get("x-org-id")
        response = await self._misbehave()
        if response is None:
            if not org:
                response = JSONResponse({"detail": "X-Org-Id required"}, status_code=401)
            else:
                try:
                    response = store(await request.json())
                except ValidationError:
                    response = JSONResponse({"detail": "invalid body"}, status_code=400)
        self.hits.append(Hit(time.monotonic(), request.url.path, response.status_code, org))
        self._changed.set()
        return response

    async def _misbehave(self) -> Response | None:
        if self.mode == "error":
            return JSONResponse({"detail": "boom"}, status_code=500)
        if self.mode == "reject":
            return JSONResponse({"detail": "no"}, status_code=400)
        if self.mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
            return JSONResponse({"detail": "too late"}, status_code=503)
        if self.mode == "rate_limited":
            self.rate_limit_count -= 1
            if self.rate_limit_count <= 0:
                self.mode = "up"
            return JSONResponse({"detail": "slow down"}, status_code=429, headers={"Retry-After": self.retry_after})
        return None

    def _keep_session(self, body: Any) -> Response:
        session = CaptureSession.model_validate(body)
        self.sessions[session.session_id] = session
        return JSONResponse({"session_id": session.session_id})

    def _keep_event(self, body: Any) -> Response:
        event = CaptureEvent.model_validate(body)
        if event.session_id not in self.sessions:
            return JSONResponse({"detail": "session not found"}, status_code=404)
        assert event.event_id is not None
        self.events[event.event_id] = event
        return JSONResponse({"success": True, "event_id": event.event_id})

    async def _session(self, request: Request) -> Response:
        return await self._answer(request, self._keep_session)

    async def _event(self, request: Request) -> Response:
        return await self._answer(request, self._keep_event)

    async def _no_batch(self, request: Request) -> Response:
        """A plain Agnost backend: no such route."""
        response = JSONResponse({"detail": "Not Found"}, status_code=404)
        self.hits.append(Hit(time.monotonic(), request.url.path, response.status_code, request.headers.get("x-org-id")))
        self._changed.set()
        return response

    async def _batch(self, request: Request) -> Response:
        def keep(body: Any) -> Response:
            batch = CaptureBatch.model_validate(body)
            for session in batch.sessions:
                self.sessions[session.session_id] = session
            for event in batch.events:
                if event.session_id not in self.sessions:
                    self.orphans += 1
                assert event.event_id is not None
                self.events[event.event_id] = event
            return JSONResponse({"sessions": len(batch.sessions), "events": len(batch.events)})

        return await self._answer(request, keep)
