"""`tools/call` throughput of the gateway next to a minimal server on the plain `mcp` SDK, in one run.

    .venv/bin/python bench/mcp_throughput.py [--requests N] [--concurrency C] [--warmup W] [--rounds R]
                                             [--client raw|httpx]

Three servers, each a child process running uvicorn (uvloop, httptools, one worker, no access log)
on a loopback socket this script binds and hands over, so no port is ever raced for:

    gateway               `create_app()` with a bench-only server factory adding the `echo` tool
    plain SDK (stateful)  `MCPServer.streamable_http_app()` with its defaults (sessions, SSE replies)
    plain SDK (json)      `streamable_http_app(stateless_http=True, json_response=True)`: what answers
                          a plain JSON-RPC POST in the plain SDK

Both kinds of server register the same `echo` tool the same way (async, one `str` argument), and the
gateway's real `book_demo` (`register_book_demo`: a lead written to the server's own SQLite database, the
same email within 10 minutes answered from the existing lead; every request here books a new email), so
rows compare transports, not tools. The gateway also records every call (self-tracking into its store);
the plain SDK servers record nothing. Pairs (same request, same transport, same response format):

    jsonrpc POST        gateway `POST /v1/mcp/sse?gid=demo`  vs  plain SDK (json) `POST /mcp`
    streamable session  initialize once per connection, then `Mcp-Session-Id`; the SDK client's Accept
                        (`application/json, text/event-stream`) leaves the choice to the server, and
                        both answer as SSE (json_response is off by default)  vs  plain SDK (stateful)
    streamable 2026     sessionless 2026-07-28 POST (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`
                        headers, `_meta` envelope), json_response off on both  vs  plain SDK (stateful)

plus reference rows without a pair: the 2026 form on the plain SDK (json), and the gateway's
`resources/read pricing://current` (a read of the cached manifest, no DB write, unlike `book_demo`).

The load generator is this process: C connections, each sending its share of N timed requests one
after another after W untimed warm-up requests. `--client raw` (default) is a minimal HTTP/1.1
keep-alive client on asyncio streams; `--client httpx` uses one httpx.AsyncClient per connection,
which on a small machine spends more CPU per request than the servers do (see `client CPU`). Server
CPU per request comes from /proc (Linux). Child servers are stopped on exit, on error, on Ctrl-C and
on SIGTERM, and are killed by the kernel if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from _common import (
    ACCEPT,
    HANDSHAKE_VERSION,
    HOST,
    REQUEST_TIMEOUT_S,
    Children,
    ChildServer,
    Connection,
    RawConnection,
    Reply,
    Tally,
    die_with_parent,
    fmt,
    median_ratio,
    median_run,
    message_of,
    non_negative,
    open_session,
    percentile_ms,
    positive,
    post_all,
    serve_app,
    sigterm_interrupts,
    table,
    wait_ready,
)

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

    from mcp_gateway.store import Store

GATEWAY_ID: Final = "demo"
ECHO_TEXT: Final = "hello"
BOOK_DEMO: Final = "book_demo"
BOOKED: Final = "booked"
MODERN_VERSION: Final = "2026-07-28"

ROW_TIMEOUT_S: Final = 60.0
ROW_TIMEOUT_PER_REQUEST_S: Final = 0.02
"""A row (warm-up or timed) fails after 60 s plus 20 ms per request: far slower than any server here."""

ServerKind = Literal["gateway", "sdk-stateful", "sdk-json"]
SERVER_KINDS: Final[tuple[ServerKind, ...]] = ("gateway", "sdk-stateful", "sdk-json")
SERVER_LABELS: Final[dict[ServerKind, str]] = {
    "gateway": "gateway",
    "sdk-stateful": "plain SDK (stateful, default)",
    "sdk-json": "plain SDK (stateless, json_response)",
}

Mode = Literal["post", "session", "modern"]
ClientKind = Literal["raw", "httpx"]
Json = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Child side: one uvicorn server on an inherited listening socket.
# --------------------------------------------------------------------------------------------------


def _register_echo(server: MCPServer) -> None:
    """The trivial tool both the gateway and the plain SDK server offer, registered identically."""

    @server.tool(name="echo", description="Return the text unchanged.")
    async def echo(text: str) -> str:
        return text


class _StoreLifespan:
    """Opens a store (with the `demo` gateway its leads belong to) before the wrapped app's lifespan starts,
    and closes it after it ends; nothing else."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self._app = app
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return
        from mcp_gateway.gateways import GatewayDirectory

        await self._store.open()
        await GatewayDirectory(self._store, cache_seconds=0).ensure_demo()
        try:
            await self._app(scope, receive, send)
        finally:
            await self._store.close()


