"""Connection limits uvicorn lacks: deadlines for reading a request, and caps on open connections.

uvicorn times only idle keep-alive connections; a client that opens a connection and sends nothing, half a
header line or half a body is kept for as long as it likes, and some thousands of those exhaust the process's
file descriptors (slowloris). `serve` runs uvicorn's HTTP/1.1 protocol with this guard around it:

- headers: a request whose headers are not complete `header_timeout` seconds after the connection opened (or,
  on a kept-alive connection, after the request's first byte) is answered 408 and the connection closed
  (closed without an answer when not one byte of it came);
- body: a request body that gets no byte for `body_timeout` seconds is answered 408 and closed (only closed
  when the app has started its response). Time the app itself takes to read the body (uvicorn stops reading
  while 64 KiB wait unread) does not count;
- per client: a connection from an address that already holds `max_per_client` open connections is answered
  429 and closed as it arrives, before anything is read. The address is the socket's peer (IPv6 counted by
  its /64), not a forwarded one: headers are not read yet, and a trusted proxy (exempt from this cap) speaks
  for many clients;
- in all: beyond `max_total` open connections, a new one is answered 503 and closed.

Only reading a request is timed: once its headers and body are in, the response may take as long as it likes
(the SSE streams, the live stream), and idle keep-alive connections stay uvicorn's (`timeout_keep_alive`).
Limits and counts are per process; `serve` sets them with `use_limits` (each `--workers` process too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import resource
from collections import Counter
from dataclasses import dataclass
from typing import Final, Protocol, cast
from weakref import WeakKeyDictionary

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from . import logs
from .config import Settings

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FILE_LIMIT_SHARE: Final = 0.9
"""Share of the process's open-file limit (RLIMIT_NOFILE) connections may take when `max_connections` is unset;
the rest is for the database, logs and the listening sockets."""

IPV6_CLIENT_PREFIX: Final = 64
"""IPv6 addresses are counted per /64: one subscriber usually holds a whole /64."""


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(16, int(soft * FILE_LIMIT_SHARE))


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_per_client: int
    max_total: int
    exempt: tuple[Network, ...] = ()
    """Peers the per-client cap does not apply to (the trusted proxies)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_per_client=settings.max_connections_per_ip,
            max_total=settings.max_connections or default_max_connections(),
            exempt=tuple(ipaddress.ip_network(proxy) for proxy in settings.trusted_proxies),
        )

    def client_key(self, host: str) -> str | None:
        """What the per-client cap counts `host` as; None when it is exempt (or not an IP address)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 client of a dual-stack socket
        if any(address in network for network in self.exempt):
            return None
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
        return str(address)


_limits = ConnectionLimits.from_settings(Settings())
_open_per_client: WeakKeyDictionary[ServerState, Counter[str]] = WeakKeyDictionary()


def use_limits(limits: ConnectionLimits) -> None:
    """The limits connections accepted from now on in this process get."""
    global _limits
    _limits = limits


def _canned(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


HEADERS_TOO_SLOW: Final = _canned(408, "Request Timeout", "Request headers not received in time")
BODY_TOO_SLOW: Final = _canned(408, "Request Timeout", "Request body not received in time")
TOO_MANY_FROM_CLIENT: Final = _canned(429, "Too Many Requests", "Too many open connections from this address")
TOO_MANY_IN_ALL: Final = _canned(503, "Service Unavailable", "Too many open connections")


class _Cycle(Protocol):
    """The state of one request uvicorn's cycles (httptools and h11 alike) keep."""

    more_body: bool
    response_started: bool
    response_complete: bool
    waiting_for_100_continue: bool


class _Connection(Protocol):
    @property
    def cycle(self) -> _Cycle | None: ...

    @property
    def flow(self) -> FlowControl: ...


