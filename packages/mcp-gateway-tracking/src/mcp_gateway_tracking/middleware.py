"""`TrackingMiddleware`: records MCP traffic at the SDK's middleware seam (`ServerMiddleware`).

It wraps `call_next` for the methods worth counting and lets everything else (`ping`,
notifications, completions) through untouched. A session is submitted as soon as its client connects:
when an `initialize` (the handshake revisions) or a `server/discover` (the 2026-07-28 revision, which
has no handshake) succeeds, before any call; the SDK runs both requests through the middleware chain
(as it does `notifications/initialized`, which is not used: a plain JSON-RPC POST never delivers it).

Per tracked request it measures the latency around `call_next` with `time.perf_counter`, notes success (False
for a raised exception, `MCPError` and pydantic's `ValidationError` included, and for a tool result with
`isError` true), and submits one `CaptureEvent` to the sink; the first request of a session not yet submitted
(a sessionless client that never discovered, a forgotten key) submits its `CaptureSession` first
(`sessions.py` says which session a request belongs to). The caller's exception is re-raised unchanged and its
result returned as it came; the middleware's own failures are logged and counted (`capture_error`), never
raised. Submitting never waits: the sink queues and delivers in the background.

Tracked methods: `tools/call`, `resources/read` and `prompts/get` (`operation="call"`, named by
the tool or prompt name or the resource URI), and `tools/list`, `resources/list`,
`resources/templates/list` and `prompts/list` (`operation="list"`, named by the method, their
result recorded as the names listed). A protocol error's result is `{"error": {code, message}}`;
a cancelled request records nothing. A tool's `private_arguments` (names of string arguments holding
personal data, like a lead's name) are hashed in the args and wherever the result repeats their
values, beyond what the redactor's keys and text scan catch. With `sink_redacts` (a sink that redacts what it keeps,
as the gateway's store does: one redaction point), args, result and name are submitted as they are, unless they must
be cut to fit, which redacts them first.

The recording runs after `call_next` returns (so it is not in the measured latency) and before
the answer goes out. It is a few dictionary operations and one JSON encoding (on a worker thread
when the params or the result are bigger than `privacy.MAX_INLINE_REDACTION_CHARS`), except for the first
request of a session, which also runs `identify` and may list the server's tools (each bounded by
a timeout, `IDENTIFY_TIMEOUT` and `TOOLS_TIMEOUT`). A session's tools are the names the last
successful first-page `tools/list` answered, or else the server's own listing (see `_ToolNames`).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeAlias

import anyio
from mcp.server import MCPServer, Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from ._logging import sdk_logger
from .ids import random_uuid
from .privacy import MAX_INLINE_REDACTION_CHARS, MAX_PAYLOAD_CHARS, Redactor, canonical_json, cap_text, exceeds
from .sessions import ConnectionFacts, SessionTable, describe
from .sinks import CaptureSink
from .wire import CaptureEvent, CaptureSession, Operation, PrimitiveType

logger = sdk_logger(__name__)

IdentifyResult: TypeAlias = Mapping[str, Any] | None
IdentifyFn: TypeAlias = Callable[[Any, Mapping[str, str]], IdentifyResult | Awaitable[IdentifyResult]]
"""`identify(request, env)`: the Starlette request (None on stdio) and `os.environ` -> user data."""

ToolLister: TypeAlias = Callable[[], Awaitable[Iterable[str]]]

TRACKED_METHODS: Final[Mapping[str, tuple[PrimitiveType, Operation]]] = {
    "tools/call": ("tool", "call"),
    "resources/read": ("resource", "call"),
    "prompts/get": ("prompt", "call"),
    "tools/list": ("tool", "list"),
    "resources/list": ("resource", "list"),
    "resources/templates/list": ("resource", "list"),
    "prompts/list": ("prompt", "list"),
}

MAX_EVENT_PAYLOAD_CHARS: Final = 24_576
"""Most characters an event's `args` and `result` hold together (each alone: `wire.MAX_PAYLOAD_CHARS`)."""

MAX_USER_DATA_CHARS: Final = 4_096
"""Most characters of a session's `user_data` as JSON; past it, only short scalar fields are kept."""

