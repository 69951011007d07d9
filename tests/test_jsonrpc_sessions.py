"""The plain JSON-RPC POST's session table: bounded in number, per client, and in idle time."""

from __future__ import annotations

from mcp.types import ClientCapabilities, Implementation, InitializeRequestParams

from mcp_gateway.transports.jsonrpc_sessions import JsonRpcSessions

PARAMS = InitializeRequestParams(
    protocol_version="2025-11-25", capabilities=ClientCapabilities(), client_info=Implementation(name="c", version="1")
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(clock: Clock, *, max_sessions: int = 10, max_per_client: int = 10, idle: float = 60) -> JsonRpcSessions:
    return JsonRpcSessions(max_sessions=max_sessions, max_per_client=max_per_client, idle_timeout=idle, clock=clock)


def opened(sessions: JsonRpcSessions, client: str, gateway_id: str = "demo") -> str:
    session_id = sessions.new_id()
    sessions.open(session_id, gateway_id=gateway_id, client=client, client_params=PARAMS, protocol_version="2025-11-25")
    return session_id


def test_a_session_is_found_by_its_gateway_only() -> None:
    sessions = table(Clock())
    session_id = opened(sessions, "1.2.3.4")
    found = sessions.get(session_id, "demo")
    assert found is not None and found.client_params.client_info.name == "c"
    assert sessions.get(session_id, "other") is None
    assert sessions.get("nope", "demo") is None


def test_the_least_recently_used_session_makes_room_when_the_table_is_full() -> None:
    sessions = table(Clock(), max_sessions=2)
    first, second = opened(sessions, "a"), opened(sessions, "b")
    assert sessions.get(first, "demo") is not None  # used: now the second is the least recently used
    third = opened(sessions, "c")
    assert len(sessions) == 2
    assert sessions.get(second, "demo") is None
    assert sessions.get(first, "demo") is not None and sessions.get(third, "demo") is not None


def test_a_client_at_its_limit_pushes_out_its_own_oldest_session_not_anyone_elses() -> None:
    sessions = table(Clock(), max_per_client=2)
    other = opened(sessions, "b")
    mine = [opened(sessions, "a") for _ in range(3)]
    assert sessions.get(mine[0], "demo") is None
    assert all(sessions.get(session_id, "demo") is not None for session_id in [other, *mine[1:]])


def test_an_idle_session_expires_and_a_used_one_does_not() -> None:
    clock = Clock()
    sessions = table(clock, idle=60)
    idle, used = opened(sessions, "a"), opened(sessions, "b")
    clock.now += 40
    assert sessions.get(used, "demo") is not None
    clock.now += 30
    assert sessions.get(idle, "demo") is None
    assert sessions.get(used, "demo") is not None
    opened(sessions, "c")  # opening sweeps what expired
    assert len(sessions) == 2