class ReadGuard:
    """One connection's read deadlines and its place in its client's count."""

    def __init__(self, connection: _Connection, server_state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = connection
        self._server_state = server_state
        self._loop = loop
        self._limits = _limits
        self._transport: asyncio.Transport | None = None
        self._client_key: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._request_bytes = 0
        self._last_read = 0.0
        self.refused = False

    def admit(self, transport: asyncio.Transport) -> bool:
        """Count the new connection and start its header deadline; False (answered and closed) over a cap."""
        self._transport = transport
        counts = _open_per_client.setdefault(self._server_state, Counter())
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        key = self._limits.client_key(host)
        if len(self._server_state.connections) >= self._limits.max_total:
            return self._refuse(TOO_MANY_IN_ALL, host, "the process holds its maximum of connections")
        if key is not None and counts[key] >= self._limits.max_per_client:
            return self._refuse(TOO_MANY_FROM_CLIENT, host, "that address holds its maximum of connections")
        if key is not None:
            counts[key] += 1
            self._client_key = key
        self._header_timer = self._loop.call_later(self._limits.header_timeout, self._headers_too_slow)
        return True

    def _refuse(self, answer: bytes, host: str, why: str) -> bool:
        self.refused = True
        assert self._transport is not None
        self._transport.write(answer)
        self._transport.close()
        logger.debug("refused a connection from %s: %s", logs.client_label(host), why)
        return False

    def before_data(self, size: int) -> _Cycle | None:
        """Call before uvicorn parses `size` bytes; pass what it returns to `after_data`."""
        cycle = self._connection.cycle
        if cycle is None or cycle.response_complete:  # between requests: these bytes start the next one
            if self._header_timer is None:
                self._header_timer = self._loop.call_later(self._limits.header_timeout, self._headers_too_slow)
            self._request_bytes += size
        self._last_read = self._loop.time()
        return cycle

    def after_data(self, before: _Cycle | None, protocol: asyncio.Protocol) -> None:
        """Call after uvicorn parsed what came: stop the header deadline when a request's headers were complete,
        keep the body deadline while its body is still coming."""
        assert self._transport is not None
        if self._transport.get_protocol() is not protocol:  # upgraded (WebSocket): no longer ours to time
            self._cancel()
            return
        cycle = self._connection.cycle
        if cycle is not before:
            self._request_bytes = 0
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        reading_body = cycle is not None and cycle.more_body and not cycle.response_complete
        if reading_body and self._body_timer is None:
            self._body_timer = self._loop.call_later(self._limits.body_timeout, self._body_too_slow)
        elif not reading_body and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def lost(self) -> None:
        """The connection closed: stop its deadlines and take it off its client's count."""
        self._cancel()
        if self._client_key is not None:
            counts = _open_per_client.get(self._server_state)
            if counts is not None:
                counts[self._client_key] -= 1
                if counts[self._client_key] <= 0:
                    del counts[self._client_key]
            self._client_key = None

    def _cancel(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self._close(HEADERS_TOO_SLOW if self._request_bytes else b"", "request headers not complete")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        cycle = self._connection.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if self._connection.flow.read_paused or cycle.waiting_for_100_continue:
            self._last_read = self._loop.time()  # the wait is the app's: not reading yet, or not asked for the body
        idle = self._loop.time() - self._last_read
        if idle < self._limits.body_timeout:
            self._body_timer = self._loop.call_later(self._limits.body_timeout - idle, self._body_too_slow)
            return
        self._close(b"" if cycle.response_started else BODY_TOO_SLOW, "request body stalled")

    def _close(self, answer: bytes, why: str) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if answer:
            transport.write(answer)
        transport.close()
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        logger.debug("closed a connection from %s: %s in time", logs.client_label(host), why)


class _GuardedReads(asyncio.Protocol):
    """`ReadGuard`'s deadlines and caps around a uvicorn HTTP protocol: put first among the bases."""

    _guard: ReadGuard
    server_state: ServerState
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard = ReadGuard(cast(_Connection, self), self.server_state, self.loop)
        if self._guard.admit(cast(asyncio.Transport, transport)):
            super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._guard.refused:
            return
        before = self._guard.before_data(len(data))
        super().data_received(data)
        self._guard.after_data(before, self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard.refused:
            return
        self._guard.lost()
        super().connection_lost(exc)


class GuardedHttpToolsProtocol(_GuardedReads, HttpToolsProtocol):
    """uvicorn's httptools protocol (its default, `uvicorn[standard]`) with `ReadGuard`'s deadlines and caps."""


class GuardedH11Protocol(_GuardedReads, H11Protocol):
    """uvicorn's pure-Python h11 protocol with the same guard (`serve` uses httptools; this one for `http="h11"`)."""
