"""What `track_mcp` costs a server: `tools/call` throughput of a plain SDK server, and of the same server tracked.

    .venv/bin/python bench/tracking_overhead.py [--requests N] [--concurrency C] [--warmup W] [--rounds R]
                                                [--transports json,stateful] [--sinks gateway,null,down]
                                                [--batch-size B]

The server under test is the smallest `MCPServer` there is: one async `echo` tool (one `str`
argument). It runs in one of two transports,

    json        `streamable_http_app(stateless_http=True, json_response=True)`: one plain JSON-RPC POST
                per call (with `MCP-Protocol-Version`), answered as JSON
    stateful    `streamable_http_app()` with its defaults: `initialize` once per connection, then calls
                in its `Mcp-Session-Id` session, answered as SSE

and in up to four variants, each a child process (uvicorn, uvloop, httptools, one worker, no access
log) on a loopback socket this script binds and hands over:

    plain       the server as it is
    ->gateway   `track_mcp(server, org_key, endpoint=<gateway>)`: the default `HttpSink` delivering to a
                real gateway process (what `mcp-gateway serve` runs, on its own SQLite file, with an org
                key made by `mcp-gateway keys create --kind org`), which commits every batch to disk
    ->null      `track_mcp(server, org, sink=<a sink that drops everything>)`: the middleware alone
    ->down      `track_mcp(server, org_key, endpoint=<a loopback port that refuses connections>)`: the
                backend is down; the sink retries, backs off, spools to disk, and the server must not notice

Every tracked server has its own spool directory in the run's scratch directory. A row is one
transport and variant; every round runs every row (every other round in reverse order), and the
ratios tracked / plain are medians of per-round ratios, so load from elsewhere affects both sides
of a pair alike. Server CPU comes from /proc (Linux). Around a `->gateway` row's timed requests the
script waits (at most 30 s) until the sink has delivered everything queued: before, so the row
starts with an empty queue, and after, so the row's events are all delivered. `queued` is what
the sink still held when the timed requests ended, `drain` how long delivering it took, and
`+delivery` the server's CPU per request from the first timed request to the last delivery (the
cost of a request and of sending its event); `backend CPU` is the gateway's over the same span.

The last table is what every tracked server's sink did over the whole run (after a final flush of
the `->gateway` sinks) and what the gateway stored. Children are stopped on exit, on error, on
Ctrl-C and on SIGTERM, and are killed by the kernel if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from _common import (
    ACCEPT,
    HANDSHAKE_VERSION,
    REQUEST_TIMEOUT_S,
    Children,
    ChildServer,
    Json,
    RawConnection,
    Reply,
    Tally,
    add_child_arguments,
    create_org_key,
    die_with_parent,
    fmt,
    gateway_app,
    median_known,
    median_ratio,
    median_run,
    message_of,
    non_negative,
    open_session,
    percentile_ms,
    positive,
    post_all,
    refused_port,
    serve_app,
    sigterm_interrupts,
    table,
    wait_ready,
)

if TYPE_CHECKING:
    from mcp_gateway_tracking import CaptureItem, SinkStats

Transport = Literal["json", "stateful"]
Variant = Literal["plain", "gateway", "null", "down"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("json", "stateful")
SINKS: Final[tuple[Variant, ...]] = ("gateway", "null", "down")
TRANSPORT_LABELS: Final[dict[Transport, str]] = {
    "json": "json (stateless)",
    "stateful": "stateful (SSE)",
}
VARIANT_LABELS: Final[dict[Variant, str]] = {
    "plain": "plain SDK",
    "gateway": "tracked ->gateway",
    "null": "tracked ->null",
    "down": "tracked ->down",
}

BACKEND: Final = "backend"
ECHO_TEXT: Final = "hello"
MCP_PATH: Final = "/mcp"
NULL_ORG: Final = "bench-org"
GOAL: Final = 0.95
"""Throughput a tracked server should keep, as a fraction of the plain server's."""

ROW_TIMEOUT_S: Final = 60.0
ROW_TIMEOUT_PER_REQUEST_S: Final = 0.02
"""A row (warm-up or timed) fails after 60 s plus 20 ms per request: far slower than any server here."""
DRAIN_TIMEOUT_S: Final = 30.0
"""Longest wait, after a `->gateway` row, for its sink to deliver what the row produced."""


