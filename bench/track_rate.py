"""Sustained `POST /track` events/s into SQLite through the gateway, each acknowledged event durable.

    .venv/bin/python bench/track_rate.py [--events N] [--concurrency C] [--batches M] [--batch-size B]
                                         [--batch-concurrency CB] [--warmup W] [--rounds R] [--dir DIR]

The gateway is a child process serving what `mcp-gateway serve` serves (`create_app(Settings)`;
uvicorn, uvloop, httptools, one worker, no access log) on a loopback socket this script binds and
hands over, with `track_rate_limit` raised to 10**9 (the default, 100 per minute per gateway, would
answer 429 almost at once) and nothing else changed. Every request names the bundled `demo` gateway
(`X-Gateway-ID: demo`). Its store is the stock `SQLiteStore` (WAL, `synchronous=FULL`, one writer
thread folding every write job waiting into one transaction: group commit) with its writer counted
(`_common.gateway_app`), which gives the effective group-commit size and how busy the writer was.

Rows, each run `--rounds` times (every other round in reverse order):

    POST /track         N single events over C keep-alive connections
    POST /track/batch   M batches of B events each (at most 100) over CB connections

Each event is what a web page's tracker sends for a purchase: `event_name`, a fresh `event_id`,
`user.email` (hashed by the gateway) and a small `custom_data`. A 200 answers a signed receipt
(`status: confirmed`) only after the event is committed; at the end the script counts the stored
`source = 'web'` events and checks that every acknowledged one is there. `p50/p99` are request
latencies; gateway CPU comes from /proc (Linux). The child is stopped on exit, on error, on Ctrl-C
and on SIGTERM, and killed by the kernel if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

from _common import (
    Children,
    ChildServer,
    Json,
    RawConnection,
    Reply,
    Row,
    Run,
    Tally,
    add_child_arguments,
    compact_json,
    die_with_parent,
    fmt,
    gateway_app,
    measure_load,
    non_negative,
    positive,
    post_all,
    serve_app,
    sigterm_interrupts,
    table,
    wait_ready,
)

GATEWAY: Final = "gateway"
GATEWAY_ID: Final = "demo"
TRACK_PATH: Final = "/track"
BATCH_PATH: Final = "/track/batch"
MAX_BATCH: Final = 100
"""The `/track/batch` limit."""
RATE_LIMIT: Final = 10**9
"""`track_rate_limit` of the child: never reached."""
ROW_TIMEOUT_S: Final = 120.0
"""A row fails after this long: far slower than any disk here."""


# --------------------------------------------------------------------------------------------------
# Load.
# --------------------------------------------------------------------------------------------------


def _event(n: int) -> Json:
    return {
        "event_name": "Purchase",
        "event_id": str(uuid.uuid4()),
        "user": {"email": f"user{n % 1000}@example.com"},
        "custom_data": {"value": 42.5, "currency": "EUR", "content_ids": ["sku-1", "sku-2"], "order": n},
    }


def _confirmed(answer: object) -> bool:
    return isinstance(answer, dict) and answer.get("status") == "confirmed" and "receipt" in answer


def _single_stored(reply: Reply) -> int | str:
    return 1 if _confirmed(json.loads(reply.body)) else f"not confirmed: {reply.body[:200]!r}"


def _batch_stored(batch: int) -> Callable[[Reply], int | str]:
    def stored(reply: Reply) -> int | str:
        results = json.loads(reply.body).get("results")
        count = sum(1 for r in results if _confirmed(r)) if isinstance(results, list) else 0
        return count if count == batch else f"{batch - count} of {batch} not confirmed: {reply.body[:200]!r}"

    return stored


async def run_track(child: ChildServer, *, batch: int, requests: int, concurrency: int, warmup: int) -> Run:
    """`requests` requests of `batch` events (1: /track, else /track/batch) over `concurrency` connections."""
    path = TRACK_PATH if batch == 1 else BATCH_PATH
    stored = _single_stored if batch == 1 else _batch_stored(batch)
    headers = {"content-type": "application/json", "x-gateway-id": GATEWAY_ID}

    def bodies(count: int) -> list[bytes]:
        if batch == 1:
            return [compact_json(_event(i)) for i in range(count)]
        return [compact_json({"events": [_event(i * batch + j) for j in range(batch)]}) for i in range(count)]

    def send(connections: Sequence[RawConnection], payloads: list[bytes]) -> Awaitable[Tally]:
        return post_all(connections, path, headers, payloads, stored, timeout_s=ROW_TIMEOUT_S)

    connections = [RawConnection(child.port) for _ in range(concurrency)]
    try:
        if warmup:
            warm = await send(connections, bodies(warmup))
            if warm.errors:
                raise RuntimeError(f"warm-up failed: {warm.first_error}")
        timed = bodies(requests)
        return await measure_load(child, requests, lambda: send(connections, timed))
    finally:
        for connection in connections:
            await connection.aclose()


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------


def _acknowledged(rows: Sequence[Row], stored: Json) -> int:
    return sum(r.events for row in rows for r in row.runs) + int(stored["warmup"])


def render(rows: Sequence[Row], stored: Json, args: argparse.Namespace) -> str:
    body = []
    for row in rows:
        typical = row.typical
        rates = [r.rate for r in row.runs]
        body.append(
            (
                row.label,
                str(row.connections),
                f"{typical.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                f"{typical.requests / typical.seconds:.0f}" if typical.seconds else "-",
                f"{typical.percentile(0.50):.2f}",
                f"{typical.percentile(0.99):.2f}",
                fmt(row.median([r.events_per_commit for r in row.runs]), ".1f"),
                fmt(row.median([r.busy_percent for r in row.runs]), ".0f", "%"),
                fmt(row.median([r.cpu_us_per_event for r in row.runs]), ".0f"),
                fmt(row.median([r.cpu_percent for r in row.runs]), ".0f", "%"),
                str(sum(r.errors for r in row.runs)),
            )
        )
    head = (
        *("row", "conn", "events/s", "min-max", "req/s", "p50 ms", "p99 ms", "events/commit"),
        *("writer busy", "gw CPU us/event", "gw CPU", "errors"),
    )
    acknowledged = _acknowledged(rows, stored)
    verdict = "all there" if stored["events"] == acknowledged else "MISSING EVENTS"
    out = [
        f"{args.events} POST /track over {args.concurrency} connections, {args.batches} POST /track/batch of "
        f"{args.batch_size} events over {args.batch_concurrency} connections, {args.rounds} round(s), "
        f"{args.warmup} warm-up events per row. SQLite WAL, synchronous=FULL; uvicorn uvloop+httptools, "
        f"1 worker; {os.cpu_count()} CPUs. events/s, p50, p99: the round with the median events/s; others: medians.",
        "",
        *table(head, body, left=1),
        "",
        "(writer busy: the share of the row the writer thread spent between BEGIN and the end of COMMIT, "
        "fsync and waits for the GIL included)",
        f"durability: {acknowledged} events acknowledged (200, confirmed), {stored['events']} stored with "
        f"source 'web': {verdict}; journal_mode {stored['journal_mode']}",
    ]
    for row in rows:
        for r in row.runs:
            if r.first_error:
                out.append(f"! {row.label}: {r.first_error}")
                break
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------------


def _count_stored(db_path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT COUNT(*) FROM events WHERE source = 'web' AND gateway_id = ?"
        events = int(conn.execute(query, (GATEWAY_ID,)).fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()
    return events, journal


async def bench(args: argparse.Namespace, children: Children) -> tuple[list[Row], Json]:
    db_path = children.workdir / "gateway.db"
    child = children.spawn(GATEWAY, ["--db", str(db_path)])
    await wait_ready(child, "/health", need_200=True)

    b = args.batch_size
    rows = {
        "single": Row("single", "POST /track", "single", args.concurrency, 1),
        "batch": Row("batch", f"POST /track/batch x{b}", "batch", args.batch_concurrency, b),
    }
    warmup_events = 0
    for round_number in range(args.rounds):
        for key in ("single", "batch") if round_number % 2 == 0 else ("batch", "single"):
            row = rows[key]
            batch = 1 if key == "single" else b
            warmup = args.warmup if key == "single" else (max(1, args.warmup // batch) if args.warmup else 0)
            run = await run_track(
                child,
                batch=batch,
                requests=args.events if key == "single" else args.batches,
                concurrency=row.connections or 1,
                warmup=warmup,
            )
            warmup_events += warmup * batch
            row.runs.append(run)
            sys.stderr.write(
                f"  round {round_number + 1}: {row.label:<24} {run.rate:>7.0f} events/s"
                f"  {fmt(run.events_per_commit, '.1f'):>6} events/commit  {run.errors} errors\n"
            )

    events, journal = await asyncio.to_thread(_count_stored, db_path)
    return list(rows.values()), {"events": events, "journal_mode": journal, "warmup": warmup_events}


def serve_child(args: argparse.Namespace) -> None:
    die_with_parent(args.parent)
    serve_app(gateway_app(args.db, track_rate_limit=RATE_LIMIT), args.fd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=positive, default=3000, help="POST /track requests per round (3000)")
    parser.add_argument("--concurrency", type=positive, default=16, help="connections for POST /track (16)")
    parser.add_argument("--batches", type=positive, default=100, help="POST /track/batch requests per round (100)")
    parser.add_argument("--batch-size", type=positive, default=MAX_BATCH, help="events per batch (100, the most)")
    parser.add_argument("--batch-concurrency", type=positive, default=4, help="connections for /track/batch (4)")
    parser.add_argument("--warmup", type=non_negative, default=200, help="untimed events per row and round (200)")
    parser.add_argument("--rounds", type=positive, default=3, help="times every row is run (3)")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temp dir)")
    add_child_arguments(parser)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve is not None:
        if args.fd is None or args.parent is None or args.db is None:
            parser.error("--serve needs --fd, --parent and --db")
        serve_child(args)
        return 0
    if args.batch_size > MAX_BATCH:
        parser.error(f"--batch-size is at most {MAX_BATCH} (the /track/batch limit)")

    import uvloop

    try:
        with (
            sigterm_interrupts(),
            Children(__file__, prefix="mcp-bench-track-", workdir=args.dir) as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            rows, stored = runner.run(bench(args, children))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child server stopped\n")
        return 130
    print(render(rows, stored, args))
    failed = any(r.errors for row in rows for r in row.runs)
    return 1 if failed or stored["events"] != _acknowledged(rows, stored) else 0


if __name__ == "__main__":
    sys.exit(main())
