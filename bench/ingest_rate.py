"""Events/s the gateway ingests into SQLite, each acknowledged event durable, beside raw SQLite inserts.

    .venv/bin/python bench/ingest_rate.py [--events N] [--concurrency C] [--batches M] [--batch-size B]
                                          [--batch-concurrency CB] [--raw-single N1] [--rounds R] [--dir DIR]

The gateway is a child process serving what `mcp-gateway serve` serves (`create_app(Settings)`;
uvicorn, uvloop, httptools, one worker, no access log) on a loopback socket this script binds and
hands over, on a SQLite file created by `mcp-gateway keys create --gateway demo --kind org`, whose
key is the `X-Org-Id` of every request. Its store is the stock `SQLiteStore` (WAL,
`synchronous=FULL`, one writer thread folding every write job waiting into one transaction: group
commit) with two methods wrapped to count transactions and the time from BEGIN to after COMMIT,
which gives the writer's effective group-commit size (`events/commit`) and how busy it was.

Rows, each run `--rounds` times (ratios are medians of per-round ratios):

    gateway capture-event   N single `POST /api/v1/capture-event` over C keep-alive connections
    gateway capture-batch   M `POST /api/v1/capture-batch` of B events each, over CB connections
    raw sqlite3 ...         the same event rows (copied from what the gateway stored, with new ids)
                            inserted by this process with `sqlite3` into a second database made by the
                            gateway's own migrations (`SQLiteStore(path).open()`), with the store's
                            pragmas (WAL, synchronous=FULL, foreign_keys) and the store's INSERT
                            statement, `executemany` in transactions of 1 event, of the gateway's
                            measured events/commit, and of B events: the limit of the disk and SQLite

An answered 200 means the event is committed; at the end the script counts the stored events and
checks that every acknowledged one is there. Events carry what `track_mcp` sends for a call of a
small tool (`args`, `result` as JSON text, `event_id`, `timestamp`), in sessions created first.
`req/s`, `p50/p99` are requests and their latency for gateway rows, transactions and theirs for raw
rows. Gateway CPU comes from /proc (Linux). The child is stopped on exit, on error, on Ctrl-C and on SIGTERM, and
killed by the kernel if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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
    create_org_key,
    die_with_parent,
    fmt,
    gateway_app,
    measure_load,
    median_ratio,
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
EVENT_PATH: Final = "/api/v1/capture-event"
BATCH_PATH: Final = "/api/v1/capture-batch"
SESSION_PATH: Final = "/api/v1/capture-session"
ROW_TIMEOUT_S: Final = 120.0
"""A row fails after this long: far slower than any disk here."""

ARGS_TEXT: Final = '{"text":"hello"}'
RESULT_TEXT: Final = (
    '{"content":[{"text":"hello","type":"text"}],"isError":false,"structuredContent":{"result":"hello"}}'
)
"""What `track_mcp` records for `echo("hello")`: arguments and result (without the envelope), as JSON text."""

ID_COLUMN: Final = "id"


def event_columns(conn: sqlite3.Connection) -> list[str]:
    """The `events` table's columns but `seq` (the rowid), as the gateway's migrations made them.

    `SQLiteStore` writes all of them (NULL where an event has no value), so the raw rows do too."""
    return [str(row[1]) for row in conn.execute("PRAGMA table_info(events)") if row[1] != "seq"]


def insert_statement(columns: Sequence[str]) -> str:
    """The statement `SQLiteStore` runs per event."""
    placeholders = ", ".join("?" * len(columns))
    return f"INSERT INTO events ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT (gateway_id, id) DO NOTHING"


# --------------------------------------------------------------------------------------------------
# Gateway load.
# --------------------------------------------------------------------------------------------------


def _event(session_id: str) -> Json:
    return {
        "session_id": session_id,
        "primitive_type": "tool",
        "primitive_name": "echo",
        "latency": 0.42,
        "success": True,
        "args": ARGS_TEXT,
        "result": RESULT_TEXT,
        "event_id": str(uuid.uuid4()),
        "timestamp": time.time() * 1000,
        "operation": "call",
    }


async def create_sessions(child: ChildServer, org_key: str, count: int) -> list[str]:
    connection = RawConnection(child.port)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    try:
        for session_id in ids:
            session = {
                "session_id": session_id,
                "client_config": "ingest-bench 0",
                "connection_type": "streamable-http",
                "ip": "127.0.0.1",
                "tools": ["echo"],
            }
            headers = {"content-type": "application/json", "x-org-id": org_key}
            reply = await connection.request("POST", SESSION_PATH, headers, compact_json(session))
            if reply.status != 200:
                raise RuntimeError(f"capture-session failed: HTTP {reply.status} {reply.body[:300]!r}")
    finally:
        await connection.aclose()
    return ids


async def run_gateway(
    child: ChildServer,
    org_key: str,
    sessions: Sequence[str],
    *,
    batch: int,
    requests: int,
    concurrency: int,
    warmup: int,
) -> Run:
    """`requests` requests of `batch` events (1: capture-event, else capture-batch) over `concurrency` connections."""
    path = EVENT_PATH if batch == 1 else BATCH_PATH

    def bodies(count: int) -> list[bytes]:
        out = []
        for i in range(count):
            session_id = sessions[i % concurrency % len(sessions)]
            if batch == 1:
                out.append(compact_json(_event(session_id)))
            else:
                out.append(compact_json({"events": [_event(session_id) for _ in range(batch)]}))
        return out

    headers = {"content-type": "application/json", "x-org-id": org_key}

    def stored(reply: Reply) -> int | str:
        answer = json.loads(reply.body)
        if batch > 1:
            count = sum(1 for e in answer["events"] if e["status"] == "stored")
            return count if count == batch else f"{batch - count} of {batch} events not stored: {reply.body[:200]!r}"
        return 1 if answer.get("success") is True else f"not stored: {reply.body[:200]!r}"

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
# Raw SQLite: the same rows, the same schema and pragmas, no gateway.
# --------------------------------------------------------------------------------------------------


async def make_raw_db(path: Path) -> None:
    """A database made by the gateway's own migrations, with the `demo` gateway the events belong to."""
    from mcp_gateway.gateways import GatewayDirectory
    from mcp_gateway.store import SQLiteStore

    store = SQLiteStore(path)
    await store.open()
    try:
        await GatewayDirectory(store, cache_seconds=0).ensure_demo()
    finally:
        await store.close()


