"""Sessions of the plain JSON-RPC POST: an `initialize` opens one, and later POSTs join it by its `Mcp-Session-Id`.

A plain POST has no stream, so a session here is only what its client told at `initialize`: its `clientInfo`,
capabilities and the negotiated protocol revision. The gateway hands the session's id back in the
`Mcp-Session-Id` header of the `initialize` answer; a later POST carrying it is served as that client, on that
revision, and tracked under that client's session (instead of the anonymous per-address session a sessionless
POST gets). A POST without the header stays sessionless, as before.

The table is memory-bound: at most `max_sessions` sessions (least recently used out first), at most
`max_per_client` per client address (that client's own least recently used out first, so one client opening
sessions in a loop cannot push out anyone else's), and a session unused for `idle_timeout` seconds is gone.
An unknown, expired or evicted id is answered 404 with a JSON-RPC error, as the SDK's Streamable HTTP transport
answers one: the client starts over with `initialize`. Looking a session up is a dict look-up and a move to the
end of two ordered dicts; expiry is checked lazily, from the least recently used end.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from mcp.types import InitializeRequestParams


@dataclass(slots=True, eq=False)
class JsonRpcSession:
    """What one client said at `initialize`, and when it was last heard from."""

    session_id: str
    gateway_id: str
    client: str
    client_params: InitializeRequestParams
    protocol_version: str
    last_active: float


class JsonRpcSessions:
    """The open plain JSON-RPC sessions of one process, least recently used first."""

    def __init__(
        self,
        *,
        max_sessions: int,
        max_per_client: int,
        idle_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_per_client < 1 or idle_timeout <= 0:
            raise ValueError("max_sessions and max_per_client must be at least 1, idle_timeout positive")
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: collections.OrderedDict[str, JsonRpcSession] = collections.OrderedDict()
        self._by_client: dict[str, collections.OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def new_id() -> str:
        """A fresh session id: 32 hex digits, as the SDK names its Streamable HTTP sessions."""
        return uuid.uuid4().hex

    def open(
        self,
        session_id: str,
        *,
        gateway_id: str,
        client: str,
        client_params: InitializeRequestParams,
        protocol_version: str,
    ) -> JsonRpcSession:
        """Remember a session `initialize` opened, making room as the limits say."""
        self._expire()
        mine = self._by_client.setdefault(client, collections.OrderedDict())
        while len(mine) >= self.max_per_client:
            self._forget(self._sessions[next(iter(mine))])
        while len(self._sessions) >= self.max_sessions:
            self._forget(next(iter(self._sessions.values())))
        session = JsonRpcSession(session_id, gateway_id, client, client_params, protocol_version, self._clock())
        self._sessions[session_id] = session
        self._by_client.setdefault(client, collections.OrderedDict())[session_id] = None
        return session

    def get(self, session_id: str, gateway_id: str) -> JsonRpcSession | None:
        """The live session `session_id` of `gateway_id`, now marked used; None if unknown, expired or another's."""
        session = self._sessions.get(session_id)
        if session is None or session.gateway_id != gateway_id:
            return None
        now = self._clock()
        if now - session.last_active >= self.idle_timeout:
            self._expire()
            return None
        session.last_active = now
        self._sessions.move_to_end(session_id)
        self._by_client[session.client].move_to_end(session_id)
        return session

    def _expire(self) -> None:
        ended_before = self._clock() - self.idle_timeout
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_active > ended_before:
                return
            self._forget(oldest)

    def _forget(self, session: JsonRpcSession) -> None:
        del self._sessions[session.session_id]
        mine = self._by_client[session.client]
        del mine[session.session_id]
        if not mine:
            del self._by_client[session.client]