def _build_app(kind: ServerKind, db_path: Path, *, json_response: bool = False) -> Any:
    from mcp.server import MCPServer

    if kind == "gateway":
        from mcp_gateway.app import create_app
        from mcp_gateway.config import Settings
        from mcp_gateway.gateways import Gateway, GatewayDirectory
        from mcp_gateway.server import build_gateway_server

        def gateway_with_echo(gateway: Gateway, directory: GatewayDirectory, store: Store) -> MCPServer:
            server = build_gateway_server(gateway, directory, store)
            _register_echo(server)
            return server

        settings = Settings(db_path=db_path, admin_token=secrets.token_urlsafe(24))
        if json_response:  # only asked for when set, so the script also runs against a gateway without the setting
            settings = settings.model_copy(update={"mcp_json_response": True})
        return create_app(settings, server_factory=gateway_with_echo)

    from mcp_gateway.store import SQLiteStore
    from mcp_gateway.tools import register_book_demo

    plain = MCPServer(name="plain-sdk-bench")
    _register_echo(plain)
    store = SQLiteStore(db_path)  # the gateway's store and migrations, for book_demo's leads; no tracking
    register_book_demo(plain, GATEWAY_ID, store)
    if kind == "sdk-stateful":
        return _StoreLifespan(plain.streamable_http_app(), store)
    return _StoreLifespan(plain.streamable_http_app(stateless_http=True, json_response=True), store)


def serve_child(kind: ServerKind, fd: int, db_path: Path, parent_pid: int, *, json_response: bool) -> None:
    die_with_parent(parent_pid)
    serve_app(_build_app(kind, db_path, json_response=json_response), fd)


# --------------------------------------------------------------------------------------------------
# Parent side: start the child servers.
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_servers(
    kinds: Sequence[ServerKind], *, gateway_json_response: bool = False
) -> Iterator[dict[ServerKind, ChildServer]]:
    """The child servers, stopped (then killed if need be) however the block ends."""
    with Children(__file__) as children:
        servers: dict[ServerKind, ChildServer] = {}
        for kind in kinds:
            args = ["--db", str(children.workdir / f"{kind}.db")]
            if kind == "gateway" and gateway_json_response:
                args.append("--gateway-json-response")
            servers[kind] = children.spawn(kind, args)
        yield servers


# --------------------------------------------------------------------------------------------------
# HTTP clients: one keep-alive connection each (`RawConnection` is in `_common`).
# --------------------------------------------------------------------------------------------------


