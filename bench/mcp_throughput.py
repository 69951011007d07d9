"""`tools/call` throughput of the gateway next to a minimal server on the plain `mcp` SDK, in one run.

    .venv/bin/python bench/mcp_throughput.py [--requests N] [--concurrency C] [--warmup W] [--rounds R]
                                             [--client raw|httpx]

Three servers, each a child process running uvicorn (uvloop, httptools, one worker, no access log)
on a loopback socket this script binds and hands over, so no port is ever raced for:

    gateway               `create_app()` with a bench-only server factory adding the `echo` tool
    plain SDK (stateful)  `MCPServer.streamable_http_app()` with its defaults (sessions, SSE replies)
    plain SDK (json)      `streamable_http_app(stateless_http=True, json_response=True)`: what answers
                          a plain JSON-RPC POST in the plain SDK

Both kinds of server register the same `echo` tool the same way (async, one `str` argument), so
rows compare transports, not tools. Pairs (same request, same transport, same response format):

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
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

if TYPE_CHECKING:
    from mcp.server import MCPServer

HOST: Final = "127.0.0.1"
GATEWAY_ID: Final = "demo"
ECHO_TEXT: Final = "hello"
HANDSHAKE_VERSION: Final = "2025-11-25"
MODERN_VERSION: Final = "2026-07-28"
ACCEPT: Final = "application/json, text/event-stream"
"""What the SDK's own Streamable HTTP client sends on every POST."""

STARTUP_TIMEOUT_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 30.0
ROW_TIMEOUT_S: Final = 60.0
ROW_TIMEOUT_PER_REQUEST_S: Final = 0.02
"""A row (warm-up or timed) fails after 60 s plus 20 ms per request: far slower than any server here."""
STOP_TIMEOUT_S: Final = 5.0
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_CHUNKS: Final = 10_000
"""Most chunks one response may have: every read loop here is bounded."""

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


def _build_app(kind: ServerKind, db_path: Path) -> Any:
    from mcp.server import MCPServer

    if kind == "gateway":
        from mcp_gateway.app import create_app
        from mcp_gateway.config import Settings
        from mcp_gateway.gateways import Gateway, GatewayDirectory
        from mcp_gateway.server import build_gateway_server
        from mcp_gateway.store import Store

        def gateway_with_echo(gateway: Gateway, directory: GatewayDirectory, store: Store) -> MCPServer:
            server = build_gateway_server(gateway, directory, store)
            _register_echo(server)
            return server

        settings = Settings(db_path=db_path, admin_token=secrets.token_urlsafe(24))
        return create_app(settings, server_factory=gateway_with_echo)

    plain = MCPServer(name="plain-sdk-bench")
    _register_echo(plain)
    if kind == "sdk-stateful":
        return plain.streamable_http_app()
    return plain.streamable_http_app(stateless_http=True, json_response=True)


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the bench process dies, however it dies."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(AttributeError, OSError):  # a libc without prctl: rely on the parent's cleanup
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        sys.exit(1)


def serve_child(kind: ServerKind, fd: int, db_path: Path, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        _build_app(kind, db_path),
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])


# --------------------------------------------------------------------------------------------------
# Parent side: start, watch and stop the child servers.
# --------------------------------------------------------------------------------------------------


@dataclass
class ChildServer:
    kind: ServerKind
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _spawn(kind: ServerKind, workdir: Path) -> ChildServer:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(1024)
        port: int = listener.getsockname()[1]
        fd = listener.fileno()
        log_path = workdir / f"{kind}.log"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--serve", kind, "--fd", str(fd), "--db", str(workdir / f"{kind}.db"), "--parent", str(os.getpid())),
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,)
            )
    finally:
        listener.close()  # the child holds its own copy; if it dies, connections are refused, not queued
    return ChildServer(kind=kind, process=process, port=port, log_path=log_path)


def _stop(child: ChildServer) -> None:
    process = child.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_servers(kinds: Sequence[ServerKind]) -> Iterator[dict[ServerKind, ChildServer]]:
    """The child servers, stopped (then killed if need be) however the block ends."""
    children: dict[ServerKind, ChildServer] = {}
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        try:
            for kind in kinds:
                children[kind] = _spawn(kind, Path(tmp))
            yield children
        finally:
            for child in children.values():
                _stop(child)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far, from /proc (None where there is no /proc)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# HTTP clients: one keep-alive connection each.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes


class Connection(Protocol):
    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply: ...

    async def aclose(self) -> None: ...