def _name(transport: Transport, variant: Variant) -> str:
    return f"{transport}-{variant}"


# --------------------------------------------------------------------------------------------------
# Child side.
# --------------------------------------------------------------------------------------------------


class NullSink:
    """A `CaptureSink` that counts what it is given and drops it: what is left is the middleware's cost."""

    def __init__(self) -> None:
        from mcp_gateway_tracking import SinkStats

        self._stats = SinkStats()
        self.submitted = 0
        self.pending = 0

    @property
    def stats(self) -> SinkStats:
        return self._stats

    def submit(self, item: CaptureItem, *, org_id: str | None = None) -> bool:
        self.submitted += 1
        return True

    def start(self) -> None:
        return None

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        return None


def _server_app(transport: Transport, variant: Variant, args: argparse.Namespace) -> Any:
    """The `echo` server, tracked as `variant` says, plus `GET /bench/sink` and `POST /bench/flush`."""
    from mcp.server import MCPServer
    from mcp_gateway_tracking import Tracker, track_mcp
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    server = MCPServer(name="plain-sdk-bench")

    @server.tool(name="echo", description="Return the text unchanged.")
    async def echo(text: str) -> str:
        return text

    tracker: Tracker | None = None
    if variant == "null":
        tracker = track_mcp(server, NULL_ORG, sink=NullSink())
    elif variant != "plain":
        tracker = track_mcp(
            server, args.org_key, endpoint=args.endpoint, spool_dir=args.spool, batch_size=args.batch_size
        )
    if transport == "json":
        app = server.streamable_http_app(stateless_http=True, json_response=True)
    else:
        app = server.streamable_http_app()

    async def sink(_: Request) -> JSONResponse:
        if tracker is None:
            return JSONResponse({})
        spool = getattr(tracker.sink, "spool", None)
        return JSONResponse(
            {
                "sent": tracker.sent,
                "retried": tracker.retried,
                "dropped": tracker.dropped,
                "pending": getattr(tracker.sink, "pending", 0),
                "submitted": getattr(tracker.sink, "submitted", None),
                "spool_bytes": spool.size if spool is not None else 0,
                "sessions": tracker.sessions,
            }
        )

    async def flush(request: Request) -> JSONResponse:
        timeout = float(request.query_params.get("timeout", "10"))
        started = time.perf_counter()
        flushed = True if tracker is None else await tracker.flush(timeout)
        return JSONResponse({"flushed": flushed, "seconds": time.perf_counter() - started})

    app.router.routes[0:0] = [
        Route("/bench/sink", sink, methods=["GET"]),
        Route("/bench/flush", flush, methods=["POST"]),
    ]
    return app


def serve_child(args: argparse.Namespace) -> None:
    die_with_parent(args.parent)
    if args.serve == BACKEND:
        app = gateway_app(args.db)
    else:
        transport, variant = args.serve.split("-", 1)
        app = _server_app(transport, variant, args)
    serve_app(app, args.fd)


# --------------------------------------------------------------------------------------------------
# Load: C keep-alive connections, each sending its share of N `tools/call echo` one after another.
# --------------------------------------------------------------------------------------------------


def _call_body(request_id: int) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": ECHO_TEXT}},
    }
    return json.dumps(message, separators=(",", ":")).encode()


def _echoed(reply: Reply) -> int | str:
    """For `post_all`: 1 if a 200 reply is the echo, else what is wrong with it."""
    message = message_of(reply)
    result = message.get("result")
    content = (result.get("content") or [{}]) if isinstance(result, dict) else [{}]
    if not isinstance(result, dict) or result.get("isError") or content[0].get("text") != ECHO_TEXT:
        return f"unexpected reply: {json.dumps(message)[:300]}"
    return 1


