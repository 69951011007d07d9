"""The agent side: which MCP clients come, what each session did, and which sessions booked a demo.

    GET /analytics/clients                   per client: sessions, calls, errors, error rate, average latency
    GET /analytics/mcp/sessions              recent sessions: client, transport, activity, calls, booked or not
    GET /analytics/mcp/sessions/{session_id} one session and all its calls in order (404 if not this gateway's)
    GET /analytics/mcp/conversions           sessions that booked a demo: rate, per client, time to book

A client is the name in a session's `client_config` ("claude-desktop 1.0" -> "claude-desktop",
version "1.0"), shown by `KNOWN_CLIENTS`' display name when it is a known one. Sessions are the
ones started in the window (`mcp_sessions_by_time`). What each session did — its calls
(tools/call, resources/read, prompts/get), errors, last activity and first successful `book_demo`
call — is read from the writer's `sessions` row of the same id, not from its events; only the
calls' latency and a booking's lead id (from that call's recorded result, `structuredContent.lead_id`)
come from the events.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field

from ..errors import NotFoundError
from ..vocabulary import BOOK_DEMO
from .api import Asked, Question
from .rollups import session_counts
from .sql import in_list
from .window import Args, TimeWindow, WindowArgs

KNOWN_CLIENTS: Final[dict[str, str]] = {
    "claude-ai": "Claude",
    "claude-code": "Claude Code",
    "claude-desktop": "Claude Desktop",
    "cline": "Cline",
    "continue": "Continue",
    "cursor": "Cursor",
    "cursor-vscode": "Cursor",
    "gemini-cli": "Gemini CLI",
    "goose": "Goose",
    "mcp-inspector": "MCP Inspector",
    "openai-mcp": "ChatGPT",
    "visual-studio-code": "VS Code",
    "vscode": "VS Code",
    "windsurf": "Windsurf",
    "windsurf-client": "Windsurf",
    "zed": "Zed",
    "unknown": "Unknown client",
}
"""Client names (as normalised by `parse_client`) whose display name is known."""

MAX_SESSION_CALLS: Final = 1000
"""Most calls `mcp/sessions/{session_id}` lists; `truncated` says when there were more."""

_VERSION = re.compile(r"v?\d")
_LEAD_ID = re.compile(r'"lead_id"\s*:\s*"([^"\\]+)"')
BOOKED_CALL: Final = (
    f"e.source = 'mcp' AND e.primitive_type = 'tool' AND e.name = '{BOOK_DEMO}'"
    " AND e.operation = 'call' AND e.success = 1"
)
"""A successful `book_demo` call, on events aliased `e`."""


def blank_is_none(value: object) -> object:
    """An empty filter parameter (`?client=` from an empty dropdown or search box) is no filter."""
    return None if isinstance(value, str) and not value.strip() else value


TextFilter = Annotated[str | None, BeforeValidator(blank_is_none)]
"""An optional text filter; empty means none."""


# -- clients ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    """Lower-case, words joined by "-": "claude-desktop"."""
    version: str | None
    display_name: str


def parse_client(client_config: str) -> Client:
    """ "Claude Desktop 0.9.2" -> ("claude-desktop", "0.9.2", "Claude Desktop"): the last word is the version
    when it starts with a digit (or "v" and a digit)."""
    words = client_config.split()
    version = words.pop() if len(words) > 1 and _VERSION.match(words[-1]) else None
    name = "-".join(words).lower() or "unknown"
    return Client(name, version, KNOWN_CLIENTS.get(name, name))


@dataclass(frozen=True, slots=True)
class VersionSessions:
    version: str | None
    sessions: int


@dataclass(frozen=True, slots=True)
class ClientStats:
    client: str
    display_name: str
    sessions: int
    """Sessions started in the window."""
    versions: list[VersionSessions]
    calls: int
    """Calls in the window from this client's sessions."""
    errors: int
    error_rate: float
    avg_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class Clients:
    gateway_id: str
    window: dict[str, int]
    clients: list[ClientStats]


