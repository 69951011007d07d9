"""Gateway processes on PostgreSQL: ingest events/s and MCP tools/call/s for 1, 2 and 4 processes, and memory
while 1,000,000 events go in.

    .venv/bin/python bench/scale.py [--workers 1,2,4] [--events N] [--calls N] [--concurrency C]
                                    [--memory-events N] [--memory-workers W]

A PostgreSQL server of this machine's (tests/postgres.py: initdb into a temporary folder, a free loopback
port, fsync and full-page writes on, as a real server runs) gets a fresh database per row. The gateway is the
real `mcp-gateway serve --workers N --database-url ...`, its processes sharing one port (the kernel hands each
new connection to one of them).

Rows per process count:

    ingest       N single `POST /api/v1/capture-event` over C keep-alive connections, each answered 200 only
                 after its commit (a durable write per request, folded into group commits)
    tools/call   C Streamable HTTP sessions, one per connection, calling `book_demo` (the same person again:
                 the dedupe path, whose tracked call is the write) N times in all

`p50/p99` are request latencies. Then memory: `--memory-events` events through `POST /api/v1/capture-batch`
(100 a request) into `--memory-workers` processes, with the resident memory of every gateway process (parent
and workers, from /proc) printed as it goes: it should level off, not grow with the events stored.

The machine has 2 cores, shared by the load generator (this process), the gateway's processes and PostgreSQL:
more processes than cores measure the sharing, not a bigger server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from _common import (
    ACCEPT,
    HANDSHAKE_VERSION,
    STARTUP_TIMEOUT_S,
    Json,
    RawConnection,
    Reply,
    compact_json,
    fmt,
    message_of,
    open_session,
    percentile_ms,
    post_all,
    table,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.postgres import PostgresServer, running_server  # noqa: E402

ADMIN_TOKEN: Final = "bench-admin-token-0123456789abcdef"
BATCH: Final = 100
MEMORY_SAMPLES: Final = 10


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        """The parent's pid and its workers'."""
        found = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.process.pid:
                        found.append(int(entry.name))
        return found

    def rss_mib(self) -> float:
        total_kib = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
        return total_kib / 1024


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gateway(database_url: str, workers: int, folder: Path) -> Iterator[Gateway]:
    port = _free_port()
    log = folder / f"gateway-{workers}-{port}.log"
    env = {**os.environ, "MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_DATABASE_URL": database_url}
    env["MCP_GATEWAY_TRACK_RATE_LIMIT"] = "1000000000"
    executable = Path(sys.executable).with_name("mcp-gateway")
    command = [str(executable), "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        yield Gateway(process, port, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def request(port: int, method: str, path: str, body: Json | None = None, **headers: str) -> Reply:
    connection = RawConnection(port)
    try:
        data = b"" if body is None else compact_json(body)
        base = {"content-type": "application/json", "authorization": f"Bearer {ADMIN_TOKEN}"}
        return await connection.request(method, path, {**base, **headers}, data)
    finally:
        await connection.aclose()


async def wait_healthy(gateway: Gateway) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if (await request(gateway.port, "GET", "/health")).status == 200:
                return
        if gateway.process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway did not start:\n{gateway.log.read_text(errors='replace')[-2000:]}")


@dataclass
class Measured:
    what: str
    workers: int
    count: int
    seconds: float
    latencies: list[float]
    errors: int
    first_error: str | None

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def connections(port: int, count: int) -> list[RawConnection]:
    return [RawConnection(port) for _ in range(count)]


async def ingest(gateway: Gateway, org_key: str, events: int, concurrency: int, workers: int) -> Measured:
    headers = {"content-type": "application/json", "x-org-id": org_key}
    sessions = [str(uuid.uuid4()) for _ in range(concurrency)]
    for session_id in sessions:
        body = {"session_id": session_id, "client_config": "bench-client 1.0"}
        reply = await request(gateway.port, "POST", "/api/v1/capture-session", body, **headers)
        assert reply.status == 200, reply.body
    bodies = (
        compact_json(
            {
                "session_id": sessions[index % len(sessions)],
                "primitive_type": "tool",
                "primitive_name": "search",
                "latency": 12,
                "success": True,
                "args": {"q": f"query {index}"},
                "event_id": uuid.uuid4().hex,
            }
        )
        for index in range(events)
    )
    pool = await connections(gateway.port, concurrency)
    started = time.perf_counter()
    tally = await post_all(pool, "/api/v1/capture-event", headers, bodies, lambda reply: 1, timeout_s=3600)
    seconds = time.perf_counter() - started
    for connection in pool:
        await connection.aclose()
    return Measured("ingest events", workers, tally.stored, seconds, tally.latencies, tally.errors, tally.first_error)


async def tool_calls(gateway: Gateway, calls: int, concurrency: int, workers: int) -> Measured:
    path = "/mcp?gid=demo"
    pool = await connections(gateway.port, concurrency)
    sessions: list[str | None] = [await open_session(connection, path) for connection in pool]
    headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": HANDSHAKE_VERSION}
    arguments = {"name": "Ada", "email": "ada@example.com", "company": "Analytical Engines"}
    bodies = (
        compact_json(
            {
                "jsonrpc": "2.0",
                "id": index,
                "method": "tools/call",
                "params": {"name": "book_demo", "arguments": arguments},
            }
        )
        for index in range(calls)
    )

    def answered(reply: Reply) -> int | str:
        message = message_of(reply)
        return 1 if "result" in message and not message["result"].get("isError") else json.dumps(message)[:200]

    started = time.perf_counter()
    tally = await post_all(pool, path, headers, bodies, answered, timeout_s=3600, sessions=sessions)
    seconds = time.perf_counter() - started
    for connection in pool:
        await connection.aclose()
    return Measured("tools/call", workers, tally.stored, seconds, tally.latencies, tally.errors, tally.first_error)


async def memory(gateway: Gateway, org_key: str, events: int, concurrency: int) -> list[tuple[int, float]]:
    """RSS of the gateway's processes after each tenth of `events` (sent in batches of `BATCH`)."""
    headers = {"content-type": "application/json", "x-org-id": org_key}
    session_id = str(uuid.uuid4())
    body = {"session_id": session_id, "client_config": "bench-client 1.0"}
    reply = await request(gateway.port, "POST", "/api/v1/capture-session", body, **headers)
    assert reply.status == 200, reply.body
    samples = [(0, gateway.rss_mib())]
    step = max(BATCH, events // MEMORY_SAMPLES // BATCH * BATCH)
    pool = await connections(gateway.port, concurrency)
    sent = 0
    while sent < events:
        count = min(step, events - sent)
        bodies = (
            compact_json(
                {
                    "events": [
                        {
                            "session_id": session_id,
                            "primitive_type": "tool",
                            "primitive_name": f"tool_{(sent + start + offset) % 20}",
                            "latency": 10 + offset,
                            "success": offset % 10 != 0,
                            "event_id": uuid.uuid4().hex,
                        }
                        for offset in range(min(BATCH, count - start))
                    ]
                }
            )
            for start in range(0, count, BATCH)
        )
        tally = await post_all(pool, "/api/v1/capture-batch", headers, bodies, lambda reply: 1, timeout_s=3600)
        if tally.errors:
            raise RuntimeError(f"memory run: {tally.errors} failed requests, first: {tally.first_error}")
        sent += count
        samples.append((sent, gateway.rss_mib()))
        print(f"  {sent:>9,} events stored: gateway processes {samples[-1][1]:,.0f} MiB", file=sys.stderr, flush=True)
    for connection in pool:
        await connection.aclose()
    return samples


async def create_org_key(gateway: Gateway) -> str:
    reply = await request(gateway.port, "POST", "/v1/gateways/demo/keys", {"kind": "org"})
    assert reply.status == 201, reply.body
    key: str = json.loads(reply.body)["key"]
    return key


async def bench(args: argparse.Namespace, server: PostgresServer, folder: Path) -> None:
    rows: list[Measured] = []
    for workers in args.workers:
        url = server.create_database()
        with gateway(url, workers, folder) as running:
            await wait_healthy(running)
            org_key = await create_org_key(running)
            for measure in (
                ingest(running, org_key, args.events, args.concurrency, workers),
                tool_calls(running, args.calls, args.concurrency, workers),
            ):
                row = await measure
                rows.append(row)
                print(f"{workers} process(es): {row.what} {row.rate:,.0f}/s", file=sys.stderr, flush=True)
        server.release_database(url)
    print(f"PostgreSQL {server.version()}, {args.concurrency} connections, {os.cpu_count()} cores")
    head = ["what", "processes", "count", "seconds", "per second", "p50 ms", "p99 ms", "errors"]
    body = [
        [
            row.what,
            str(row.workers),
            f"{row.count:,}",
            f"{row.seconds:.1f}",
            f"{row.rate:,.0f}",
            fmt(percentile_ms(row.latencies, 0.50), ".1f"),
            fmt(percentile_ms(row.latencies, 0.99), ".1f"),
            str(row.errors) + (f" ({row.first_error})" if row.first_error else ""),
        ]
        for row in sorted(rows, key=lambda r: (r.what, r.workers))
    ]
    print("\n".join(table(head, body, left=1)))
    if args.memory_events:
        url = server.create_database()
        with gateway(url, args.memory_workers, folder) as running:
            await wait_healthy(running)
            samples = await memory(running, await create_org_key(running), args.memory_events, args.concurrency)
        print(f"\nmemory of {args.memory_workers} gateway process(es) (parent included) as events are stored:")
        print("\n".join(table(["events stored", "RSS MiB"], [[f"{n:,}", f"{mib:,.0f}"] for n, mib in samples], left=0)))


def _workers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=_workers, default=[1, 2, 4], help="process counts (default 1,2,4)")
    parser.add_argument("--events", type=int, default=20_000, help="events of each ingest row")
    parser.add_argument("--calls", type=int, default=5_000, help="tools/call requests of each MCP row")
    parser.add_argument("--concurrency", type=int, default=32, help="connections at once")
    parser.add_argument("--memory-events", type=int, default=1_000_000, help="events of the memory run (0: none)")
    parser.add_argument("--memory-workers", type=int, default=2, help="processes of the memory run")
    args = parser.parse_args(argv)
    with running_server(crash_safe=True) as server, tempfile.TemporaryDirectory(prefix="mcp-gateway-scale-") as tmp:
        asyncio.run(bench(args, server, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
