"""Which tracking session a request belongs to.

A tracking session stands for one client connection. The SDK gives no single connection
identity that holds on every transport and revision, so the key is the first of these that a
request carries:

1. `sid:` the transport's session id: `Connection.session_id` (the SDK's stateful Streamable
   HTTP session) or an `Mcp-Session-Id` request header.
2. `conn:` the connection's standalone channel (`Connection.outbound`) when it has one: the
   JSON-RPC dispatcher of a stdio, SSE or stateful Streamable HTTP loop at the handshake
   revision, or the notify-only wrapper that one 2026-07-28 duplex stream (stdio, SSE) shares
   across the fresh `Connection` it builds per request. Held by weak reference, so a new
   connection never inherits an old one's key.
3. `auth:` a hash of the `Authorization` header, for sessionless requests (2026-07-28
   Streamable HTTP, stateless HTTP, plain JSON-RPC POSTs) that authenticate.
4. `client:` the client's name, version and IP address, for everything else: two
   unauthenticated sessionless clients of the same build behind one address share a session.

The SDK hands middleware a `ServerRequestContext` whose `session` (a `ServerSession`) keeps its
`Connection` and per-request dispatch context in private attributes (`_connection`,
`_request_outbound`); they are read defensively with `getattr`, and a request they are missing
from falls through to rules 3 and 4. Keys live in a bounded LRU table: past `max_sessions` the
least recently used key is forgotten, and its next request opens a new session.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcp.server.context import ServerRequestContext
from mcp.types import CLIENT_INFO_META_KEY

DEFAULT_MAX_SESSIONS: Final = 10_000
"""Session keys remembered at once (LRU)."""

UNKNOWN_CLIENT: Final = "unknown"


@dataclass(frozen=True)
class ConnectionFacts:
    """What one request tells about the connection it came on."""

    client_name: str = ""
    client_version: str = ""
    ip: str = ""
    transport: str = ""
    transport_session_id: str | None = None
    anchor: object | None = None
    """An object that lives exactly as long as the client connection, if there is one."""
    authorization: str | None = None

    @property
    def client_config(self) -> str:
        """`"claude-desktop 1.2.3"`: the client's name and version, or `"unknown"`."""
        return " ".join(part for part in (self.client_name, self.client_version) if part) or UNKNOWN_CLIENT


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def _client_info(ctx: ServerRequestContext[Any, Any]) -> tuple[str, str]:
    """Name and version from the handshake (`initialize` clientInfo) or the 2026-07-28 `_meta` envelope.

    During `initialize` itself the SDK has not committed the client's params to the connection yet (it does
    once the middleware chain returned), so they are read from the request."""
    params = ctx.session.client_params
    if params is not None:
        return params.client_info.name, params.client_info.version
    if ctx.method == "initialize":
        info = (ctx.params or {}).get("clientInfo")
    else:
        meta = (ctx.params or {}).get("_meta")
        info = meta.get(CLIENT_INFO_META_KEY) if isinstance(meta, Mapping) else None
    if isinstance(info, Mapping):
        name, version = info.get("name"), info.get("version")
        return (name if isinstance(name, str) else ""), (version if isinstance(version, str) else "")
    return "", ""


def _transport_name(kind: str | None, request: Any, session_id: str | None) -> str:
    """The transport a request came on; the SDK's JSON-RPC loops all report kind `jsonrpc`."""
    if kind and kind != "jsonrpc":
        return kind
    if request is None:
        return "stdio" if kind == "jsonrpc" else ""
    return "streamable-http" if session_id else "sse"


def describe(ctx: ServerRequestContext[Any, Any]) -> ConnectionFacts:
    """The connection facts of the request `ctx`, reading only what is there."""
    request = ctx.request
    connection = getattr(ctx.session, "_connection", None)
    dispatch = getattr(ctx.session, "_request_outbound", None)
    transport_ctx = getattr(dispatch, "transport", None)
    headers = getattr(request, "headers", None) or getattr(transport_ctx, "headers", None)

    session_id = getattr(connection, "session_id", None) or _header(headers, "mcp-session-id")
    anchor = None
    if connection is not None and getattr(connection, "has_standalone_channel", False):
        anchor = getattr(connection, "outbound", None)
    client = getattr(request, "client", None)
    ip = getattr(client, "host", None)
    name, version = _client_info(ctx)
    kind = getattr(transport_ctx, "kind", None)
    return ConnectionFacts(
        client_name=name,
        client_version=version,
        ip=ip if isinstance(ip, str) else "",
        transport=_transport_name(kind if isinstance(kind, str) else None, request, session_id),
        transport_session_id=session_id if isinstance(session_id, str) else None,
        anchor=anchor,
        authorization=_header(headers, "authorization"),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SessionTable:
    """Maps session keys to tracking session ids (UUID4), least recently used first out."""

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self._max = max_sessions
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._anchors: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def key(self, facts: ConnectionFacts) -> str:
        """The session key of a request (the rule in the module docstring)."""
        if facts.transport_session_id:
            return "sid:" + facts.transport_session_id
        if facts.anchor is not None:
            return "conn:" + self._anchor_token(facts.anchor)
        if facts.authorization:
            return "auth:" + _digest(facts.authorization)
        return f"client:{facts.client_name}/{facts.client_version}@{facts.ip}"

    def _anchor_token(self, anchor: object) -> str:
        with self._lock:
            try:
                token = self._anchors.get(anchor)
                if token is None:
                    token = self._anchors[anchor] = uuid.uuid4().hex
            except TypeError:  # not weak-referenceable: identity will do while it lives
                token = f"id{id(anchor):x}"
            return token

    def get(self, key: str) -> str | None:
        with self._lock:
            session_id = self._ids.get(key)
            if session_id is not None:
                self._ids.move_to_end(key)
            return session_id

    def get_or_create(self, key: str) -> tuple[str, bool]:
        """The session id for `key` and whether it was just created."""
        with self._lock:
            session_id = self._ids.get(key)
            if session_id is not None:
                self._ids.move_to_end(key)
                return session_id, False
            session_id = str(uuid.uuid4())
            self._ids[key] = session_id
            while len(self._ids) > self._max:
                self._ids.popitem(last=False)
            return session_id, True

    def forget(self, key: str) -> None:
        with self._lock:
            self._ids.pop(key, None)