async def clients(asked: Asked, args: WindowArgs) -> Clients:
    """Sessions are those started in the window; calls, errors and latency those of the sessions active in it
    (the sessions overlapping it, from `rollups.session_counts`)."""
    window = args.window(asked.now_ms)
    started = await _sessions_per_config(asked, window)
    [active] = (await session_counts(asked.store, asked.gateway_id, window, "client", source="mcp")).values()
    grouped: dict[str, _ClientTally] = {}

    def tally_of(config: str) -> _ClientTally:
        client = parse_client(config)
        return grouped.setdefault(client.name, _ClientTally(client.display_name))

    for config, sessions in started.items():
        versions = tally_of(config).versions
        version = parse_client(config).version
        versions[version] = versions.get(version, 0) + sessions
    for config, count in active.items():
        tally = tally_of(config)
        tally.calls += count.tally.calls
        tally.errors += count.tally.errors
        tally.latency_sum += count.tally.latency_ms
        tally.latency_count += count.tally.calls
    stats = [tally.stats(name) for name, tally in grouped.items()]
    stats.sort(key=lambda c: (-c.sessions, -c.calls, c.client))
    return Clients(asked.gateway_id, window.as_json(), stats)


@dataclass(slots=True)
class _ClientTally:
    display_name: str
    versions: dict[str | None, int] = field(default_factory=dict)
    calls: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0

    def stats(self, name: str) -> ClientStats:
        versions = [VersionSessions(v, n) for v, n in self.versions.items()]
        versions.sort(key=lambda v: (-v.sessions, v.version or ""))
        return ClientStats(
            client=name,
            display_name=self.display_name,
            sessions=sum(self.versions.values()),
            versions=versions,
            calls=self.calls,
            errors=self.errors,
            error_rate=self.errors / self.calls if self.calls else 0.0,
            avg_latency_ms=self.latency_sum / self.latency_count if self.latency_count else None,
        )


async def _sessions_per_config(asked: Asked, window: TimeWindow) -> dict[str, int]:
    rows = await asked.store.fetch(
        "SELECT client_config, COUNT(*) FROM mcp_sessions"
        " WHERE gateway_id = ? AND started_at_ms >= ? AND started_at_ms < ? GROUP BY client_config",
        [asked.gateway_id, window.since_ms, window.until_ms],
    )
    return {config: sessions for config, sessions in rows}


# -- mcp/sessions -------------------------------------------------------------------------------------


class SessionsArgs(WindowArgs):
    client: TextFilter = Field(None, max_length=200, description='Only this client ("claude-desktop").')
    booked: bool | None = Field(None, description="Only sessions that booked a demo (true) or did not (false).")
    limit: int = Field(50, ge=1, le=200, description="How many sessions, the most recently started first.")


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    client: str
    client_version: str | None
    display_name: str
    transport: str | None
    country: str | None
    started_at: int
    last_activity_at: int
    """The latest event of the session, or its start when it has none."""
    calls: int
    errors: int
    booked_demo: bool


@dataclass(frozen=True, slots=True)
class Sessions:
    gateway_id: str
    window: dict[str, int]
    limit: int
    sessions: list[SessionSummary]


async def sessions(asked: Asked, args: SessionsArgs) -> Sessions:
    window = args.window(asked.now_ms)
    answer = Sessions(asked.gateway_id, window.as_json(), args.limit, [])
    conditions = ["s.gateway_id = ?", "s.started_at_ms >= ?", "s.started_at_ms < ?"]
    params: list[object] = [asked.gateway_id, window.since_ms, window.until_ms]
    if args.client is not None:
        wanted = parse_client(args.client).name
        configs = [
            config for config in await _sessions_per_config(asked, window) if parse_client(config).name == wanted
        ]
        if not configs:
            return answer
        condition, config_params = in_list("s.client_config", configs)
        conditions.append(condition)
        params += config_params
    if args.booked is not None:
        conditions.append(f"x.booked_ms IS {'NOT ' if args.booked else ''}NULL")
    rows = await asked.store.fetch(
        "SELECT s.id, s.client_config, s.transport, s.country, s.started_at_ms, COALESCE(x.last_ms, s.started_at_ms),"
        " COALESCE(x.calls, 0), COALESCE(x.errors, 0), x.booked_ms"
        f" FROM mcp_sessions s LEFT JOIN sessions x ON x.gateway_id = s.gateway_id AND x.id = s.id"
        f" WHERE {' AND '.join(conditions)} ORDER BY s.started_at_ms DESC, s.seq DESC LIMIT ?",
        [*params, args.limit],
    )
    for session_id, config, transport, country, started, last, calls, errors, booked_ms in rows:
        client = parse_client(config)
        answer.sessions.append(
            SessionSummary(
                session_id=session_id,
                client=client.name,
                client_version=client.version,
                display_name=client.display_name,
                transport=transport,
                country=country,
                started_at=started,
                last_activity_at=max(started, last),
                calls=calls,
                errors=errors,
                booked_demo=booked_ms is not None,
            )
        )
    return answer