@dataclass(frozen=True)
class Template:
    """Event rows as the gateway stored them, all columns but `seq`, to insert again with new ids."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def read_template(db_path: Path, limit: int = 1000) -> Template:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        columns = event_columns(conn)
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        return Template(columns, list(rows))
    finally:
        conn.close()


def raw_insert(db_path: Path, template: Template, events: int, per_tx: int) -> Run:
    """Insert `events` rows (the template's, with fresh ids), `per_tx` per transaction; time every commit."""
    at = template.columns.index(ID_COLUMN)
    source = template.rows
    rows = [(*row[:at], str(uuid.uuid4()), *row[at + 1 :]) for row in (source[i % len(source)] for i in range(events))]
    insert = insert_statement(template.columns)
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    try:
        # The pragmas `SQLiteStore` sets on its writer connection.
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        latencies: list[float] = []
        started = time.perf_counter()
        for start in range(0, len(rows), per_tx):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows[start : start + per_tx])
            conn.execute("COMMIT")
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    commits = len(latencies)
    return Run(
        events=events,
        requests=commits,
        seconds=seconds,
        latencies=latencies,
        commits=commits,
        writer_events=events,
        writer_jobs=commits,
        busy_s=seconds,
    )


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------


def render(rows: Sequence[Row], stored: Json, args: argparse.Namespace) -> str:
    body = []
    for row in rows:
        typical = row.typical
        rates = [r.rate for r in row.runs]
        body.append(
            (
                row.label,
                "-" if row.connections is None else str(row.connections),
                fmt(row.median([r.events_per_commit for r in row.runs]), ".1f"),
                f"{typical.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                f"{typical.requests / typical.seconds:.0f}" if typical.seconds else "-",
                f"{typical.percentile(0.50):.2f}",
                f"{typical.percentile(0.99):.2f}",
                fmt(row.median([r.seconds / r.commits * 1000 if r.commits else None for r in row.runs]), ".2f"),
                fmt(row.median([r.busy_percent for r in row.runs]), ".0f", "%"),
                fmt(row.median([r.cpu_us_per_event for r in row.runs]), ".0f"),
                fmt(row.median([r.cpu_percent for r in row.runs]), ".0f", "%"),
                str(sum(r.errors for r in row.runs)),
            )
        )
    head = (
        *("row", "conn", "events/commit", "events/s", "min-max", "req/s", "p50 ms", "p99 ms"),
        *("ms/commit", "writer busy", "gw CPU us/event", "gw CPU", "errors"),
    )
    by_key = {row.key: row for row in rows}

    def ratio(top: str, bottom: str) -> tuple[str, str, str] | None:
        a, b = by_key.get(top), by_key.get(bottom)
        if a is None or b is None:
            return None
        value = median_ratio([(x.rate, y.rate) for x, y in zip(a.runs, b.runs, strict=True)])
        return (a.label, b.label, fmt(value, ".2f"))

    ratios = [
        r
        for r in (
            ratio("single", "raw-group"),
            ratio("single", "raw-1"),
            ratio("batch", "raw-batch-group"),
            ratio("batch", "raw-batch"),
        )
        if r is not None
    ]
    single = by_key.get("single")
    batch = by_key.get("batch")
    out = [
        f"{args.events} capture-event over {args.concurrency} connections, {args.batches} capture-batch of "
        f"{args.batch_size} events over {args.batch_concurrency} connections, {args.rounds} round(s); raw 1-event "
        f"transactions: {args.raw_single} events. SQLite WAL, synchronous=FULL; uvicorn uvloop+httptools, 1 worker; "
        f"{os.cpu_count()} CPUs. events/s, p50, p99: the round with the median events/s; others: medians.",
        "",
        *table(head, body, left=1),
        "",
        "gateway / raw SQLite, events/s (median of per-round ratios)",
        *table(("gateway", "raw", "ratio"), ratios, left=2),
        "",
    ]
    for group_row in (single, batch):
        if group_row is None:
            continue
        row = group_row
        per_commit = row.median([r.events_per_commit for r in row.runs])
        requests = row.median([r.requests_per_commit for r in row.runs])
        busy = row.median([r.busy_percent for r in row.runs])
        out.append(
            f"group commit, {row.label}: {fmt(per_commit, '.1f')} events in {fmt(requests, '.1f')} requests per "
            f"commit (of {row.connections} in flight at most); writer busy {fmt(busy, '.0f', '%')} of the time"
        )
    out.append(
        "(writer busy: the share of the row the writer thread spent between BEGIN and the end of COMMIT, "
        "fsync and waits for the GIL included)"
    )
    acknowledged = sum(r.events for row in rows if row.kind != "raw" for r in row.runs) + stored["warmup"]
    verdict = "all there" if stored["events"] == acknowledged else "MISSING EVENTS"
    out.append(
        f"durability: {acknowledged} events acknowledged (200), {stored['events']} stored: {verdict}; "
        f"journal_mode {stored['journal_mode']}"
    )
    for row in rows:
        for r in row.runs:
            if r.first_error:
                out.append(f"! {row.label}: {r.first_error}")
                break
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------------


