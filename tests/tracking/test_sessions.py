"""Which session a request belongs to: the keying rule, its LRU bound and the facts read from a request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mcp.server import ServerRequestContext
from mcp.types import CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_gateway_tracking import ConnectionFacts, SessionTable
from mcp_gateway_tracking.sessions import describe


class Anchor:
    """Stands for a connection's channel object."""


def test_a_transport_session_id_wins_over_everything_else() -> None:
    table = SessionTable()
    facts = ConnectionFacts(
        client_name="c", transport_session_id="abc", anchor=Anchor(), authorization="Bearer t", ip="1.2.3.4"
    )
    assert table.key(facts) == "sid:abc"


def test_the_same_connection_object_gives_the_same_key_and_another_one_another() -> None:
    table = SessionTable()
    first, second = Anchor(), Anchor()
    assert table.key(ConnectionFacts(anchor=first)) == table.key(ConnectionFacts(anchor=first, client_name="x"))
    assert table.key(ConnectionFacts(anchor=first)) != table.key(ConnectionFacts(anchor=second))
    assert table.key(ConnectionFacts(anchor=first)).startswith("conn:")


def test_a_new_connection_never_inherits_a_gone_connections_key() -> None:
    table = SessionTable()
    keys = set()
    ids = set()
    for _ in range(20):  # a freed object's id is soon reused (CPython frees it at `del`); its key must not be
        anchor = Anchor()
        ids.add(id(anchor))
        keys.add(table.key(ConnectionFacts(anchor=anchor)))
        del anchor
    assert len(keys) == 20
    assert len(ids) < 20


def test_sessionless_requests_are_keyed_by_a_hash_of_their_authorization() -> None:
    table = SessionTable()
    alice = ConnectionFacts(authorization="Bearer alice-token", client_name="a", ip="10.0.0.1")
    alice_elsewhere = ConnectionFacts(authorization="Bearer alice-token", client_name="b", ip="10.0.0.2")
    bob = ConnectionFacts(authorization="Bearer bob-token", client_name="a", ip="10.0.0.1")
    assert table.key(alice) == table.key(alice_elsewhere) != table.key(bob)
    assert table.key(alice).startswith("auth:") and "alice-token" not in table.key(alice)


def test_anonymous_sessionless_requests_are_keyed_by_client_and_address() -> None:
    table = SessionTable()
    key = table.key(ConnectionFacts(client_name="cursor", client_version="0.9", ip="10.0.0.1"))
    assert key == "client:cursor/0.9@10.0.0.1"
    assert key != table.key(ConnectionFacts(client_name="cursor", client_version="0.9", ip="10.0.0.2"))
    assert key != table.key(ConnectionFacts(client_name="cursor", client_version="1.0", ip="10.0.0.1"))


def test_a_key_gets_one_uuid4_session_id() -> None:
    table = SessionTable()
    session_id, created = table.get_or_create("k")
    assert created and uuid.UUID(session_id).version == 4
    assert table.get_or_create("k") == (session_id, False)
    assert table.get("k") == session_id


def test_the_least_recently_used_key_is_forgotten_past_the_bound() -> None:
    table = SessionTable(max_sessions=2)
    a, _ = table.get_or_create("a")
    b, _ = table.get_or_create("b")
    assert table.get("a") == a  # a is now the most recently used
    table.get_or_create("c")
    assert len(table) == 2
    assert table.get("b") is None and table.get("a") == a
    assert table.get_or_create("b")[0] != b


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SessionTable(max_sessions=0)


def test_client_config_is_name_and_version() -> None:
    assert ConnectionFacts(client_name="claude-desktop", client_version="1.2.3").client_config == "claude-desktop 1.2.3"
    assert ConnectionFacts(client_name="curl").client_config == "curl"
    assert ConnectionFacts().client_config == "unknown"


class _NoHandshake:
    client_params = None


def test_a_sessionless_request_names_its_client_from_the_meta_envelope() -> None:
    meta = {PROTOCOL_VERSION_META_KEY: "2026-07-28", CLIENT_INFO_META_KEY: {"name": "vscode", "version": "1.99"}}
    ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
        session=_NoHandshake(),  # type: ignore[arg-type]
        lifespan_context={},
        protocol_version="2026-07-28",
        method="tools/call",
        params={"name": "x", "_meta": meta},
        request_id=1,
    )
    facts = describe(ctx)
    assert (facts.client_config, facts.anchor, facts.transport_session_id, facts.ip) == ("vscode 1.99", None, None, "")