# -- mcp/sessions/{session_id} ------------------------------------------------------------------------


class SessionArgs(Args):
    session_id: str = Field(min_length=1, max_length=256)


@dataclass(frozen=True, slots=True)
class AgentCall:
    id: str
    name: str
    """Tool or prompt name, resource URI, or the list method ("tools/list")."""
    primitive_type: str | None
    operation: str | None
    latency_ms: float | None
    success: bool | None
    error_type: str | None
    ts: int
    args: str | None
    """JSON text as recorded (already redacted; may be cut short)."""
    result: str | None


@dataclass(frozen=True, slots=True)
class AgentSession:
    session_id: str
    client: str
    client_version: str | None
    display_name: str
    client_config: str
    connection_type: str
    transport: str | None
    country: str | None
    tools: list[str]
    user_data: dict[str, Any] | None
    started_at: int


@dataclass(frozen=True, slots=True)
class AgentSessionDetail:
    session: AgentSession
    booked_demo: bool
    calls: list[AgentCall]
    """Every recorded request of the session (calls and lists), in time order."""
    truncated: bool
    """True when the session had more than `MAX_SESSION_CALLS` and only the first are listed."""


async def agent_session(asked: Asked, session_id: str) -> AgentSessionDetail | None:
    """The session `session_id` of the asking gateway and its calls in order; None if it has no such session."""
    rows = await asked.store.fetch(
        "SELECT id, client_config, connection_type, transport, country, tools, user_data, started_at_ms"
        " FROM mcp_sessions WHERE gateway_id = ? AND id = ?",
        [asked.gateway_id, session_id],
    )
    if not rows:
        return None
    [(sid, config, connection_type, transport, country, tools, user_data, started)] = rows
    client = parse_client(config)
    session = AgentSession(
        sid,
        client.name,
        client.version,
        client.display_name,
        config,
        connection_type,
        transport,
        country,
        _json_list(tools),
        _json_object(user_data),
        started,
    )
    call_rows = await asked.store.fetch(
        "SELECT id, name, primitive_type, operation, latency_ms, success, error_type, ts_ms, args, result"
        " FROM events WHERE gateway_id = ? AND session_id = ? AND source = 'mcp' ORDER BY ts_ms, seq LIMIT ?",
        [asked.gateway_id, session_id, MAX_SESSION_CALLS + 1],
    )
    calls = [
        AgentCall(eid, name, kind, op, latency, None if ok is None else bool(ok), error, ts, call_args, result)
        for eid, name, kind, op, latency, ok, error, ts, call_args, result in call_rows[:MAX_SESSION_CALLS]
    ]
    booked = any((c.name, c.primitive_type, c.operation, c.success) == (BOOK_DEMO, "tool", "call", True) for c in calls)
    return AgentSessionDetail(session, booked, calls, len(call_rows) > MAX_SESSION_CALLS)


async def session_detail(asked: Asked, args: SessionArgs) -> AgentSessionDetail:
    detail = await agent_session(asked, args.session_id)
    if detail is None:
        raise NotFoundError("No such MCP session")
    return detail


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- mcp/conversions ----------------------------------------------------------------------------------


class ConversionsArgs(WindowArgs):
    limit: int = Field(50, ge=1, le=200, description="How many booked sessions to list, the latest booking first.")


@dataclass(frozen=True, slots=True)
class ClientConversions:
    client: str
    display_name: str
    sessions: int
    booked_sessions: int
    conversion_rate: float


@dataclass(frozen=True, slots=True)
class Conversion:
    session_id: str
    client: str
    display_name: str
    lead_id: str | None
    """From the booking's recorded result; None when output capture was off or cut it."""
    started_at: int
    booked_at: int
    time_to_book_ms: int


@dataclass(frozen=True, slots=True)
class Conversions:
    gateway_id: str
    window: dict[str, int]
    sessions: int
    """MCP sessions started in the window."""
    booked_sessions: int
    conversion_rate: float
    median_time_to_book_ms: float | None
    clients: list[ClientConversions]
    conversions: list[Conversion]