class HttpxConnection:
    """The same, through an httpx.AsyncClient limited to one connection."""

    def __init__(self, port: int) -> None:
        import httpx

        self._base = f"http://{HOST}:{port}"
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(REQUEST_TIMEOUT_S), trust_env=False)

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply:
        response = await self._client.request(method, self._base + path, headers=headers, content=body)
        return Reply(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def _skip_sniffio_probe() -> None:
    """Make httpcore's per-request `import sniffio` fail fast when sniffio is not installed.

    httpcore looks for sniffio on every request; a missing module is searched for on disk each
    time, which costs more CPU than the server under test spends per request. A None entry in
    sys.modules makes that import fail at once, with the same outcome ("asyncio").
    """
    if importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _connect(kind: ClientKind, port: int) -> Connection:
    return RawConnection(port) if kind == "raw" else HttpxConnection(port)


async def _wait_ready(child: ChildServer) -> None:
    """Poll until the child answers HTTP (uvicorn only accepts once its lifespan has started)."""
    # The SDK answers a GET that accepts no event stream with 406 at once, rather than opening one.
    gateway = child.name == "gateway"
    await wait_ready(child, "/health" if gateway else "/mcp", need_200=gateway)


# --------------------------------------------------------------------------------------------------
# Load generation.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One row of the table: a transport, a server and a request."""

    transport: str
    server: ServerKind
    mode: Mode
    path: str
    method: str
    params: Json
    pair: str | None = None
    """Rows with the same pair are compared (gateway / plain SDK); None for rows shown for reference."""

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": ACCEPT}
        if self.mode == "session":
            headers["mcp-protocol-version"] = HANDSHAKE_VERSION
        elif self.mode == "modern":
            headers["mcp-protocol-version"] = MODERN_VERSION
            headers["mcp-method"] = self.method
            name = self.params.get("name") or self.params.get("uri")
            if isinstance(name, str):
                headers["mcp-name"] = name
        return headers

    def body(self, request_id: int) -> bytes:
        params = self.params
        if params.get("name") == BOOK_DEMO:  # a new lead every time: a repeated email is answered from the first
            arguments = {**params["arguments"], "email": f"lead{next(_LEAD_NUMBERS)}@example.com"}
            params = {**params, "arguments": arguments}
        if self.mode == "modern":
            params = {
                **params,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "mcp-bench", "version": "0"},
                },
            }
        message = {"jsonrpc": "2.0", "id": request_id, "method": self.method, "params": params}
        return json.dumps(message, separators=(",", ":")).encode()


_LEAD_NUMBERS: Final = itertools.count(1)
"""Numbers the emails `book_demo` rows book, unique over the whole run (every server and round)."""


def _checker(scenario: Scenario) -> Callable[[Reply], int | str]:
    """For `post_all`: 1 if a 200 reply is the expected successful one, else what is wrong with it."""

    def check(reply: Reply) -> int | str:
        message = message_of(reply)
        result = message.get("result")
        if not isinstance(result, dict):
            return f"not a result: {json.dumps(message)[:300]}"
        if scenario.method == "tools/call":
            content = result.get("content") or [{}]
            if scenario.params["name"] == BOOK_DEMO:
                booked = (result.get("structuredContent") or {}).get("status") == BOOKED
            else:
                booked = content[0].get("text") == ECHO_TEXT
            if result.get("isError") or not booked:
                return f"unexpected tool result: {json.dumps(result)[:300]}"
        elif scenario.method == "resources/read" and not result.get("contents"):
            return f"no contents: {json.dumps(result)[:300]}"
        return 1

    return check


async def _drive(
    connections: Sequence[Connection], scenario: Scenario, requests: int, sessions: Sequence[str | None]
) -> Tally:
    """Send `requests` requests (ids 1..N) over the connections, one at a time on each; time every one."""
    return await post_all(
        connections,
        scenario.path,
        scenario.headers(),
        (scenario.body(request_id) for request_id in range(1, requests + 1)),
        _checker(scenario),
        timeout_s=ROW_TIMEOUT_S + ROW_TIMEOUT_PER_REQUEST_S * requests,
        sessions=sessions,
    )


