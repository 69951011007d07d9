"""Forwarding to an integration: events/s delivered to a fake Meta Conversions API on loopback, and what an
enabled integration costs `POST /track` ingest.

    .venv/bin/python bench/forwarding.py [--events N] [--concurrency C] [--rounds R] [--backlog B] [--dir DIR]

Two child processes on loopback sockets this script binds and hands over (`_common.Children`): the gateway
(`_common.gateway_app`: what `mcp-gateway serve` serves, SQLite, `track_rate_limit` raised out of reach) and a
fake Meta endpoint that answers `POST /{version}/{pixel}/events` as Meta does (`{"events_received": n}`) and
counts the events it got. The gateway has one Meta integration whose `endpoint` is the fake.

Rows:

    ingest off / on   N `POST /track` events over C keep-alive connections with the integration disabled, then
                      enabled (each event then also commits its delivery, and the worker forwards while the load
                      runs: the whole cost); R rounds, alternating which goes first. The ratio on / off is the
                      median of the per-round ratios (goal >= 0.9).
                      Beside the rates, the gateway's CPU per event (from /proc) on and off: on a busy machine
                      the rates move with other processes' load, the CPU per event much less.
    forwarding        every delivery stored so far replayed at once (`POST .../replay`: B or more pending
                      deliveries), timed until the fake has received them all: events/s delivered, in Meta's
                      batches of up to 1,000 events a request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from _common import (
    Children,
    ChildServer,
    RawConnection,
    Reply,
    Run,
    add_child_arguments,
    compact_json,
    die_with_parent,
    fmt,
    get_json,
    measure_load,
    median_known,
    median_ratio,
    positive,
    post_all,
    serve_app,
    sigterm_interrupts,
    table,
    wait_ready,
)

RATE_LIMIT: Final = 10**9
ADMIN_TOKEN: Final = "bench-admin-token-forwarding"
"""The child gateway's admin token (loopback only, for the life of the run)."""
PIXEL_ID: Final = "1234567890"
DRAIN_TIMEOUT_S: Final = 300.0


def fake_meta_app() -> Any:
    """Meta's `/{version}/{pixel_id}/events`, answering as Meta does, counting what it received."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    received = {"events": 0, "requests": 0}

    async def events(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        received["events"] += len(body["data"])
        received["requests"] += 1
        return JSONResponse({"events_received": len(body["data"]), "messages": [], "fbtrace_id": "bench"})

    async def count(_: Request) -> JSONResponse:
        return JSONResponse(received)

    return Starlette(routes=[Route("/{version}/{pixel}/events", events, methods=["POST"]), Route("/count", count)])


async def admin(child: ChildServer, method: str, path: str, body: Any) -> Any:
    connection = RawConnection(child.port)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    try:
        reply = await connection.request(method, path, headers, compact_json(body))
    finally:
        await connection.aclose()
    if reply.status >= 300:
        raise RuntimeError(f"{method} {path}: HTTP {reply.status} {reply.body[:300]!r}")
    return json.loads(reply.body)


def _confirmed(reply: Reply) -> int | str:
    return 1 if json.loads(reply.body).get("status") == "confirmed" else f"not confirmed: {reply.body[:200]!r}"


async def ingest(gateway: ChildServer, events: int, concurrency: int) -> Run:
    """`events` POST /track over `concurrency` connections: the rate acknowledged and the gateway's CPU."""
    connections = [RawConnection(gateway.port) for _ in range(concurrency)]
    headers = {"content-type": "application/json", "x-gateway-id": "demo"}
    bodies = (
        compact_json(
            {
                "event_name": "Purchase",
                "event_id": str(uuid.uuid4()),
                "user": {"email": f"buyer{i}@example.com"},
                "custom_data": {"value": 99.99, "currency": "USD"},
            }
        )
        for i in range(events)
    )
    try:
        run = await measure_load(
            gateway, events, lambda: post_all(connections, "/track", headers, bodies, _confirmed, timeout_s=300)
        )
    finally:
        for connection in connections:
            await connection.aclose()
    if run.errors:
        raise RuntimeError(f"{run.errors} requests failed: {run.first_error}")
    return run


