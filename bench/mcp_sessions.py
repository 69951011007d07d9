"""What an open MCP session costs, and what a legitimate client waits while `initialize` floods in.

    .venv/bin/python bench/mcp_sessions.py [--sessions N] [--flood F] [--flood-ips K] [--table T] [--concurrency C]

Each part runs the gateway in a child process (uvicorn, uvloop, httptools, one worker, SQLite) on a loopback
socket this script binds and hands over:

memory      limits raised out of the way; N Streamable HTTP sessions opened (`initialize`, then
            `notifications/initialized`) over C connections and kept open; the server's RSS (/proc) before and
            after, and the growth per session.
flood rows  F unauthenticated `initialize` POSTs over C connections, from one IP (127.0.0.1) or from K
            loopback aliases (127.0.0.10, .11, …: other client IPs), while a legitimate client on
            127.0.0.2 opens a session and lists the tools again and again: how the flood was answered
            (200 / 429 / 503), the legitimate client's failures and its latency (connect + `tools/list`).
            `no flood` is the same client alone; `K IPs, table T` sets `MCP_GATEWAY_MAX_MCP_SESSIONS=T` so the
            flood fills the table and the least recently active sessions are evicted to let the client in.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from _common import (
    ACCEPT,
    HANDSHAKE_VERSION,
    HOST,
    MAX_HEAD_BYTES,
    Children,
    ChildServer,
    RawConnection,
    Reply,
    die_with_parent,
    fmt,
    gateway_app,
    message_of,
    open_session,
    percentile_ms,
    positive,
    serve_app,
    sigterm_interrupts,
    table,
    wait_ready,
)

MCP_PATH: Final = "/mcp?gid=demo"
LEGITIMATE_IP: Final = "127.0.0.2"
FIRST_FLOOD_ALIAS: Final = 10
"""The K flooding IPs are 127.0.0.10, 127.0.0.11, …"""
UNLIMITED: Final = 10**9

INITIALIZE: Final = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "flood", "version": "0"},
        },
    }
).encode()


class BoundConnection(RawConnection):
    """`RawConnection` whose connection comes from `local_address` (a loopback alias: another client IP)."""

    def __init__(self, port: int, local_address: str) -> None:
        super().__init__(port)
        self._local_address = local_address

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply:
        if self._reader is not None and self._reader.at_eof():
            await self.aclose()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                HOST, self._port, limit=MAX_HEAD_BYTES, local_addr=(self._local_address, 0)
            )
        return await super().request(method, path, headers, body)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


# --------------------------------------------------------------------------------------------------
# Child side.
# --------------------------------------------------------------------------------------------------


def serve_child(fd: int, db_path: Path, parent_pid: int, limits: Mapping[str, int]) -> None:
    die_with_parent(parent_pid)
    serve_app(gateway_app(db_path, **limits), fd)


def spawn(children: Children, name: str, **limits: int) -> ChildServer:
    args = ["--db", str(children.workdir / f"{name}.db")]
    for setting, value in limits.items():
        args += ["--limit", f"{setting}={value}"]
    return children.spawn(name, args)


# --------------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------------


async def memory_per_session(children: Children, sessions: int, concurrency: int) -> list[str]:
    room = sessions + 1000
    child = spawn(
        children,
        "memory",
        max_mcp_sessions=room,
        max_mcp_sessions_per_ip=room,
        new_mcp_sessions_per_ip_per_minute=UNLIMITED,
    )
    await wait_ready(child, "/health", need_200=True)
    warm = RawConnection(child.port)
    try:
        for _ in range(20):  # the gateway's runtime, the tracking path, the allocator's first arenas
            await open_session(warm, MCP_PATH)
    finally:
        await warm.aclose()
    await asyncio.sleep(1.0)  # the writer's batches of the warm-up sessions are committed
    before = rss_kib(child.process.pid)
    started = time.perf_counter()

    async def opener(count: int) -> None:
        connection = RawConnection(child.port)
        try:
            for _ in range(count):
                await open_session(connection, MCP_PATH)
        finally:
            await connection.aclose()

    shares = [sessions // concurrency + (1 if i < sessions % concurrency else 0) for i in range(concurrency)]
    await asyncio.gather(*(opener(share) for share in shares if share))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)
    after = rss_kib(child.process.pid)
    return [
        f"memory: {sessions} open Streamable HTTP sessions in {elapsed:.1f} s ({sessions / elapsed:.0f} opened/s)",
        f"  RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: {(after - before) / sessions:.1f} KiB per session",
    ]


@dataclass
class FloodRow:
    name: str
    answers: collections.Counter[int] = field(default_factory=collections.Counter)
    flood_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Seconds each legitimate connect + tools/list took."""
    failures: collections.Counter[str] = field(default_factory=collections.Counter)