@dataclass
class RowResult:
    scenario: Scenario
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu_s: float | None
    client_cpu_s: float
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile_ms(self.latencies, q)

    @property
    def server_us_per_request(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.requests * 1e6

    @property
    def client_cpu_percent(self) -> float:
        return 100 * self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0


async def run_row(child: ChildServer, scenario: Scenario, args: argparse.Namespace) -> RowResult:
    connections = [_connect(args.client, child.port) for _ in range(args.concurrency)]
    sessions: list[str | None] = [None] * len(connections)
    try:
        if scenario.mode == "session":
            sessions = [await open_session(c, scenario.path) for c in connections]
        if args.warmup:
            await _drive(connections, scenario, args.warmup, sessions)
        cpu_before = child.cpu_seconds()
        client_before = time.process_time()
        started = time.perf_counter()
        tally = await _drive(connections, scenario, args.requests, sessions)
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        cpu_after = child.cpu_seconds()
    finally:
        for connection, session_id in zip(connections, sessions, strict=True):
            if session_id is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        await connection.request("DELETE", scenario.path, {"mcp-session-id": session_id})
            await connection.aclose()
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return RowResult(
        scenario=scenario,
        requests=args.requests,
        seconds=seconds,
        latencies=tally.latencies,
        errors=tally.errors,
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        first_error=tally.first_error,
    )


def scenarios() -> list[Scenario]:
    echo: Json = {"name": "echo", "arguments": {"text": ECHO_TEXT}}
    book: Json = {"name": BOOK_DEMO, "arguments": {"name": "Ada Lovelace", "email": "", "company": "Analytical"}}
    pricing: Json = {"uri": "pricing://current"}
    gid = f"?gid={GATEWAY_ID}"
    rows: list[Scenario] = []
    for tool, params in (("echo", echo), (BOOK_DEMO, book)):
        rows += [
            Scenario("jsonrpc POST", "gateway", "post", f"/v1/mcp/sse{gid}", "tools/call", params, f"post {tool}"),
            Scenario("jsonrpc POST", "sdk-json", "post", "/mcp", "tools/call", params, f"post {tool}"),
            Scenario("streamable session", "gateway", "session", f"/mcp{gid}", "tools/call", params, f"session {tool}"),
            Scenario("streamable session", "sdk-stateful", "session", "/mcp", "tools/call", params, f"session {tool}"),
            Scenario("streamable 2026", "gateway", "modern", f"/mcp{gid}", "tools/call", params, f"modern {tool}"),
            Scenario("streamable 2026", "sdk-stateful", "modern", "/mcp", "tools/call", params, f"modern {tool}"),
        ]
    return [
        *rows,
        Scenario("streamable 2026", "sdk-json", "modern", "/mcp", "tools/call", echo),
        Scenario("jsonrpc POST", "gateway", "post", f"/v1/mcp/sse{gid}", "resources/read", pricing),
    ]


# --------------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------------


def _what(scenario: Scenario) -> str:
    if scenario.method == "tools/call":
        return f"tools/call {scenario.params['name']}"
    return f"{scenario.method} {scenario.params.get('uri', '')}".strip()


@dataclass
class Row:
    """All rounds of one scenario; the table shows the round with the median rate."""

    scenario: Scenario
    runs: list[RowResult] = field(default_factory=list)

    @property
    def typical(self) -> RowResult:
        return median_run(self.runs)

    @property
    def server_us_per_request(self) -> float | None:
        values = [v for r in self.runs if (v := r.server_us_per_request) is not None]
        return statistics.median(values) if values else None


def _ratio(pairs: Sequence[tuple[float | None, float | None]]) -> str:
    return fmt(median_ratio(pairs), ".2f", "x")


def render(rows: Sequence[Row], args: argparse.Namespace) -> str:
    header = (
        *("transport", "server", "request", "req/s", "min-max"),
        *("p50 ms", "p99 ms", "srv CPU us/req", "client CPU", "errors"),
    )
    lines = []
    for row in rows:
        typical = row.typical
        rates = [r.rate for r in row.runs]
        lines.append(
            (
                row.scenario.transport,
                SERVER_LABELS[row.scenario.server],
                _what(row.scenario),
                f"{typical.rate:.0f}",
                f"{min(rates):.0f}-{max(rates):.0f}",
                f"{typical.percentile_ms(0.50):.2f}",
                f"{typical.percentile_ms(0.99):.2f}",
                fmt(row.server_us_per_request, ".0f"),
                f"{typical.client_cpu_percent:.0f}%",
                str(sum(r.errors for r in row.runs)),
            )
        )

    pairs: dict[str, dict[ServerKind, Row]] = {}
    for row in rows:
        if row.scenario.pair is not None:
            pairs.setdefault(row.scenario.pair, {})[row.scenario.server] = row
    ratio_lines: list[tuple[str, ...]] = []
    for pair in pairs.values():
        gateway = pair.get("gateway")
        plain = next((row for kind, row in pair.items() if kind != "gateway"), None)
        if gateway is None or plain is None:
            continue
        rounds = list(zip(gateway.runs, plain.runs, strict=True))
        ratio_lines.append(
            (
                f"{gateway.scenario.transport} {_what(gateway.scenario)}",
                SERVER_LABELS[plain.scenario.server],
                _ratio([(g.rate, p.rate) for g, p in rounds]),
                _ratio([(g.percentile_ms(0.5), p.percentile_ms(0.5)) for g, p in rounds]),
                _ratio([(g.percentile_ms(0.99), p.percentile_ms(0.99)) for g, p in rounds]),
                _ratio([(g.server_us_per_request, p.server_us_per_request) for g, p in rounds]),
            )
        )
    out = [
        f"{args.requests} timed requests per row and round after {args.warmup} warm-up, {args.concurrency} "
        f"connections, {args.rounds} round(s), client {args.client}; uvicorn uvloop+httptools, 1 worker per "
        f"server, {os.cpu_count()} CPUs. req/s, p50, p99, client CPU: the round with the median req/s; "
        "srv CPU: median."
        + (" Gateway with mcp_json_response: Streamable HTTP answered as JSON." if args.gateway_json_response else ""),
        "",
        *table(header, lines, left=3),
        "",
        "gateway / plain SDK, same tool, transport and response format (median of per-round ratios; "
        "req/s > 1 and the others < 1 favour the gateway)",
        *table(("pair", "plain SDK server", "req/s", "p50", "p99", "srv CPU/req"), ratio_lines, left=2),
    ]
    for row in rows:
        for r in row.runs:
            if r.first_error:
                out.append(f"! {row.scenario.transport} / {SERVER_LABELS[row.scenario.server]}: {r.first_error}")
                break
    if any(r.client_cpu_percent > 90 for row in rows for r in row.runs):
        out.append("! client CPU above 90% on some rows: there the load generator, not the server, may be the limit")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, children: Mapping[ServerKind, ChildServer]) -> list[Row]:
    for child in children.values():
        await _wait_ready(child)
    rows = [Row(scenario) for scenario in scenarios()]
    for round_number in range(args.rounds):
        # Every other round runs the rows backwards, so neither side of a pair always goes first.
        for row in rows if round_number % 2 == 0 else rows[::-1]:
            scenario = row.scenario
            result = await run_row(children[scenario.server], scenario, args)
            row.runs.append(result)
            sys.stderr.write(
                f"  round {round_number + 1}: {scenario.transport:<18}  {scenario.server:<12}  "
                f"{_what(scenario):<32} {result.rate:>6.0f} req/s  {result.errors} errors\n"
            )
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=positive, default=1500, help="timed requests per row (default 1500)")
    parser.add_argument("--concurrency", type=positive, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--warmup", type=non_negative, default=150, help="untimed requests per row (default 150)")
    parser.add_argument("--rounds", type=positive, default=3, help="times every row is run (default 3)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator (default raw)")
    parser.add_argument("--serve", choices=SERVER_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gateway-json-response",
        action="store_true",
        help="run the gateway with mcp_json_response (Streamable HTTP answered as JSON; the plain SDK stays SSE)",
    )
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve is not None:
        if args.fd is None or args.db is None or args.parent is None:
            parser.error("--serve needs --fd, --db and --parent")
        serve_child(args.serve, args.fd, args.db, args.parent, json_response=args.gateway_json_response)
        return 0

    import uvloop

    if args.client == "httpx":
        _skip_sniffio_probe()
    try:
        with (
            sigterm_interrupts(),
            running_servers(SERVER_KINDS, gateway_json_response=args.gateway_json_response) as children,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            rows = runner.run(bench(args, children))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; child servers stopped\n")
        return 130
    print(render(rows, args))
    return 1 if any(r.errors for row in rows for r in row.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
