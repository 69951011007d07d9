"""Who may open an MCP session, and which idle one makes room: admission in front of the SDK's session table.

The SDK's Streamable HTTP session manager holds at most `max_sessions` sessions and answers 503 to every new
one until one idles out (30 minutes by default), so one client sending `initialize` in a loop locked every other
client out. `SessionLimits` sits in front of it (`McpRoutes`), one per process, over both session transports:

- a client (its IP; an IPv6 /64) past `new_per_ip_per_minute` new sessions in a minute, or holding
  `max_per_ip` open ones, gets 429 with `Retry-After`;
- when the process holds `max_sessions`, the least recently active session with nothing in flight is ended
  (through the SDK's own `DELETE`, or by cancelling an SSE stream) so the new client gets in; sessions whose
  only request in flight is a stream (a GET stream, an SSE connection) go after every idle one, oldest
  activity first; when every session is serving a request, 503 with `Retry-After`.

The table follows the SDK's without reading it: a session is added when the answer that opens it names it,
and forgotten on DELETE, on eviction, or once idle for the SDK's idle timeout (which has ended it by then).
An established session's request costs two dict operations at its start and two at its end.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import anyio
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from ..ratelimit import FixedWindowLimiter
from ..web import ApiError

logger = logging.getLogger(__name__)

SESSION_RETRY_AFTER_SECONDS: Final = 10
"""What a client refused for lack of room (its own open-session cap, or a table of busy sessions) is told to wait."""

MAX_OPENING_BODY_BYTES: Final = 16 * 1024
"""Largest `initialize` (the body of a request that opens an MCP session; real clients send under 2 KiB): a
session keeps what its client said there for its whole life, so the cap on open sessions bounds memory only
with a cap on what each may hold (413 past it)."""

IPV6_CLIENT_PREFIX: Final = 64
"""IPv6 clients are counted per /64: one host usually holds a whole one and could rotate addresses within it."""

Closer = Callable[[], Awaitable[None]]
"""Ends one session (evicts it); returns once its transport has let go of it."""


def client_key(host: str | None) -> str:
    """What limits count a client by: its IPv4 address, its IPv6 /64, or the host as given when not an IP."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


@dataclass(slots=True, eq=False)
class TrackedSession:
    """One open session as the limits see it."""

    session_id: str
    client: str
    close: Closer
    last_active: float
    busy: int = 0
    """Requests in flight that are not streams."""
    streams: int = 0
    """Streams open: the Streamable HTTP GET stream, or the SSE connection itself."""


class Reservation:
    """A place in the table for a session being opened; `fill` it with the session, else `release` returns it."""

    def __init__(self, limits: SessionLimits, client: str) -> None:
        self._limits = limits
        self.client = client
        self._held = True

    def fill(self, session_id: str, close: Closer, *, streams: int = 0) -> TrackedSession:
        """The session this place was for: tracked from now on."""
        self.release()
        return self._limits._add(session_id, self.client, close, streams=streams)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limits._unreserve(self.client)