async def _drive(connections: Sequence[RawConnection], sessions: Sequence[str | None], requests: int) -> Tally:
    """Send `requests` `tools/call echo` (ids 1..N) over the connections, one at a time on each; time every one."""
    return await post_all(
        connections,
        MCP_PATH,
        {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": HANDSHAKE_VERSION},
        (_call_body(request_id) for request_id in range(1, requests + 1)),
        _echoed,
        timeout_s=ROW_TIMEOUT_S + ROW_TIMEOUT_PER_REQUEST_S * requests,
        sessions=sessions,
    )


async def _get_json(child: ChildServer, method: str, path: str, timeout: float = 10.0) -> Json:
    connection = RawConnection(child.port)
    try:
        async with asyncio.timeout(timeout):
            reply = await connection.request(method, path, {"accept": "application/json"})
    finally:
        await connection.aclose()
    if reply.status != 200:
        raise RuntimeError(f"{method} {path} on {child.name}: HTTP {reply.status} {reply.body[:200]!r}")
    data: Json = json.loads(reply.body)
    return data


@dataclass
class Run:
    """One row in one round."""

    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu_s: float | None
    """The server's CPU time while the timed requests ran."""
    delivered_cpu_s: float | None
    """->gateway: the server's CPU time from the first timed request until the sink delivered the last event."""
    backend_cpu_s: float | None
    """->gateway: the gateway's CPU time over the same span."""
    queued: int | None
    drain_s: float | None
    first_error: str | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile_ms(self.latencies, q)

    def _per_request(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.requests * 1e6

    @property
    def cpu_us(self) -> float | None:
        return self._per_request(self.server_cpu_s)

    @property
    def delivered_cpu_us(self) -> float | None:
        return self._per_request(self.delivered_cpu_s)

    @property
    def total_cpu_us(self) -> float | None:
        """CPU per request including delivering its event, where that is measured."""
        return self.delivered_cpu_us if self.delivered_cpu_s is not None else self.cpu_us

    @property
    def backend_us(self) -> float | None:
        return self._per_request(self.backend_cpu_s)


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


async def _drain(child: ChildServer) -> float:
    """Wait until the child's sink has delivered everything queued; the seconds it took."""
    flushed = await _get_json(child, "POST", f"/bench/flush?timeout={DRAIN_TIMEOUT_S}", DRAIN_TIMEOUT_S + 10)
    if not flushed["flushed"]:
        raise RuntimeError(f"{child.name}: the sink did not deliver its queue within {DRAIN_TIMEOUT_S:.0f}s")
    return float(flushed["seconds"])


async def run_row(
    child: ChildServer, backend: ChildServer | None, transport: Transport, variant: Variant, args: argparse.Namespace
) -> Run:
    connections = [RawConnection(child.port) for _ in range(args.concurrency)]
    sessions: list[str | None] = [None] * len(connections)
    queued: int | None = None
    drain_s = cpu_drained = backend_drained = None
    try:
        if transport == "stateful":
            sessions = list(await asyncio.gather(*(open_session(c, MCP_PATH) for c in connections)))
        if args.warmup:
            await _drive(connections, sessions, args.warmup)
        if variant == "gateway":
            await _drain(child)  # the timed window starts with an empty queue
        backend_before = backend.cpu_seconds() if backend is not None else None
        cpu_before = child.cpu_seconds()
        started = time.perf_counter()
        tally = await _drive(connections, sessions, args.requests)
        seconds = time.perf_counter() - started
        cpu_after = child.cpu_seconds()
        if variant != "plain":
            queued = int((await _get_json(child, "GET", "/bench/sink")).get("pending", 0))
        if variant == "gateway":
            drain_s = await _drain(child)
            cpu_drained = child.cpu_seconds()
            backend_drained = backend.cpu_seconds() if backend is not None else None
    finally:
        for connection, session_id in zip(connections, sessions, strict=True):
            if session_id is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        await connection.request("DELETE", MCP_PATH, {"mcp-session-id": session_id})
            await connection.aclose()
    return Run(
        requests=args.requests,
        seconds=seconds,
        latencies=tally.latencies,
        errors=tally.errors,
        server_cpu_s=_delta(cpu_after, cpu_before),
        delivered_cpu_s=_delta(cpu_drained, cpu_before),
        backend_cpu_s=_delta(backend_drained, backend_before),
        queued=queued,
        drain_s=drain_s,
        first_error=tally.first_error,
    )


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    transport: Transport
    variant: Variant
    runs: list[Run] = field(default_factory=list)

    @property
    def typical(self) -> Run:
        """The round with the median rate."""
        return median_run(self.runs)

    def median(self, values: Sequence[float | None]) -> float | None:
        return median_known(values)


def render(rows: Sequence[Row], sinks: Mapping[str, Json], stored: Json, args: argparse.Namespace) -> str:
    body = []
    for row in rows:
        typical = row.typical
        rates = [r.rate for r in row.runs]
        body.append(
            (
                TRANSPORT_LABELS[row.transport],
                VARIANT_LABELS[row.variant],
                f"{typical.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                f"{typical.percentile(0.50):.2f}",
                f"{typical.percentile(0.99):.2f}",
                fmt(row.median([r.cpu_us for r in row.runs]), ".0f"),
                fmt(row.median([r.delivered_cpu_us for r in row.runs]), ".0f"),
                fmt(row.median([r.backend_us for r in row.runs]), ".0f"),
                fmt(row.median([r.queued for r in row.runs]), ".0f"),
                fmt(row.median([r.drain_s for r in row.runs]), ".2f"),
                str(sum(r.errors for r in row.runs)),
            )
        )
    head = (
        *("transport", "server", "req/s", "min-max", "p50 ms", "p99 ms", "srv CPU us/req"),
        *("+delivery", "backend CPU us/req", "queued", "drain s", "errors"),
    )
    ratio_body = []
    for transport in TRANSPORTS:
        plain = next((r for r in rows if r.transport == transport and r.variant == "plain"), None)
        if plain is None:
            continue
        for row in rows:
            if row.transport != transport or row.variant == "plain":
                continue
            rounds = list(zip(row.runs, plain.runs, strict=True))
            rate = median_ratio([(t.rate, p.rate) for t, p in rounds])
            verdict = "-" if rate is None else ("yes" if rate >= GOAL else "NO")
            ratio_body.append(
                (
                    TRANSPORT_LABELS[transport],
                    VARIANT_LABELS[row.variant],
                    fmt(rate, ".3f"),
                    fmt(median_ratio([(t.percentile(0.5), p.percentile(0.5)) for t, p in rounds]), ".2f"),
                    fmt(median_ratio([(t.percentile(0.99), p.percentile(0.99)) for t, p in rounds]), ".2f"),
                    fmt(median_ratio([(t.total_cpu_us, p.cpu_us) for t, p in rounds]), ".2f"),
                    verdict,
                )
            )
    sink_body = []
    for name, stats in sinks.items():
        dropped = stats.get("dropped") or {}
        sink_body.append(
            (
                name,
                str(stats.get("submitted") if stats.get("submitted") is not None else "-"),
                str(stats.get("sent", "-")),
                str(stats.get("retried", "-")),
                ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "0",
                str(stats.get("pending", "-")),
                f"{int(stats.get('spool_bytes', 0)) / 1024:.0f} KiB",
            )
        )
    out = [
        f"{args.requests} timed tools/call per row and round after {args.warmup} warm-up, {args.concurrency} "
        f"connections, {args.rounds} round(s); HttpSink batch_size {args.batch_size}; uvicorn uvloop+httptools, "
        f"1 worker per server, {os.cpu_count()} CPUs. req/s, p50, p99: the round with the median req/s; "
        "CPU, queued, drain: medians over rounds.",
        "",
        *table(head, body, left=2),
        "",
        f"tracked / plain, same transport (median of per-round ratios; goal: req/s >= {GOAL}; "
        "srv CPU/req of ->gateway includes delivering the events: its +delivery column)",
        *table(("transport", "server", "req/s", "p50", "p99", "srv CPU/req", "goal"), ratio_body, left=2),
    ]
    if sink_body:
        out += [
            "",
            "tracking sinks over the whole run (->gateway after a final flush); items = sessions + events",
            *table(("server", "submitted", "sent", "retried", "dropped", "pending", "spool"), sink_body, left=1),
        ]
    if stored:
        writer = stored.get("writer") or {}
        commits = writer.get("commits") or 0
        out.append(
            f"gateway stored {stored['events']} events and {stored['sessions']} sessions in "
            f"{commits:.0f} commits ({fmt(writer['jobs'] / commits if commits else None, '.1f')} requests, "
            f"{fmt(writer['events'] / commits if commits else None, '.1f')} events per commit; "
            f"writer busy {writer.get('busy_s', 0):.1f} s)"
        )
    for row in rows:
        for r in row.runs:
            if r.first_error:
                out.append(f"! {TRANSPORT_LABELS[row.transport]} / {VARIANT_LABELS[row.variant]}: {r.first_error}")
                break
    return "\n".join(out)


def _stored(db_path: Path) -> Json:
    """Events and sessions in the gateway's database (read-only)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        sessions = conn.execute("SELECT COUNT(*) FROM mcp_sessions").fetchone()[0]
    finally:
        conn.close()
    return {"events": int(events), "sessions": int(sessions)}


# --------------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, children: Children) -> tuple[list[Row], dict[str, Json], Json]:
    transports: list[Transport] = args.transports
    variants: list[Variant] = ["plain", *args.sinks]
    with contextlib.ExitStack() as stack:
        backend: ChildServer | None = None
        db_path = children.workdir / "gateway.db"
        org_key = "org_nobody-listens"  # what ->down sends; a ->gateway server sends a real one
        if "gateway" in variants:
            org_key = await asyncio.to_thread(create_org_key, db_path)
            backend = children.spawn(BACKEND, ["--db", str(db_path)])
        down_port = 9  # discard: unused unless ->down runs
        if "down" in variants:
            refused, down_port = refused_port()
            stack.callback(refused.close)
        servers: dict[str, ChildServer] = {}
        for transport in transports:
            for variant in variants:
                name = _name(transport, variant)
                endpoint = (
                    backend.url if variant == "gateway" and backend is not None else f"http://127.0.0.1:{down_port}"
                )
                extra = ["--endpoint", endpoint, "--org-key", org_key, "--batch-size", str(args.batch_size)]
                extra += ["--spool", str(children.workdir / f"spool-{name}")]
                servers[name] = children.spawn(name, extra)
        waits = [wait_ready(child, "/bench/sink", need_200=True) for child in servers.values()]
        if backend is not None:
            waits.append(wait_ready(backend, "/health", need_200=True))
        await asyncio.gather(*waits)

        rows = [Row(t, v) for t in transports for v in variants]
        for round_number in range(args.rounds):
            # Every other round runs the rows backwards, so neither side of a pair always goes first.
            for row in rows if round_number % 2 == 0 else rows[::-1]:
                child = servers[_name(row.transport, row.variant)]
                run = await run_row(child, backend, row.transport, row.variant, args)
                row.runs.append(run)
                sys.stderr.write(
                    f"  round {round_number + 1}: {TRANSPORT_LABELS[row.transport]:<17} "
                    f"{VARIANT_LABELS[row.variant]:<18} {run.rate:>6.0f} req/s  p99 {run.percentile(0.99):6.1f} ms"
                    f"  {fmt(run.cpu_us, '.0f'):>5} us/req  {run.errors} errors\n"
                )

        sinks: dict[str, Json] = {}
        for name, child in servers.items():
            if name.endswith("-gateway"):
                await _get_json(child, "POST", f"/bench/flush?timeout={DRAIN_TIMEOUT_S}", DRAIN_TIMEOUT_S + 10)
            if not name.endswith("-plain"):
                sinks[name] = await _get_json(child, "GET", "/bench/sink")
        stored: Json = {}
        if backend is not None:
            stored = await asyncio.to_thread(_stored, db_path)
            stored["writer"] = await _get_json(backend, "GET", "/bench/writer")
        return rows, sinks, stored


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (choose from {', '.join(allowed)})")
        return list(dict.fromkeys(names))

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=positive, default=800, help="timed requests per row (default 800)")
    parser.add_argument("--concurrency", type=positive, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--warmup", type=non_negative, default=80, help="untimed requests per row (default 80)")
    parser.add_argument("--rounds", type=positive, default=5, help="times every row is run (default 5)")
    parser.add_argument(
        "--transports", type=_names(TRANSPORTS), default=list(TRANSPORTS), help="json,stateful (default both)"
    )
    parser.add_argument(
        "--sinks", type=_names(SINKS), default=list(SINKS), help="tracked variants: gateway,null,down (default all)"
    )
    parser.add_argument("--batch-size", type=positive, default=5, help="HttpSink batch_size (default 5, its default)")
    add_child_arguments(parser)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--org-key", help=argparse.SUPPRESS)
    parser.add_argument("--spool", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve is not None:
        if args.fd is None or args.parent is None:
            parser.error("--serve needs --fd and --parent")
        serve_child(args)
        return 0

    import uvloop

    try:
        with (
            sigterm_interrupts(),
            Children(__file__, prefix="mcp-bench-tracking-") as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            rows, sinks, stored = runner.run(bench(args, children))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child servers stopped\n")
        return 130
    print(render(rows, sinks, stored, args))
    return 1 if any(r.errors for row in rows for r in row.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