async def conversions(asked: Asked, args: ConversionsArgs) -> Conversions:
    """A session's conversion is its first successful `book_demo` call; sessions count where they started."""
    window = args.window(asked.now_ms)
    started = await _sessions_per_config(asked, window)
    # A session started in the window booked after its start: `sessions_by_booking` lists the bookings since the
    # window's start, a few thousand at most, and each is looked up in `mcp_sessions`. CROSS JOIN keeps SQLite
    # from starting at the window's tens of thousands of sessions instead (PostgreSQL plans it as a join).
    rows = await asked.store.fetch(
        "SELECT s.id, s.client_config, s.started_at_ms, x.booked_ms FROM sessions x CROSS JOIN mcp_sessions s"
        " WHERE x.gateway_id = ? AND x.booked_ms >= ? AND s.gateway_id = x.gateway_id AND s.id = x.id"
        " AND s.started_at_ms >= ? AND s.started_at_ms < ?",
        [asked.gateway_id, window.since_ms, window.since_ms, window.until_ms],
    )
    booked_sessions = []
    for session_id, config, started_at, booked_at in rows:
        client = parse_client(config)
        booked_sessions.append(
            Conversion(
                session_id,
                client.name,
                client.display_name,
                None,
                started_at,
                booked_at,
                max(0, booked_at - started_at),
            )
        )
    latest = sorted(booked_sessions, key=lambda c: (-c.booked_at, c.session_id))[: args.limit]
    lead_ids = await _booked_lead_ids(asked, [c.session_id for c in latest])
    per_client: dict[str, tuple[str, int, int]] = {}
    for config, count in started.items():
        client = parse_client(config)
        display, total, booked = per_client.get(client.name, (client.display_name, 0, 0))
        per_client[client.name] = (display, total + count, booked)
    for conversion in booked_sessions:
        display, total, booked = per_client.get(conversion.client, (conversion.display_name, 0, 0))
        per_client[conversion.client] = (display, total, booked + 1)
    by_client = [
        ClientConversions(name, display, total, booked, booked / total if total else 0.0)
        for name, (display, total, booked) in per_client.items()
    ]
    by_client.sort(key=lambda c: (-c.booked_sessions, -c.sessions, c.client))
    total_sessions = sum(started.values())
    return Conversions(
        gateway_id=asked.gateway_id,
        window=window.as_json(),
        sessions=total_sessions,
        booked_sessions=len(booked_sessions),
        conversion_rate=len(booked_sessions) / total_sessions if total_sessions else 0.0,
        median_time_to_book_ms=(
            statistics.median(c.time_to_book_ms for c in booked_sessions) if booked_sessions else None
        ),
        clients=by_client,
        conversions=[dataclasses.replace(c, lead_id=lead_ids.get(c.session_id)) for c in latest],
    )


async def _booked_lead_ids(asked: Asked, session_ids: list[str]) -> dict[str, str | None]:
    """The lead id each session's first successful `book_demo` call recorded (`events_by_session`). The calls are
    sorted here, latest first, so the first call's lead id is the one left in the dict: with an ORDER BY, SQLite
    would rather walk the whole gateway in time order (10M events: 10 s) than sort a handful of rows."""
    if not session_ids:
        return {}
    sessions, session_params = in_list("e.session_id", session_ids)
    rows = await asked.store.fetch(
        f"SELECT e.session_id, e.result, e.ts_ms, e.seq FROM events e WHERE e.gateway_id = ? AND {sessions}"
        f" AND {BOOKED_CALL}",
        [asked.gateway_id, *session_params],
    )
    rows.sort(key=lambda row: (row[2], row[3]), reverse=True)
    return {session_id: lead_id_in(result) for session_id, result, _, _ in rows}


def lead_id_in(result: str | None) -> str | None:
    """The `"lead_id"` a recorded `book_demo` result carries (the structured one, not the escaped text copy)."""
    found = _LEAD_ID.search(result or "")
    return found.group(1) if found else None


QUESTIONS: list[Question[Any]] = [
    Question(
        "/analytics/clients",
        "Per MCP client (Claude Desktop, Cursor, ...): sessions, versions, calls, errors, error rate, average latency",
        WindowArgs,
        clients,
        Clients,
    ),
    Question(
        "/analytics/mcp/sessions",
        "Recent MCP sessions: client, transport, last activity, calls, errors, whether they booked a demo",
        SessionsArgs,
        sessions,
        Sessions,
    ),
    Question(
        "/analytics/mcp/sessions/{session_id}",
        "One MCP session and all its calls in order, arguments and results as recorded",
        SessionArgs,
        session_detail,
        AgentSessionDetail,
    ),
    Question(
        "/analytics/mcp/conversions",
        "MCP sessions that booked a demo: count, conversion rate, per client, time to book",
        ConversionsArgs,
        conversions,
        Conversions,
    ),
]