class SessionLimits:
    """The open MCP sessions of one process: admission of new ones, least-recently-active eviction."""

    def __init__(
        self,
        *,
        max_sessions: int,
        max_per_ip: int,
        new_per_ip_per_minute: int,
        idle_timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_per_ip = max_per_ip
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._new_sessions = FixedWindowLimiter(new_per_ip_per_minute, 60.0)
        self._sessions: dict[str, TrackedSession] = {}
        self._idle: collections.OrderedDict[str, TrackedSession] = collections.OrderedDict()
        """Sessions with nothing in flight, least recently active first."""
        self._per_client: collections.Counter[str] = collections.Counter()
        """Open and reserved sessions per client."""
        self._reserved = 0
        self.evicted = 0
        """Sessions ended to make room, since start."""

    def __len__(self) -> int:
        return len(self._sessions)

    async def reserve(self, client: str) -> Reservation:
        """A place for a new session of `client`, made by evicting when the table is full; 429 or 503 otherwise."""
        verdict = await self._new_sessions.hit(client)
        if not verdict.allowed:
            raise ApiError(
                429,
                f"Too many new MCP sessions: at most {verdict.limit} per minute per client",
                headers=verdict.headers(),
                retry_after=verdict.reset_seconds,
            )
        self._forget_expired()
        if self._per_client[client] >= self.max_per_ip:
            raise _refusal(429, f"Too many open MCP sessions: at most {self.max_per_ip} per client")
        victims: list[TrackedSession] = []
        while len(self._sessions) + self._reserved - len(victims) >= self.max_sessions:
            victim = self._least_recently_active(excluding=victims)
            if victim is None:
                raise _refusal(503, f"Too many open MCP sessions: {self.max_sessions}, all of them busy")
            victims.append(victim)
        for victim in victims:  # forgotten before any await, so concurrent openings pick other victims
            self._forget(victim)
        self._reserved += 1
        self._per_client[client] += 1
        reservation = Reservation(self, client)
        for victim in victims:
            self.evicted += 1
            logger.info("Ending the least recently active MCP session to make room for a new one")
            try:
                with anyio.CancelScope(shield=True):  # forgotten here already: it must end in the SDK too
                    await victim.close()
            except Exception:  # the SDK's own cap still stands behind this table
                logger.exception("Could not end an MCP session to make room")
        return reservation

    def started(self, session_id: str, *, stream: bool) -> TrackedSession | None:
        """A request of `session_id` begins; the session, if this process tracks it."""
        session = self._sessions.get(session_id)
        if session is not None:
            self._idle.pop(session_id, None)
            if stream:
                session.streams += 1
            else:
                session.busy += 1
        return session

    def ended(self, session: TrackedSession, *, stream: bool, deleted: bool = False) -> None:
        """A request `started` returned `session` for has ended (`deleted`: it was the client's DELETE)."""
        if stream:
            session.streams -= 1
        else:
            session.busy -= 1
        session.last_active = self._clock()
        if self._sessions.get(session.session_id) is not session:
            return  # evicted or forgotten meanwhile
        if deleted:
            self._forget(session)
        elif not session.busy and not session.streams:
            self._idle[session.session_id] = session

    def forget(self, session: TrackedSession) -> None:
        """`session` has ended (its stream closed)."""
        if self._sessions.get(session.session_id) is session:
            self._forget(session)

    def _add(self, session_id: str, client: str, close: Closer, *, streams: int) -> TrackedSession:
        session = TrackedSession(session_id, client, close, self._clock(), streams=streams)
        self._sessions[session_id] = session
        self._per_client[client] += 1
        if not streams:
            self._idle[session_id] = session
        return session

    def _unreserve(self, client: str) -> None:
        self._reserved -= 1
        self._uncount(client)

    def _forget(self, session: TrackedSession) -> None:
        del self._sessions[session.session_id]
        self._idle.pop(session.session_id, None)
        self._uncount(session.client)

    def _uncount(self, client: str) -> None:
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]

    def _forget_expired(self) -> None:
        """Forget the sessions the SDK has ended for being idle (the idle ones are in order of activity)."""
        if self.idle_timeout is None:
            return
        ended_before = self._clock() - self.idle_timeout
        while self._idle:
            session = next(iter(self._idle.values()))
            if session.last_active > ended_before:
                break
            self._forget(session)

    def _least_recently_active(self, excluding: list[TrackedSession]) -> TrackedSession | None:
        """The idle session active least recently, else the one with only streams open that was."""
        for session in self._idle.values():
            if session not in excluding:
                return session
        streaming = (s for s in self._sessions.values() if not s.busy and s not in excluding)
        return min(streaming, key=lambda s: s.last_active, default=None)


def is_modern(scope: Scope) -> bool:
    """Whether the SDK's session manager routes this request to its 2026-07-28 entry, which has no sessions: an
    `MCP-Protocol-Version` header naming no session-protocol revision."""
    for name, value in scope["headers"]:
        if name == b"mcp-protocol-version":
            return value.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
    return False


def opens_session(scope: Scope) -> bool:
    """Whether the SDK would give this Streamable HTTP request a new session: no `Mcp-Session-Id`, and not a
    2026-07-28 request."""
    return all(name != b"mcp-session-id" for name, _ in scope["headers"]) and not is_modern(scope)


class OpeningSend:
    """Wraps `send` for a request that opens a session: the answer naming the session (its `Mcp-Session-Id`
    header, status < 400) fills the reservation, before the client can learn the id."""

    def __init__(self, send: Send, reservation: Reservation, close: Callable[[str], Closer]) -> None:
        self._send = send
        self._reservation = reservation
        self._close = close

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] < 400:
            if (session_id := Headers(raw=message.get("headers", [])).get("mcp-session-id")) is not None:
                self._reservation.fill(session_id, self._close(session_id))
        await self._send(message)


class EvictableReceive:
    """Wraps `receive` of a streaming response: once `evict` is awaited, it answers `http.disconnect`, so the
    stream ends the way it does when its client leaves (cancelling it would leave the SDK's streams open)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._evict = anyio.Event()

    @property
    def evicted(self) -> bool:
        return self._evict.is_set()

    async def evict(self) -> None:
        self._evict.set()

    async def __call__(self) -> Message:
        received: Message | None = None
        if not self._evict.is_set():
            async with anyio.create_task_group() as tg:

                async def receive() -> None:
                    nonlocal received
                    received = await self._receive()
                    tg.cancel_scope.cancel()

                async def evicted() -> None:
                    await self._evict.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(receive)
                tg.start_soon(evicted)
        return received if received is not None else {"type": "http.disconnect"}


class CompletableSend:
    """Wraps `send` to finish a response its app left open (a stream that believes its client left)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._started = False
        self._done = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self._done = True
        await self._send(message)

    async def complete(self) -> None:
        if self._started and not self._done:
            await self({"type": "http.response.body", "body": b"", "more_body": False})


def _refusal(status: int, message: str) -> ApiError:
    retry = SESSION_RETRY_AFTER_SECONDS
    return ApiError(status, message, headers={"Retry-After": str(retry)}, retry_after=retry)