async def legitimate_client(port: int, row: FloodRow, stop: asyncio.Event, minimum: int) -> None:
    """Open a session and list the tools, again and again, until `stop` (and at least `minimum` times)."""
    while not stop.is_set() or len(row.latencies) + sum(row.failures.values()) < minimum:
        connection = BoundConnection(port, LEGITIMATE_IP)
        started = time.perf_counter()
        try:
            session_id = await open_session(connection, MCP_PATH, client_name="legitimate")
            headers = {
                "content-type": "application/json",
                "accept": ACCEPT,
                "mcp-session-id": session_id,
                "mcp-protocol-version": HANDSHAKE_VERSION,
            }
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
            reply = await connection.request("POST", MCP_PATH, headers, body)
            if reply.status != 200 or "result" not in message_of(reply):
                raise RuntimeError(f"tools/list: HTTP {reply.status}")
            await connection.request("DELETE", MCP_PATH, headers)
            row.latencies.append(time.perf_counter() - started)
        except (RuntimeError, OSError, asyncio.IncompleteReadError) as exc:
            row.failures[str(exc).split(":")[0][:40]] += 1
        finally:
            await connection.aclose()
        await asyncio.sleep(0.05)


async def flood(child: ChildServer, row: FloodRow, requests: int, ips: Sequence[str], concurrency: int) -> None:
    headers = {"content-type": "application/json", "accept": ACCEPT}

    async def worker(count: int, ip: str) -> None:
        connection = BoundConnection(child.port, ip)
        try:
            for _ in range(count):
                reply = await connection.request("POST", MCP_PATH, headers, INITIALIZE)
                row.answers[reply.status] += 1
        finally:
            await connection.aclose()

    shares = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(share, ips[i % len(ips)]) for i, share in enumerate(shares) if share))
    row.flood_seconds = time.perf_counter() - started


async def flood_row(
    children: Children, name: str, requests: int, ips: Sequence[str], concurrency: int, **limits: int
) -> FloodRow:
    child = spawn(children, name.replace(" ", "-").replace(",", ""), **limits)
    await wait_ready(child, "/health", need_200=True)
    row = FloodRow(name)
    stop = asyncio.Event()
    client = asyncio.create_task(legitimate_client(child.port, row, stop, minimum=20))
    try:
        if requests and ips:
            await flood(child, row, requests, ips, concurrency)
    finally:
        stop.set()
        await client
    return row


def render_flood(rows: Sequence[FloodRow]) -> list[str]:
    head = ["", "flood 200", "429", "503", "other", "flood req/s", "client ok", "fail", "p50 ms", "p99 ms", "max ms"]
    body = []
    for row in rows:
        other = sum(count for status, count in row.answers.items() if status not in (200, 429, 503))
        total = sum(row.answers.values())
        rate = total / row.flood_seconds if row.flood_seconds else None
        latencies = row.latencies
        body.append(
            [
                row.name,
                str(row.answers[200]),
                str(row.answers[429]),
                str(row.answers[503]),
                str(other),
                fmt(rate, ".0f"),
                str(len(latencies)),
                str(sum(row.failures.values())),
                fmt(statistics.median(latencies) * 1000 if latencies else None, ".1f"),
                fmt(percentile_ms(latencies, 0.99) if latencies else None, ".1f"),
                fmt(max(latencies) * 1000 if latencies else None, ".1f"),
            ]
        )
    lines = table(head, body, left=1)
    for row in rows:
        if row.failures:
            lines.append(f"  {row.name}: client failures {dict(row.failures)}")
    return lines


async def bench(args: argparse.Namespace, children: Children) -> list[str]:
    lines = await memory_per_session(children, args.sessions, args.concurrency)
    aliases = [f"127.0.0.{FIRST_FLOOD_ALIAS + i}" for i in range(args.flood_ips)]
    rows = [
        await flood_row(children, "no flood", 0, [], args.concurrency),
        await flood_row(children, "1 IP, defaults", args.flood, [HOST], args.concurrency),
        await flood_row(
            children,
            f"{args.flood_ips} IPs, table {args.table}",
            args.flood,
            aliases,
            args.concurrency,
            max_mcp_sessions=args.table,
        ),
    ]
    lines.append("")
    lines.append(
        f"legitimate client on {LEGITIMATE_IP} (initialize, initialized, tools/list, DELETE) during the flood:"
    )
    lines += render_flood(rows)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=positive, default=2000, help="sessions held open for the memory figure")
    parser.add_argument("--flood", type=positive, default=10_000, help="initialize requests in each flood")
    parser.add_argument("--flood-ips", type=positive, default=20, help="loopback aliases the wide flood comes from")
    parser.add_argument("--table", type=positive, default=500, help="MCP_GATEWAY_MAX_MCP_SESSIONS of the wide flood")
    parser.add_argument("--concurrency", type=positive, default=32)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        if args.fd is None or args.db is None or args.parent is None:
            parser.error("--serve needs --fd, --db and --parent")
        limits = {name: int(value) for name, _, value in (item.partition("=") for item in args.limit)}
        serve_child(args.fd, args.db, args.parent, limits)
        return 0

    import uvloop

    try:
        with (
            sigterm_interrupts(),
            Children(__file__) as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            lines = runner.run(bench(args, children))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child servers stopped\n")
        return 130
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