class RawConnection:
    """A minimal HTTP/1.1 client on one keep-alive connection: Content-Length and chunked bodies."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._host_header = f"{HOST}:{port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply:
        if self._reader is not None and self._reader.at_eof():
            await self.aclose()  # the server closed the idle connection: open a new one
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self._port, limit=MAX_HEAD_BYTES)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host_header}", f"content-length: {len(body)}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await self._writer.drain()
            reply = await self._read_reply(self._reader)
        except BaseException:
            await self.aclose()  # whatever was half-read makes the connection unusable
            raise
        if reply.headers.get("connection", "").lower() == "close":
            await self.aclose()
        return reply

    @staticmethod
    async def _read_reply(reader: asyncio.StreamReader) -> Reply:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return Reply(status, headers, await reader.readexactly(int(headers["content-length"])))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            for _ in range(MAX_CHUNKS):
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers are sent by uvicorn
                    return Reply(status, headers, b"".join(chunks))
                chunks.append((await reader.readexactly(size + 2))[:-2])
            raise ValueError(f"response has more than {MAX_CHUNKS} chunks")
        if status in (204, 304) or 100 <= status < 200:
            return Reply(status, headers, b"")
        headers["connection"] = "close"  # the body runs to the end of the connection
        return Reply(status, headers, await reader.read())

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


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
    path = "/health" if child.kind == "gateway" else "/mcp"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.kind} server exited with {child.process.returncode}:\n{child.log_tail()}")
        connection = RawConnection(child.port)
        try:
            async with asyncio.timeout(2.0):
                reply = await connection.request("GET", path, {"accept": "application/json"})
            if child.kind != "gateway" or reply.status == 200:
                return
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            await connection.aclose()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.kind} server not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{child.log_tail()}")


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


def _message_of(reply: Reply) -> Json:
    """The JSON-RPC message in a reply, whether sent as application/json or as an SSE event."""
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        for line in reversed(reply.body.splitlines()):
            if line.startswith(b"data:") and line[5:].strip():
                event: Json = json.loads(line[5:])
                return event
        raise ValueError(f"no data in SSE body {reply.body[:200]!r}")
    message: Json = json.loads(reply.body)
    return message


def _problem(scenario: Scenario, reply: Reply) -> str | None:
    """None if the reply is the expected successful one, else what is wrong with it."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.body[:200]!r}"
    message = _message_of(reply)
    result = message.get("result")
    if not isinstance(result, dict):
        return f"not a result: {json.dumps(message)[:300]}"
    if scenario.method == "tools/call":
        content = result.get("content") or [{}]
        if result.get("isError") or content[0].get("text") != ECHO_TEXT:
            return f"unexpected tool result: {json.dumps(result)[:300]}"
    elif scenario.method == "resources/read" and not result.get("contents"):
        return f"no contents: {json.dumps(result)[:300]}"
    return None


async def _open_session(connection: Connection, path: str) -> str:
    """Initialize a Streamable HTTP session as the SDK client does; its `Mcp-Session-Id`."""
    headers = {"content-type": "application/json", "accept": ACCEPT}
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-bench", "version": "0"},
        },
    }
    reply = await connection.request("POST", path, headers, json.dumps(initialize).encode())
    session_id = reply.headers.get("mcp-session-id")
    if reply.status != 200 or not session_id or "result" not in _message_of(reply):
        raise RuntimeError(f"initialize failed: HTTP {reply.status} {reply.body[:300]!r}")
    headers.update({"mcp-session-id": session_id, "mcp-protocol-version": HANDSHAKE_VERSION})
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    reply = await connection.request("POST", path, headers, json.dumps(initialized).encode())
    if reply.status != 202:
        raise RuntimeError(f"notifications/initialized failed: HTTP {reply.status} {reply.body[:300]!r}")
    return session_id


@dataclass
class _Tally:
    remaining: int
    next_id: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def take(self) -> int | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        self.next_id += 1
        return self.next_id