async def wait_received(meta: ChildServer, total: int) -> float:
    """Seconds until the fake has received `total` events in all."""
    started = time.perf_counter()
    while (await get_json(meta, "/count"))["events"] < total:
        if time.perf_counter() - started > DRAIN_TIMEOUT_S:
            raise RuntimeError(f"the fake Meta got fewer than {total} events in {DRAIN_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, children: Children) -> str:
    meta = children.spawn("meta", [])
    gateway = children.spawn("gateway", ["--db", str(children.workdir / "gateway.db")])
    await wait_ready(meta, "/count", need_200=True)
    await wait_ready(gateway, "/health", need_200=True)
    config = {"pixel_id": PIXEL_ID, "access_token": "bench-token", "endpoint": meta.url}
    created = await admin(gateway, "POST", "/v1/gateways/demo/integrations", {"kind": "meta", "config": config})
    path = f"/v1/gateways/demo/integrations/{created['id']}"

    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float | None]] = {False: [], True: []}
    forwarded = 0
    for round_number in range(args.rounds):
        for enabled in (False, True) if round_number % 2 == 0 else (True, False):
            await admin(gateway, "PATCH", path, {"enabled": enabled})
            run = await ingest(gateway, args.events, args.concurrency)
            rates[enabled].append(run.rate)
            cpu[enabled].append(run.cpu_us_per_event)
            forwarded += args.events if enabled else 0
            sys.stderr.write(
                f"  round {round_number + 1}: integration {'on ' if enabled else 'off'} {run.rate:7.0f}/s"
                f"  {fmt(run.cpu_us_per_event, '.0f')} us gateway CPU per event\n"
            )
    await wait_received(meta, forwarded)

    while forwarded < args.backlog:  # enough deliveries for the throughput row
        await ingest(gateway, args.events, args.concurrency)
        forwarded += args.events
        await wait_received(meta, forwarded)
    before = (await get_json(meta, "/count"))["events"]
    replayed = (await admin(gateway, "POST", path + "/replay", {"since_ms": 0}))["replayed"]
    seconds = await wait_received(meta, before + replayed)
    requests = (await get_json(meta, "/count"))["requests"]

    ratio = median_ratio(list(zip(rates[True], rates[False], strict=True)))
    cpu_ratio = median_ratio(list(zip(cpu[False], cpu[True], strict=True)))
    body = [
        ["/track, integration off", fmt(statistics.median(rates[False]), ",.0f", " events/s"), ""],
        ["/track, integration on", fmt(statistics.median(rates[True]), ",.0f", " events/s"), ""],
        ["ratio on / off (goal >= 0.9)", fmt(ratio, ".2f"), "median of per-round ratios"],
        ["gateway CPU per event, off", fmt(median_known(cpu[False]), ".0f", " us"), ""],
        ["gateway CPU per event, on", fmt(median_known(cpu[True]), ".0f", " us"), "forwarding work included"],
        ["CPU ratio off / on", fmt(cpu_ratio, ".2f"), "the rate ratio on an idle machine"],
        ["forwarding to fake Meta", fmt(replayed / seconds, ",.0f", " events/s"), f"{replayed:,} replayed"],
    ]
    lines = [
        f"forwarding: {args.events:,} /track events x {args.rounds} rounds per row over {args.concurrency}"
        f" connections; {requests:,} requests reached the fake Meta",
        "",
        *table(["row", "figure", "note"], body, left=1),
    ]
    return "\n".join(lines)


def serve_child(args: argparse.Namespace) -> None:
    die_with_parent(args.parent)
    if args.serve == "meta":
        serve_app(fake_meta_app(), args.fd)
        return
    serve_app(gateway_app_with_admin(args.db), args.fd)


def gateway_app_with_admin(db: Path) -> Any:
    from _common import gateway_app

    return gateway_app(db, track_rate_limit=RATE_LIMIT, admin_token=ADMIN_TOKEN)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=positive, default=2000, help="POST /track requests per row and round (2000)")
    parser.add_argument("--concurrency", type=positive, default=16, help="connections (16)")
    parser.add_argument("--rounds", type=positive, default=3, help="rounds of the ingest rows (3)")
    parser.add_argument("--backlog", type=positive, default=10_000, help="least deliveries replayed (10000)")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temp dir)")
    add_child_arguments(parser)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
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
            Children(__file__, prefix="mcp-bench-forwarding-", workdir=args.dir) as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            print(runner.run(bench(args, children)))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child servers stopped\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
