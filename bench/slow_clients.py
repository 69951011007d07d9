"""Stalled clients against the real `mcp-gateway serve`: how many it keeps, and whether `/health` still answers.

    .venv/bin/python bench/slow_clients.py [--connections N] [--addresses A] [--header-timeout S] [--code DIR ...]

For each code tree (`--code DIR`, the checkout whose `mcp_gateway` the server imports; default this one), the
script starts `mcp-gateway serve` on a free loopback port with `MCP_GATEWAY_HEADER_TIMEOUT_SECONDS=S` (a tree that
predates the setting ignores it), then opens N connections spread over A loopback source addresses (127.0.1.x,
so the per-address cap does not refuse them) and sends each half a header line, as a slowloris client does, and
nothing more. Meanwhile a well-behaved client on 127.0.0.2 asks `GET /health` every 100 ms on a new connection.
It reports how many stalled connections the server still holds at the peak, S + 3 s later, its open file
descriptors then (/proc, Linux), and /health's answers and latency over the whole run. Loopback only; N is at
most 5,000 and the process's open-file limit must allow N plus a margin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from _common import percentile_ms, table

ROOT: Final = Path(__file__).resolve().parent.parent
PARTIAL_REQUEST: Final = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
PROBE_ADDRESS: Final = "127.0.0.2"
PROBE_EVERY_S: Final = 0.1
PROBE_TIMEOUT_S: Final = 5.0
MAX_CONNECTIONS: Final = 5_000
"""Most stalled connections one run opens: the bench stays bounded."""


@dataclass
class Outcome:
    code: str
    opened: int
    held_at_peak: int
    held_after: int
    fds_at_peak: int
    fds_after: int
    probes: int
    probes_ok: int
    latencies: list[float]


@contextlib.contextmanager
def gateway(code: Path, header_timeout: float, workdir: Path) -> Iterator[tuple[int, int]]:
    """`mcp-gateway serve` importing `code`'s package on a free port: (pid, port). Killed on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    env |= {"PYTHONPATH": str(code), "MCP_GATEWAY_ADMIN_TOKEN": "bench-admin-token-0123456789"}
    env["MCP_GATEWAY_HEADER_TIMEOUT_SECONDS"] = str(header_timeout)
    executable = str(Path(sys.executable).with_name("mcp-gateway"))
    log = workdir / "server.log"
    command = [executable, "serve", "--port", "0", "--db", str(workdir / "g.db"), "--log-level", "info"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text("utf-8"))) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text('utf-8')}")
            time.sleep(0.05)
        yield process.pid, int(found.group(1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def stall(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    with contextlib.suppress(OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write(PARTIAL_REQUEST)
        await writer.drain()
        return reader, writer
    return None


async def still_open(reader: asyncio.StreamReader) -> bool:
    """True unless the server closed the connection (what it sent before closing is read and dropped)."""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(4096), 0.001)
        except TimeoutError:
            return True
        except OSError:
            return False
        if not chunk:
            return False


async def probe(port: int, stop: asyncio.Event, outcome: Outcome) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        started = time.perf_counter()
        outcome.probes += 1
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(PROBE_ADDRESS, 0))
                writer.write(request)
                answer = await reader.read()
                writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                outcome.probes_ok += 1
                outcome.latencies.append(time.perf_counter() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_EVERY_S)


async def run_one(code: Path, connections: int, addresses: int, header_timeout: float) -> Outcome:
    with (
        tempfile.TemporaryDirectory(prefix="slow-clients-") as workdir,
        gateway(code, header_timeout, Path(workdir)) as (
            pid,
            port,
        ),
    ):
        outcome = Outcome(str(code), 0, 0, 0, 0, 0, 0, 0, [])
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(port, stop, outcome))
        sources = [f"127.0.1.{1 + i % addresses}" for i in range(connections)]
        opened = [c for c in await asyncio.gather(*(stall(port, source) for source in sources)) if c is not None]
        outcome.opened = len(opened)
        await asyncio.sleep(1.0)
        outcome.held_at_peak = sum([await still_open(reader) for reader, _ in opened])
        outcome.fds_at_peak = open_fds(pid)
        await asyncio.sleep(header_timeout + 3.0)
        outcome.held_after = sum([await still_open(reader) for reader, _ in opened])
        outcome.fds_after = open_fds(pid)
        stop.set()
        await prober
        for _, writer in opened:
            writer.close()
        return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2_000, help="stalled connections (default 2000)")
    parser.add_argument("--addresses", type=int, default=50, help="loopback source addresses they come from (50)")
    parser.add_argument("--header-timeout", type=float, default=5.0, help="the server's header timeout (5 s)")
    parser.add_argument("--code", type=Path, action="append", help="checkout whose mcp_gateway to serve (repeat)")
    args = parser.parse_args()
    if not 1 <= args.connections <= MAX_CONNECTIONS or not 1 <= args.addresses <= 250:
        parser.error(f"--connections must be 1..{MAX_CONNECTIONS} and --addresses 1..250")
    rows = []
    for code in args.code or [ROOT]:
        o = asyncio.run(run_one(code.resolve(), args.connections, args.addresses, args.header_timeout))
        rows.append(
            [
                o.code,
                str(o.opened),
                str(o.held_at_peak),
                str(o.held_after),
                f"{o.fds_at_peak} / {o.fds_after}",
                f"{o.probes_ok}/{o.probes}",
                f"{percentile_ms(o.latencies, 0.5):.1f}",
                f"{percentile_ms(o.latencies, 1.0):.1f}",
            ]
        )
    after = f"held {args.header_timeout + 3:g}s on"
    head = ["code", "opened", "held at peak", after, "server fds peak / after", "/health ok", "p50 ms", "max ms"]
    print("\n".join(table(head, rows, left=1)))


if __name__ == "__main__":
    main()