async def _drive(
    connections: Sequence[Connection], scenario: Scenario, requests: int, sessions: Sequence[str | None]
) -> _Tally:
    """Send `requests` requests over the connections, one at a time on each; time every one."""
    tally = _Tally(remaining=requests)
    base_headers = scenario.headers()

    async def worker(connection: Connection, session_id: str | None) -> None:
        headers = dict(base_headers)
        if session_id is not None:
            headers["mcp-session-id"] = session_id
        while (request_id := tally.take()) is not None:
            body = scenario.body(request_id)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    reply = await connection.request("POST", scenario.path, headers, body)
                problem = _problem(scenario, reply)
            except Exception as exc:  # a failed request is counted, never retried
                problem = f"{type(exc).__name__}: {exc}"
            tally.latencies.append(time.perf_counter() - started)
            if problem is not None:
                tally.errors += 1
                tally.first_error = tally.first_error or problem

    async with asyncio.timeout(ROW_TIMEOUT_S + ROW_TIMEOUT_PER_REQUEST_S * requests):
        await asyncio.gather(*(worker(c, s) for c, s in zip(connections, sessions, strict=True)))
    return tally


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
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

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
            sessions = [await _open_session(c, scenario.path) for c in connections]
        if args.warmup:
            await _drive(connections, scenario, args.warmup, sessions)
        cpu_before = _cpu_seconds(child.process.pid)
        client_before = time.process_time()
        started = time.perf_counter()
        tally = await _drive(connections, scenario, args.requests, sessions)
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        cpu_after = _cpu_seconds(child.process.pid)
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
    pricing: Json = {"uri": "pricing://current"}
    gid = f"?gid={GATEWAY_ID}"
    return [
        Scenario("jsonrpc POST", "gateway", "post", f"/v1/mcp/sse{gid}", "tools/call", echo, pair="post"),
        Scenario("jsonrpc POST", "sdk-json", "post", "/mcp", "tools/call", echo, pair="post"),
        Scenario("streamable session", "gateway", "session", f"/mcp{gid}", "tools/call", echo, pair="session"),
        Scenario("streamable session", "sdk-stateful", "session", "/mcp", "tools/call", echo, pair="session"),
        Scenario("streamable 2026", "gateway", "modern", f"/mcp{gid}", "tools/call", echo, pair="modern"),
        Scenario("streamable 2026", "sdk-stateful", "modern", "/mcp", "tools/call", echo, pair="modern"),
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


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass
class Row:
    """All rounds of one scenario; the table shows the round with the median rate."""

    scenario: Scenario
    runs: list[RowResult] = field(default_factory=list)

    @property
    def typical(self) -> RowResult:
        ordered = sorted(self.runs, key=lambda r: r.rate)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def server_us_per_request(self) -> float | None:
        values = [v for r in self.runs if (v := r.server_us_per_request) is not None]
        return statistics.median(values) if values else None


def _median_ratio(pairs: Sequence[tuple[float | None, float | None]]) -> str:
    ratios = [a / b for a, b in pairs if a is not None and b]
    return f"{statistics.median(ratios):.2f}x" if ratios else "-"


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
                _fmt(row.server_us_per_request, ".0f"),
                f"{typical.client_cpu_percent:.0f}%",
                str(sum(r.errors for r in row.runs)),
            )
        )

    def table(head: Sequence[str], body: Sequence[Sequence[str]], left: int) -> list[str]:
        widths = [max(len(cells[i]) for cells in [head, *body]) for i in range(len(head))]

        def line(cells: Sequence[str]) -> str:
            columns = enumerate(zip(cells, widths, strict=True))
            return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in columns)

        return [line(head), line(["-" * w for w in widths]), *(line(cells) for cells in body)]

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
                _median_ratio([(g.rate, p.rate) for g, p in rounds]),
                _median_ratio([(g.percentile_ms(0.5), p.percentile_ms(0.5)) for g, p in rounds]),
                _median_ratio([(g.percentile_ms(0.99), p.percentile_ms(0.99)) for g, p in rounds]),
                _median_ratio([(g.server_us_per_request, p.server_us_per_request) for g, p in rounds]),
            )
        )
    out = [
        f"{args.requests} timed requests per row and round after {args.warmup} warm-up, {args.concurrency} "
        f"connections, {args.rounds} round(s), client {args.client}; uvicorn uvloop+httptools, 1 worker per "
        f"server, {os.cpu_count()} CPUs. req/s, p50, p99, client CPU: the round with the median req/s; "
        "srv CPU: median.",
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=_positive, default=1500, help="timed requests per row (default 1500)")
    parser.add_argument("--concurrency", type=_positive, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--warmup", type=_non_negative, default=150, help="untimed requests per row (default 150)")
    parser.add_argument("--rounds", type=_positive, default=3, help="times every row is run (default 3)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator (default raw)")
    parser.add_argument("--serve", choices=SERVER_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    return parser


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so the `finally` that stops the child servers runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve is not None:
        if args.fd is None or args.db is None or args.parent is None:
            parser.error("--serve needs --fd, --db and --parent")
        serve_child(args.serve, args.fd, args.db, args.parent)
        return 0

    import uvloop

    if args.client == "httpx":
        _skip_sniffio_probe()
    try:
        with (
            _sigterm_interrupts(),
            running_servers(SERVER_KINDS) as children,
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