def _stored(db_path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        events = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()
    return events, journal


def _group(value: float | None, floor: int) -> int:
    return max(floor, round(value)) if value is not None else floor


async def bench(args: argparse.Namespace, children: Children) -> tuple[list[Row], Json]:
    db_path = children.workdir / "gateway.db"
    raw_path = children.workdir / "raw.db"
    org_key = await asyncio.to_thread(create_org_key, db_path)
    child = children.spawn(GATEWAY, ["--db", str(db_path)])
    await make_raw_db(raw_path)
    await wait_ready(child, "/health", need_200=True)
    sessions = await create_sessions(child, org_key, max(args.concurrency, args.batch_concurrency))

    b = args.batch_size
    rows = {
        "single": Row("single", "gateway POST capture-event", "single", args.concurrency, 1),
        "raw-1": Row("raw-1", "raw sqlite3, 1 event/tx", "raw", None, None),
        "raw-group": Row("raw-group", "raw sqlite3, tx = gateway's events/commit", "raw", None, None),
        "batch": Row("batch", f"gateway POST capture-batch x{b}", "batch", args.batch_concurrency, b),
        "raw-batch": Row("raw-batch", f"raw sqlite3, {b} events/tx", "raw", None, None),
        "raw-batch-group": Row("raw-batch-group", "raw sqlite3, tx = gateway's events/commit", "raw", None, None),
    }
    warmup_events = 0
    for round_number in range(args.rounds):
        # Every other round runs the gateway rows, then the raw rows, in reverse order.
        order = ["single", "batch"] if round_number % 2 == 0 else ["batch", "single"]
        for key in order:
            row = rows[key]
            batch = 1 if key == "single" else b
            requests = args.events if key == "single" else args.batches
            warmup = args.warmup if key == "single" else max(1, args.warmup // batch)
            run = await run_gateway(
                child,
                org_key,
                sessions,
                batch=batch,
                requests=requests,
                concurrency=row.connections or 1,
                warmup=warmup,
            )
            warmup_events += warmup * batch
            row.runs.append(run)
            _progress(round_number, row, run)
        template = await asyncio.to_thread(read_template, db_path)
        single_group = _group(rows["single"].runs[-1].events_per_commit, 1)
        batch_group = _group(rows["batch"].runs[-1].events_per_commit, b)
        raw_plan = [
            ("raw-1", args.raw_single, 1),
            ("raw-group", args.events, single_group),
            ("raw-batch", args.batches * b, b),
            ("raw-batch-group", args.batches * b, batch_group),
        ]
        for key, events, per_tx in raw_plan if round_number % 2 == 0 else raw_plan[::-1]:
            run = await asyncio.to_thread(raw_insert, raw_path, template, events, per_tx)
            rows[key].runs.append(run)
            _progress(round_number, rows[key], run, f"tx={per_tx}")

    events, journal = await asyncio.to_thread(_stored, db_path)
    return list(rows.values()), {"events": events, "journal_mode": journal, "warmup": warmup_events}


def _progress(round_number: int, row: Row, run: Run, note: str = "") -> None:
    sys.stderr.write(
        f"  round {round_number + 1}: {row.label:<44} {note:<8} {run.rate:>7.0f} events/s"
        f"  {fmt(run.events_per_commit, '.1f'):>6} events/commit  {run.errors} errors\n"
    )


def serve_child(args: argparse.Namespace) -> None:
    die_with_parent(args.parent)
    serve_app(gateway_app(args.db), args.fd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=positive, default=3000, help="capture-event requests per round (3000)")
    parser.add_argument("--concurrency", type=positive, default=16, help="connections for capture-event (16)")
    parser.add_argument("--batches", type=positive, default=150, help="capture-batch requests per round (150)")
    parser.add_argument("--batch-size", type=positive, default=100, help="events per capture-batch (100)")
    parser.add_argument("--batch-concurrency", type=positive, default=4, help="connections for capture-batch (4)")
    parser.add_argument("--raw-single", type=positive, default=600, help="events in raw 1-event transactions (600)")
    parser.add_argument("--warmup", type=non_negative, default=200, help="untimed events per gateway row (200)")
    parser.add_argument("--rounds", type=positive, default=4, help="times every row is run (4)")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
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
    if args.batch_size > 1000:
        parser.error("--batch-size is at most 1000 (the capture-batch limit)")

    import uvloop

    try:
        with (
            sigterm_interrupts(),
            Children(__file__, prefix="mcp-bench-ingest-", workdir=args.dir) as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            rows, stored = runner.run(bench(args, children))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child server stopped\n")
        return 130
    print(render(rows, stored, args))
    failed = any(r.errors for row in rows for r in row.runs)
    acknowledged = sum(r.events for row in rows if row.kind != "raw" for r in row.runs) + stored["warmup"]
    return 1 if failed or stored["events"] != acknowledged else 0


if __name__ == "__main__":
    sys.exit(main())
