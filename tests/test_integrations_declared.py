"""`mcp-gateway integrations apply`: a gateway's integrations from a file, its secrets from the environment."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mcp_gateway.cli import run

from .support import DEMO

TOKEN = "EAAB-meta-token-" + "x" * 30
HOOK_SECRET = "whsec_" + "Q" * 40


def declared(path: Path, *entries: dict[str, Any]) -> str:
    path.write_text(json.dumps({"integrations": list(entries)}))
    return str(path)


def meta(**config: Any) -> dict[str, Any]:
    return {"kind": "meta", "name": "Meta ads", "config": {"pixel_id": "1234567890", **config}}


def stored(db_path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM integrations ORDER BY created_at_ms, id").fetchall()
    return [dict(row) for row in rows]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("META_CAPI_TOKEN", TOKEN)
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)


def test_apply_creates_then_updates_in_place_and_prunes_what_the_file_no_longer_names(
    db_path: Path, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(db_path)]
    hook = {
        "kind": "webhook",
        "name": "orders",
        "config": {"url": "http://127.0.0.1:9/in", "secret": {"env": "HOOK_SECRET"}},
    }
    first = declared(tmp_path / "v1.json", meta(access_token={"env": "META_CAPI_TOKEN"}, events=["Purchase"]), hook)
    assert run(["integrations", "apply", "--gateway", DEMO, first, *db]) == 0
    out = capsys.readouterr().out
    assert [line.split("\t")[1:] for line in out.splitlines()] == [
        ["created", "meta", "Meta ads"],
        ["created", "webhook", "orders"],
    ]
    assert TOKEN not in out and HOOK_SECRET not in out
    rows = stored(db_path)
    assert json.loads(rows[0]["event_filter"]) == ["Purchase"]
    assert all(TOKEN not in str(row) and HOOK_SECRET not in str(row) for row in rows)  # encrypted at rest

    second = declared(tmp_path / "v2.json", {**meta(access_token={"env": "META_CAPI_TOKEN"}), "sync": True})
    assert run(["integrations", "apply", "--gateway", DEMO, second, "--prune", *db]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[1:] for line in lines] == [["updated", "meta", "Meta ads"], ["deleted", "webhook", "orders"]]
    [row] = stored(db_path)
    assert row["id"] == lines[0][0] == rows[0]["id"]  # the same integration: its deliveries and history stay
    assert row["event_filter"] is None and row["sync"] == 1  # what the file leaves out goes back to its default


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"access_token": TOKEN}, "config.access_token"),  # a secret in clear
        ({"access_token": {"env": "NOT_SET_ANYWHERE"}}, "config.access_token"),
        ({"access_token": {"env": "META_CAPI_TOKEN"}, "pixel_id": "not digits"}, "pixel_id"),  # the platform's rule
    ],
)
def test_a_bad_file_changes_nothing_and_names_the_field(
    db_path: Path, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str], config: dict[str, Any], field: str
) -> None:
    good = {
        "kind": "webhook",
        "name": "first",
        "config": {"url": "http://127.0.0.1:9/in", "secret": {"env": "HOOK_SECRET"}},
    }
    path = declared(tmp_path / "bad.json", good, meta(**config))
    assert run(["integrations", "apply", "--gateway", DEMO, path, "--db", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert f"error: {field}" in err and TOKEN not in err
    assert stored(db_path) == []  # the good entry before the bad one was not written either


def test_the_same_integration_declared_twice_is_refused(
    db_path: Path, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = meta(access_token={"env": "META_CAPI_TOKEN"})
    path = declared(tmp_path / "twice.json", entry, entry)
    assert run(["integrations", "apply", "--gateway", DEMO, path, "--db", str(db_path)]) == 1
    assert "error: name" in capsys.readouterr().err
    assert stored(db_path) == []


def test_deliveries_lists_the_latest_newest_first_with_the_platforms_error(
    db_path: Path, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(db_path)]
    path = declared(tmp_path / "one.json", meta(access_token={"env": "META_CAPI_TOKEN"}))
    assert run(["integrations", "apply", "--gateway", DEMO, path, *db]) == 0
    integration_id = capsys.readouterr().out.split("\t")[0]
    rows = [
        (integration_id, "evt-1", "sent", 1, 1_765_000_000_000, 120, None),
        (integration_id, "evt-2", "failed", 1, 1_765_000_060_000, None, "OAuthException 100/-: bad pixel"),
    ]
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO deliveries (integration_id, gateway_id, event_id, event_ts_ms, payload, status, attempts,"
            " due_at_ms, created_at_ms, updated_at_ms, latency_ms, last_error) VALUES (?, 'demo', ?, 0, '{}', ?, ?,"
            " 0, 0, ?, ?, ?)",
            rows,
        )
    assert run(["integrations", "deliveries", "--gateway", DEMO, *db]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        [
            "2025-12-06T05:47:40+00:00",
            integration_id,
            "evt-2",
            "failed",
            "tries=1",
            "-",
            "OAuthException 100/-: bad pixel",
        ],
        ["2025-12-06T05:46:40+00:00", integration_id, "evt-1", "sent", "tries=1", "120ms"],
    ]
    assert run(["integrations", "deliveries", "--gateway", DEMO, "--limit", "0", *db]) == 1
    assert "--limit" in capsys.readouterr().err
    assert run(["integrations", "deliveries", "--gateway", DEMO, "--integration", "int_nope", *db]) == 1
