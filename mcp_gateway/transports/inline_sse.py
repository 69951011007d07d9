"""An event-stream response written from the request's own task, and the keepalive it may need.

The SDK answers a Streamable HTTP request as `text/event-stream` through machinery that costs more than the handler
of a typical call: sse-starlette's `EventSourceResponse` runs a task group of four tasks per response (the stream, a
ping every 15 s, a disconnect listener, the data sender) fed through a memory stream, and the 2026-07-28 entry runs
each handler as a sibling task with its own disconnect watcher. On this machine a plain SDK server spends ~540 µs of
CPU per session `tools/call echo` this way, ~200 µs in JSON-response mode, which skips it (`bench/mcp_throughput.py`).

`InlineSse` writes the same events straight to the ASGI `send` of the task that serves the request. `Keepalive`
gives it what the SDK's tasks give, only for a request still running after the SDK's 15 s: until then it is one
timer; after, a task that commits the stream, pings every 15 s, and cancels the request's work when the client
disconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import anyio
from starlette.types import Message, Receive, Send

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS: Final = 15.0
"""As the SDK's (sse-starlette's ping interval and the 2026-07-28 entry's deferral window)."""
PING: Final = b": ping\r\n\r\n"


class InlineSse:
    """One `text/event-stream` response, written by the task serving the request: nothing until `commit` (or the
    first event), then events, then the end. Once a `Keepalive` task exists, writes take turns through a lock;
    before that only the serving task writes."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._headers = headers
        self.committed = False
        self.ended = False
        self.lock: anyio.Lock | None = None

    async def commit(self) -> None:
        await self._write(None, last=False)

    async def event(self, chunk: bytes, *, last: bool = False) -> None:
        await self._write(chunk, last=last)

    async def end(self) -> None:
        """End the body, if no event did (a stream closed without its reply)."""
        if not self.ended:
            await self._write(b"", last=True)

    async def _write(self, chunk: bytes | None, *, last: bool) -> None:
        if self.lock is None:
            await self._write_now(chunk, last)
        else:
            async with self.lock:
                await self._write_now(chunk, last)

    async def _write_now(self, chunk: bytes | None, last: bool) -> None:
        if self.ended:
            return
        if not self.committed:
            self.committed = True
            await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})
        if chunk is not None:
            self.ended = last
            await self._send({"type": "http.response.body", "body": chunk, "more_body": not last})


class Keepalive:
    """For a request still being served after `KEEPALIVE_SECONDS`: a task that commits `stream`, pings it every
    `KEEPALIVE_SECONDS`, and cancels `serving` (the scope of the request's work) when the client disconnects.
    Until then, one timer. `stop()` when the work is done."""

    def __init__(self, stream: InlineSse, receive: Receive, serving: anyio.CancelScope) -> None:
        self._stream = stream
        self._receive = receive
        self._serving = serving
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._start)

    @property
    def started(self) -> bool:
        return self._task is not None

    def _start(self) -> None:
        self._stream.lock = anyio.Lock()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            await self._stream.event(PING)
            while True:
                with anyio.move_on_after(KEEPALIVE_SECONDS):
                    message: Message = await self._receive()
                    if message["type"] == "http.disconnect":
                        break
                    continue
                await self._stream.event(PING)
        except Exception:  # the connection is gone under us: as a disconnect
            logger.debug("keepalive: the response could not be written", exc_info=True)
        self._serving.cancel()
