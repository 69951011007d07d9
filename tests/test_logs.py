"""What `mcp-gateway serve` writes in its log, read from a real server's output (text and `--log-format json`):
no key or token from a query string, no raw client IP, and a client address from `X-Forwarded-For` only when a
configured proxy sent it, the same address the app itself records."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from mcp_gateway.logs import redact_target
from mcp_gateway.privacy import IpHasher
from mcp_gateway.services import HASH_SECRET_SETTING

from .support import (
    DEMO,
    HANDSHAKE,
    STARTUP_TIMEOUT,
    gateway_executable,
    jsonrpc_request,
    serve_environment,
    stored_rows,
)

SECRETS: Final = {
    "api_key": "rk_live_SECRET_READ_KEY_1",
    "token": "SECRET_TOKEN_2",
    "admin_token": "SECRET_ADMIN_3",
    "key": "SECRET_KEY_4",
    "session_id": "SECRET_SESSION_5",
    "email": "ada@example.com",
}
"""Query parameters a client may send, each with a value the log must never show."""

FORWARDED_CLIENT: Final = "203.0.113.7"
LOG_FORMATS: Final = ["text", "json"]


@dataclass
class LoggingServer:
    base_url: str
    db_path: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8")


@contextlib.contextmanager
def serve_logging(tmp_path: Path, *flags: str) -> Iterator[LoggingServer]:
    """`mcp-gateway serve` writing stdout and stderr into one file; stopped with SIGTERM (so the log is complete)
    when the block ends."""
    db_path = tmp_path / "g.db"
    output = tmp_path / "server.log"
    command = [gateway_executable(), "serve", "--port", "0", "--db", str(db_path), "--log-level", "info", *flags]
    with output.open("wb") as sink:
        process = subprocess.Popen(command, env=serve_environment(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", output.read_text("utf-8"))) is None:
            assert process.poll() is None, output.read_text("utf-8")
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.05)
        yield LoggingServer(f"http://127.0.0.1:{found.group(1)}", db_path, output)
        process.send_signal(signal.SIGTERM)
        process.wait(STARTUP_TIMEOUT)
    finally:
        process.kill()
        process.wait()


def client_hash(server: LoggingServer, ip: str) -> str:
    """The daily HMAC of `ip` under the server's own secret, as the store keeps it."""
    (row,) = stored_rows(server.db_path, "SELECT value FROM settings WHERE key = ?", HASH_SECRET_SETTING)
    hashed = IpHasher(bytes.fromhex(row["value"]))(ip)
    assert hashed is not None
    return hashed


def access_lines(log: str, log_format: str) -> list[str]:
    """The messages of the access lines in `log`."""
    if log_format == "json":
        records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        return [record["message"] for record in records if record["logger"] == "uvicorn.access"]
    return [line for line in log.splitlines() if " HTTP/1.1" in line]


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_access_lines_show_no_key_token_or_address_from_the_query(tmp_path: Path, log_format: str) -> None:
    with serve_logging(tmp_path, "--log-format", log_format) as server:
        assert httpx.get(f"{server.base_url}/stats", params={"api_key": SECRETS["api_key"]}).status_code == 401
        assert httpx.get(f"{server.base_url}/health", params={"gid": DEMO, **SECRETS}).status_code == 200
    log = server.log()
    lines = access_lines(log, log_format)

    assert [secret for secret in SECRETS.values() if secret in log or secret.replace("@", "%40") in log] == []
    assert any("GET /stats?api_key=[redacted] HTTP/1.1" in line for line in lines), lines
    assert any(f"GET /health?gid={DEMO}&api_key=[redacted]&token=[redacted]" in line for line in lines), lines


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_access_lines_name_the_client_by_the_stored_daily_hash_not_its_ip(tmp_path: Path, log_format: str) -> None:
    with serve_logging(tmp_path, "--log-format", log_format) as server:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        hashed = client_hash(server, "127.0.0.1")
    (line,) = [line for line in access_lines(server.log(), log_format) if "GET /health" in line]

    assert hashed in line
    assert "127.0.0.1" not in line


def tracked_from_forwarded_client(server: LoggingServer) -> str | None:
    """POST /track claiming (X-Forwarded-For) to come from `FORWARDED_CLIENT`; the IP hash the event was stored with."""
    response = httpx.post(
        f"{server.base_url}/track",
        params={"gid": DEMO},
        json={"event_name": "ForwardedCheck"},
        headers={"X-Forwarded-For": FORWARDED_CLIENT},
    )
    assert response.status_code == 200, response.text
    (row,) = stored_rows(server.db_path, "SELECT ip_hash FROM events WHERE name = ?", "ForwardedCheck")
    ip_hash: str | None = row["ip_hash"]
    return ip_hash


def test_forwarded_for_from_an_untrusted_peer_is_ignored_by_the_app_and_the_log(tmp_path: Path) -> None:
    with serve_logging(tmp_path) as server:
        stored = tracked_from_forwarded_client(server)
        peer, forwarded = client_hash(server, "127.0.0.1"), client_hash(server, FORWARDED_CLIENT)
    (line,) = [line for line in access_lines(server.log(), "text") if "POST /track" in line]

    assert stored == peer
    assert peer in line and forwarded not in line


def test_forwarded_for_from_a_trusted_proxy_is_the_client_for_the_app_and_the_log(tmp_path: Path) -> None:
    with serve_logging(tmp_path, "--trusted-proxy", "127.0.0.0/8") as server:
        stored = tracked_from_forwarded_client(server)
        forwarded = client_hash(server, FORWARDED_CLIENT)
    (line,) = [line for line in access_lines(server.log(), "text") if "POST /track" in line]

    assert stored == forwarded
    assert forwarded in line


def test_mcp_session_ids_are_shortened_and_line_breaks_a_client_sent_are_escaped(tmp_path: Path) -> None:
    streamable = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    with serve_logging(tmp_path) as server:
        opened = httpx.post(
            f"{server.base_url}/mcp?gid={DEMO}", json=jsonrpc_request("initialize", initialize), headers=streamable
        )
        forged = httpx.post(
            f"{server.base_url}/v1/mcp/{DEMO}/messages",
            params={"session_id": "nope\nCRITICAL forged line"},
            json=jsonrpc_request("ping"),
        )
    session_id = opened.headers["mcp-session-id"]
    log = server.log()

    assert forged.status_code == 400
    assert session_id not in log
    assert f"{session_id[:8]}…" in log
    assert not [line for line in log.splitlines() if line.startswith("CRITICAL forged")]


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/health", "/health"),
        ("/stats?api_key=rk_1&days=7", "/stats?api_key=[redacted]&days=7"),
        (
            "/x?X-Api-Key=1&apiKey=2&access_token=3&sig=4",
            "/x?X-Api-Key=[redacted]&apiKey=[redacted]&access_token=[redacted]&sig=[redacted]",
        ),
        ("/x?next=ada%40example.com&flag", "/x?next=[redacted]&flag"),
        ("/v1/leads/ada@example.com/notes?page=2", "/v1/leads/[redacted]/notes?page=2"),
    ],
)
def test_redacted_targets_keep_what_is_not_secret(target: str, shown: str) -> None:
    assert redact_target(target) == shown


def test_a_huge_target_is_cut_in_the_log() -> None:
    shown = redact_target("/x?" + "a=b&" * 10_000)

    assert len(shown) < 2100
    assert shown.endswith("…")
