"""MCP sessions across gateway processes: each request reaches the process that holds its session.

An MCP session (an SSE connection, a Streamable HTTP session) lives in the memory of the process that opened
it. With several processes on one PostgreSQL database (`serve --workers N`, or processes behind a load
balancer on one host), a session's next request may reach another process. So each such process:

- listens on a private Unix socket as well (`PrivateListener`, in a folder only its user may enter);
- records each session it opens in `mcp_session_owners` (`SessionOwners.claim`) before the client learns
  the session's id, so any process that gets a request for it can look up where it lives;
- forwards a request for a session it does not hold to its owner's socket (`forward`), streaming the answer
  back (an SSE stream included), marked so the owner never forwards it again.

An owner on another host cannot be reached this way: that request is answered 404 with a message saying so
(route such clients to one host by their session id). An owner that is gone (its socket refuses) loses its
row, and the request gets the SDK's own answer for an unknown session.
"""

from __future__ import annotations

import collections
import contextlib
import getpass
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import anyio
import httpx
import uvicorn
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store import Store
from ..web import ApiError

logger = logging.getLogger(__name__)

FORWARDED_HEADER: Final = "x-mcp-gateway-forwarded"
"""Set on a forwarded request: the receiving process answers it itself."""

REMEMBERED_SESSIONS: Final = 100_000
"""Sessions a process remembers having opened, so their requests skip the database."""

_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}
)


def private_folder() -> Path:
    """Where this user's gateway processes put their sockets: a folder only they may enter."""
    folder = Path(tempfile.gettempdir()) / f"mcp-gateway-{getpass.getuser()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


class SessionOwners:
    """`mcp_session_owners`: which process (host and socket) holds each live session."""

    def __init__(self, store: Store, address: str) -> None:
        self._store = store
        self.address = address
        """`<host>|<socket path>` of this process."""
        self._mine: collections.OrderedDict[str, None] = collections.OrderedDict()
        """The sessions this process claimed lately: their requests need no look-up (session ids are unique)."""

    async def claim(self, session_id: str) -> None:
        self._mine[session_id] = None
        if len(self._mine) > REMEMBERED_SESSIONS:
            self._mine.popitem(last=False)  # an older one's requests look it up again
        await self._store.execute_now(
            "INSERT INTO mcp_session_owners (session_id, owner, created_at_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, created_at_ms = excluded.created_at_ms",
            (session_id, self.address, int(time.time() * 1000)),
        )

    async def owner(self, session_id: str) -> str | None:
        if session_id in self._mine:
            return self.address
        rows = await self._store.fetch("SELECT owner FROM mcp_session_owners WHERE session_id = ?", (session_id,))
        return str(rows[0][0]) if rows else None

    async def forget(self, session_id: str, owner: str) -> None:
        await self._store.execute_now(
            "DELETE FROM mcp_session_owners WHERE session_id = ? AND owner = ?", (session_id, owner)
        )

    async def release_all(self) -> None:
        """Forget every session of this process (it is stopping; its sessions end with it)."""
        await self._store.execute_now("DELETE FROM mcp_session_owners WHERE owner = ?", (self.address,))


class _SignalFreeServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the process's main server; the app's lifespan stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def private_listener(app: ASGIApp) -> AsyncIterator[Path]:
    """Serve `app` on a new Unix socket in `private_folder()` for as long as the block runs; the socket's path."""
    path = private_folder() / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
    # No log options: uvicorn.Config applies them to the whole process, and the main server has set them.
    config = uvicorn.Config(app, uds=str(path), lifespan="off", log_config=None, log_level=None)
    server = _SignalFreeServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.01)
        try:
            yield path
        finally:
            server.should_exit = True
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def this_host() -> str:
    return socket.gethostname()


class Forwarder:
    """Forwards requests for sessions this process does not hold to the process that does."""

    def __init__(self, owners: SessionOwners) -> None:
        self.owners = owners
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def forward_if_elsewhere(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Forward the request to the process holding `session_id`, if that is another one: True when forwarded
        (and answered). False: this process answers (it holds the session, or nobody does)."""
        if Headers(scope=scope).get(FORWARDED_HEADER):
            return False
        owner = await self.owners.owner(session_id)
        if owner is None or owner == self.owners.address:
            return False
        host, _, path = owner.partition("|")
        if host != this_host():
            raise ApiError(
                404,
                f"Session {session_id[:64]} is held by a gateway process on host {host}: route a session's requests"
                " to one host (by its Mcp-Session-Id header or session_id parameter)",
            )
        try:
            await self._forward(path, scope, receive, send)
        except httpx.TransportError:  # the owner is gone; so is its session
            logger.warning("the process holding MCP session %s is gone (%s)", session_id[:64], path)
            await self.owners.forget(session_id, owner)
            return False
        return True

    def _client(self, path: str) -> httpx.AsyncClient:
        client = self._clients.get(path)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=path)
            client = self._clients[path] = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30, read=None))
        return client

    async def _forward(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        headers.append((FORWARDED_HEADER.encode(), b"1"))
        host = Headers(scope=scope).get("host", "localhost")
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{host}{scope.get('raw_path', scope['path'].encode()).decode('latin-1')}"
        client = self._client(path)
        request = client.build_request(
            scope["method"], url + (f"?{query}" if query else ""), headers=headers, content=_body(receive)
        )
        response = await client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.decode().lower() not in _HOP_BY_HOP],
                }
            )
            async with anyio.create_task_group() as tg:

                async def stop_on_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(stop_on_disconnect)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            await response.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


_SSE_SESSION: Final = re.compile(rb"session_id=([0-9a-f]{32})")


class ClaimingSend:
    """Wraps `send` for a request that may open a session: the response that first names the new session (the
    `Mcp-Session-Id` header of an `initialize` answer, or the `session_id` of an SSE `endpoint` event) waits
    until the session is claimed, so the client cannot send its next request anywhere before that."""

    def __init__(self, send: Send, owners: SessionOwners) -> None:
        self._send = send
        self._owners = owners
        self._claimed = False

    async def __call__(self, message: Message) -> None:
        if not self._claimed:
            session_id: str | None = None
            if message["type"] == "http.response.start":
                session_id = Headers(raw=message.get("headers", [])).get("mcp-session-id")
            elif message["type"] == "http.response.body" and (found := _SSE_SESSION.search(message.get("body", b""))):
                session_id = found.group(1).decode()
            if session_id is not None:
                self._claimed = True
                await self._owners.claim(session_id)
        await self._send(message)