DEFAULT_TOOLS_TTL: Final = 60.0
"""Seconds a server's tool list is reused for new sessions before it is asked again."""

TOOLS_TIMEOUT: Final = 1.0
"""Longest the server's tool listing may take when a session starts; past it the list is empty."""

IDENTIFY_TIMEOUT: Final = 1.0
"""Longest an `identify` function may take; past it the session has no user data."""

SESSION_OPENING_METHODS: Final = frozenset({"initialize", "server/discover"})
"""Requests by which a client connects: once one succeeds, its session is submitted (no event is recorded)."""

ERROR_TYPE_IS_ERROR: Final = "ToolError"
"""`error_type` of a tool result with `isError` true (the SDK's name for an expected tool failure)."""

_LISTED: Final[Mapping[str, tuple[str, str]]] = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
"""A list call's result is recorded as the names it listed (schemas are catalogue, not traffic)."""

_ENVELOPE_KEYS: Final = frozenset({"_meta", "ttlMs", "cacheScope"})
_COMPLETE: Final = "complete"
_MISSING_NAME: Final = "(missing)"
_MAX_NAME_CHARS: Final = 512
_CUT_MARGIN: Final = 48
_MIN_SCRUBBED_CHARS: Final = 3
"""A private argument's value is looked for in the result only when at least this long (`A` would be everywhere)."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _as_wire(result: HandlerResult) -> dict[str, Any] | None:
    if isinstance(result, BaseModel):
        dumped: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return dumped
    return result


class _ToolNames:
    """The server's tool names, for sessions: asked at most every `ttl` seconds, or seen in a `tools/list`.

    An `MCPServer` is asked with `await server.list_tools()`. A low-level `Server` has no such
    method, so its registered `tools/list` handler is called directly (outside the middleware
    chain, with the current request's context re-labelled as `tools/list` and empty params),
    bounded by `TOOLS_TIMEOUT`; a server without one has no tools to list.
    """

    def __init__(self, server: MCPServer[Any] | Server[Any], lister: ToolLister | None, ttl: float) -> None:
        self._server = server
        self._lister = lister
        self._ttl = ttl
        self._names: list[str] | None = None
        self._at = 0.0

    def observe(self, result: Mapping[str, Any] | None) -> None:
        """Remember the names in a successful first-page `tools/list` result."""
        tools = (result or {}).get("tools")
        if isinstance(tools, list):
            self._names = [t["name"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("name"), str)]
            self._at = time.monotonic()

    async def names(self, ctx: ServerRequestContext[Any, Any]) -> list[str]:
        if self._names is not None and time.monotonic() - self._at < self._ttl:
            return self._names
        names: list[str] | None = None
        with anyio.move_on_after(TOOLS_TIMEOUT):
            try:
                names = [str(n) for n in await self._ask(ctx)]
            except Exception:
                logger.warning("tracking could not list the server's tools", exc_info=True)
        if names is not None:
            self._names, self._at = names, time.monotonic()
        return names if names is not None else (self._names or [])

    async def _ask(self, ctx: ServerRequestContext[Any, Any]) -> Iterable[str]:
        if self._lister is not None:
            return await self._lister()
        if isinstance(self._server, MCPServer):
            return [tool.name for tool in await self._server.list_tools()]
        entry = self._server.get_request_handler("tools/list")
        if entry is None:
            return []
        params = entry.params_type.model_validate({})
        result = _as_wire(await entry.handler(replace(ctx, method="tools/list", params=None), params)) or {}
        tools = result.get("tools", [])
        return [t["name"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("name"), str)]


EnabledFn = Callable[[], Awaitable[bool]]
"""Asked before each tracked request; False lets the request through unrecorded."""


class TrackingMiddleware:
    """A `ServerMiddleware` submitting sessions and events to a `CaptureSink`."""

    def __init__(
        self,
        server: MCPServer[Any] | Server[Any],
        *,
        sink: CaptureSink,
        org_id: str,
        identify: IdentifyFn | None = None,
        disable_input: bool = False,
        disable_output: bool = False,
        redactor: Redactor | None = None,
        sessions: SessionTable | None = None,
        list_tools: ToolLister | None = None,
        tools_ttl: float = DEFAULT_TOOLS_TTL,
        enabled: EnabledFn | None = None,
        private_arguments: Mapping[str, Iterable[str]] | None = None,
        sink_redacts: bool = False,
    ) -> None:
        self.sink = sink
        self._sink_redacts = sink_redacts
        self._private_arguments = {tool: frozenset(names) for tool, names in (private_arguments or {}).items()}
        self._enabled = enabled
        self.org_id = org_id
        self.sessions = sessions if sessions is not None else SessionTable()
        self._identify = identify
        self._disable_input = disable_input
        self._disable_output = disable_output
        self._redactor = redactor if redactor is not None else Redactor()
        self._tools = _ToolNames(server, list_tools, tools_ttl)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        spec = TRACKED_METHODS.get(ctx.method)
        if spec is None and ctx.method in SESSION_OPENING_METHODS and ctx.request_id is not None:
            opened = await call_next(ctx)  # a failed handshake raises past us: no session for it
            await self._connected(ctx)
            return opened
        if spec is None or ctx.request_id is None or (self._enabled is not None and not await self._enabled()):
            return await call_next(ctx)
        started = time.time()
        t0 = time.perf_counter()
        try:
            result = await call_next(ctx)
        except Exception as exc:
            latency = (time.perf_counter() - t0) * 1000
            await self._record(ctx, spec, started, latency, None, exc)
            raise
        latency = (time.perf_counter() - t0) * 1000
        await self._record(ctx, spec, started, latency, result, None)
        return result

    # -- recording -----------------------------------------------------------------------------------

    async def _connected(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """A client connected (`initialize` or `server/discover` succeeded): submit its session now."""
        try:
            if self._enabled is not None and not await self._enabled():
                return
            if await self._session_for(ctx) is None:
                self.sink.stats.drop("session_not_queued")
        except Exception:
            logger.exception("tracking could not record the session opened by %s", ctx.method)
            self.sink.stats.drop("capture_error")

    async def _record(
        self,
        ctx: ServerRequestContext[Any, Any],
        spec: tuple[PrimitiveType, Operation],
        started: float,
        latency: float,
        result: HandlerResult,
        error: Exception | None,
    ) -> None:
        try:
            wire = _as_wire(result) if error is None else None
            if ctx.method == "tools/list" and error is None and not (ctx.params or {}).get("cursor"):
                self._tools.observe(wire)
            session_id = await self._session_for(ctx)
            if session_id is None:
                self.sink.stats.drop("session_not_queued")
                return
            event_of = (ctx, spec, session_id, started, latency, wire, error)
            if exceeds(ctx.params, MAX_INLINE_REDACTION_CHARS) or exceeds(wire, MAX_INLINE_REDACTION_CHARS):
                event = await anyio.to_thread.run_sync(self._event, *event_of)  # redacting it takes a while
            else:
                event = self._event(*event_of)
            self.sink.submit(event, org_id=self.org_id)
        except Exception:
            logger.exception("tracking could not record %s", ctx.method)
            self.sink.stats.drop("capture_error")

    async def _session_for(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """The request's session id, submitting the session first if it is new; None if it could not be."""
        facts = describe(ctx)
        key = self.sessions.key(facts)
        session_id = self.sessions.get(key)
        if session_id is not None:
            return session_id
        user_data = await self._user_data(ctx)
        tools = await self._tools.names(ctx)
        # No await between creating the key and submitting its session: concurrent first requests of
        # one session all submit their events after it.
        session_id, created = self.sessions.get_or_create(key)
        if created:
            queued = False
            try:
                queued = self.sink.submit(self._session(session_id, facts, tools, user_data), org_id=self.org_id)
            finally:
                if not queued:  # its events would be orphans: the next request tries again
                    self.sessions.forget(key)
            if not queued:
                return None
        return session_id

    async def _user_data(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any] | None:
        if self._identify is None:
            return None
        data: Any = None
        with anyio.move_on_after(IDENTIFY_TIMEOUT):
            try:
                data = self._identify(ctx.request, os.environ)
                if inspect.isawaitable(data):
                    data = await data
            except Exception:
                logger.warning("tracking: identify() raised; the session has no user data", exc_info=True)
                data = None
        if not isinstance(data, Mapping):
            return None
        return _bounded_user_data(self._redactor.redact(dict(data)))

    def _session(
        self, session_id: str, facts: ConnectionFacts, tools: list[str], user_data: dict[str, Any] | None
    ) -> CaptureSession:
        return CaptureSession(
            session_id=session_id,
            client_config=_cut(facts.client_config, 256),
            connection_type=_cut(facts.transport, 64),
            ip=_cut(facts.ip, 64),
            tools=[_cut(name, 256) for name in tools[:1000]],
            user_data=user_data,
            timestamp=time.time() * 1000,
            transport=_cut(facts.transport, 32) or None,
        )

    def _event(
        self,
        ctx: ServerRequestContext[Any, Any],
        spec: tuple[PrimitiveType, Operation],
        session_id: str,
        started: float,
        latency: float,
        result: dict[str, Any] | None,
        error: Exception | None,
    ) -> CaptureEvent:
        primitive_type, operation = spec
        params: Mapping[str, Any] = ctx.params if isinstance(ctx.params, Mapping) else {}
        is_error = error is None and isinstance(result, Mapping) and result.get("isError") is True
        args = result_text = None
        arguments, output = _args_of(ctx.method, params), _output_of(ctx.method, result, error)
        private = self._private_arguments.get(str(params.get("name"))) if ctx.method == "tools/call" else None
        if private and isinstance(arguments, Mapping):
            arguments, output = _hide_private(arguments, output, private)
        if not self._disable_input:
            args = self._json_text(arguments)
        if not self._disable_output and output is not None:
            result_text = self._json_text(output)
        if self._sink_redacts and len(args or "") + len(result_text or "") > MAX_EVENT_PAYLOAD_CHARS:
            # About to be cut: redacted first, as a cut document could not be parsed (and redacted) by the sink.
            args = None if args is None else self._redactor.to_json_text(arguments)
            result_text = None if result_text is None else self._redactor.to_json_text(output)
        args, result_text = _fit(args, result_text, MAX_EVENT_PAYLOAD_CHARS)
        error_type = type(error).__name__ if error is not None else (ERROR_TYPE_IS_ERROR if is_error else None)
        name = _name_of(ctx.method, operation, params)
        if not self._sink_redacts or len(name) > _MAX_NAME_CHARS:
            name = self._redactor.redact_string(name)
        return CaptureEvent(
            session_id=session_id,
            primitive_type=primitive_type,
            primitive_name=_cut(name, _MAX_NAME_CHARS),
            latency=max(0.0, latency),
            success=error is None and not is_error,
            args=args,
            result=result_text,
            event_id=random_uuid(),
            timestamp=started * 1000,
            error_type=_cut(error_type, 128) if error_type else None,
            operation=operation,
        )

    def _json_text(self, value: Any) -> str:
        """`value` as the event's JSON text: redacted and capped, or, when the sink redacts, as it is unless it
        must be capped (redacted then, before the cut)."""
        if self._sink_redacts:
            text = canonical_json(value)
            if len(text) <= MAX_PAYLOAD_CHARS:
                return text
        return self._redactor.to_json_text(value)


def _name_of(method: str, operation: Operation, params: Mapping[str, Any]) -> str:
    if operation == "list":
        return method
    value = params.get("uri" if method == "resources/read" else "name")
    return value if isinstance(value, str) and value else _MISSING_NAME


def _args_of(method: str, params: Mapping[str, Any]) -> Any:
    if method in ("tools/call", "prompts/get"):
        return params.get("arguments") or {}
    return {k: v for k, v in params.items() if k != "_meta"}


def _output_of(method: str, result: Mapping[str, Any] | None, error: Exception | None) -> Any:
    """What an event records as its result: a call's result without the envelope, a list's names."""
    if isinstance(error, MCPError):
        return {"error": {"code": error.code, "message": error.message}}
    if error is not None or result is None:
        return None
    listing = _LISTED.get(method)
    if listing is not None:
        field, key = listing
        items = result.get(field)
        names = [i.get(key) for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
        out: dict[str, Any] = {field: names}
        if result.get("nextCursor") is not None:
            out["nextCursor"] = result["nextCursor"]
        return out
    return {k: v for k, v in result.items() if k not in _ENVELOPE_KEYS and not (k == "resultType" and v == _COMPLETE)}


def _hide_private(arguments: Mapping[str, Any], output: Any, private: frozenset[str]) -> tuple[dict[str, Any], Any]:
    """A tool's private arguments hashed, and their values hashed wherever the result repeats them."""
    hidden = dict(arguments)
    pseudonyms: dict[str, str] = {}
    for name in private & hidden.keys():
        value = hidden[name]
        if isinstance(value, str) and value.strip():
            hidden[name] = Redactor.hash_value(name, value)
            if len(value.strip()) >= _MIN_SCRUBBED_CHARS:
                pseudonyms[value.strip()] = hidden[name]
    if not pseudonyms:
        return hidden, output
    for raw, pseudonym in list(pseudonyms.items()):  # as it reads inside JSON text too
        pseudonyms.setdefault(canonical_json(raw)[1:-1], pseudonym)
    longest_first = sorted(pseudonyms, key=len, reverse=True)

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return _replace_words(value, pseudonyms, longest_first)
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        if type(value) is dict or isinstance(value, Mapping):  # `isinstance` against the Mapping ABC is slow
            return {key: scrub(item) for key, item in value.items()}
        return value

    return hidden, scrub(output)


def _replace_words(text: str, replacements: Mapping[str, str], longest_first: list[str]) -> str:
    """`text` with each whole-word occurrence of a key of `replacements` replaced, longer keys first, in one pass.

    Whole words only: a name like "book" stays out of "booked", a short one out of an id like "abc-123". Plain
    `str.find` (no pattern to compile per call: the values differ on every call); linear in `text` per key.
    """
    found = [raw for raw in longest_first if raw in text]
    if not found:
        return text
    taken = bytearray(len(text))
    spans: list[tuple[int, int, str]] = []
    for raw in found:
        start = text.find(raw)
        while start != -1:
            end = start + len(raw)
            if not _is_word_char(text, start - 1) and not _is_word_char(text, end) and not any(taken[start:end]):
                taken[start:end] = b"\x01" * len(raw)
                spans.append((start, end, replacements[raw]))
            start = text.find(raw, start + 1)
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    last = 0
    for start, end, pseudonym in spans:
        parts += (text[last:start], pseudonym)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _is_word_char(text: str, index: int) -> bool:
    """Whether `text[index]` exists and continues a word (a letter, a digit, `_` or `-`)."""
    if index < 0 or index >= len(text):
        return False
    char = text[index]
    return char.isalnum() or char in "_-"


def _fit(args: str | None, result: str | None, budget: int) -> tuple[str | None, str | None]:
    """Cut `args` and `result` so that together they stay within `budget` characters."""
    a, r = len(args or ""), len(result or "")
    if a + r <= budget:
        return args, result
    half = budget // 2
    if a <= half:
        return args, cap_text(result, max(0, budget - a - _CUT_MARGIN))
    if r <= half:
        return cap_text(args, max(0, budget - r - _CUT_MARGIN)), result
    return cap_text(args, half - _CUT_MARGIN), cap_text(result, half - _CUT_MARGIN)


def _bounded_user_data(data: dict[str, Any]) -> dict[str, Any]:
    if len(canonical_json(data)) <= MAX_USER_DATA_CHARS:
        return data
    kept: dict[str, Any] = {"_truncated": True}
    used = 0
    for key, value in data.items():
        if isinstance(value, str):
            value = _cut(value, 256)
        elif not isinstance(value, int | float | bool) and value is not None:
            continue
        used += len(canonical_json({key: value}))
        if used > MAX_USER_DATA_CHARS - 64:
            break
        kept[key] = value
    return kept
