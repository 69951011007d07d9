"""What the benchmarks in this directory share (not a benchmark itself).

    Children          child server processes of one run, each a uvicorn on a loopback socket the parent
                      binds and hands over (so no port is ever raced for), all stopped however the run ends
    serve_app         the child side: die with the parent, then serve an ASGI app on the inherited socket
    RawConnection     a minimal HTTP/1.1 keep-alive client on asyncio streams (Content-Length, chunked)
    cpu_seconds       user + system CPU of a process so far, from /proc (Linux)
    table, percentile_ms, median_ratio, sigterm_interrupts, positive, non_negative
    gateway_app       the child side of the gateway, its SQLite writer counted (`GET /bench/writer`)
    post_all, measure_load, Tally, Run, Row: sustained POST load on keep-alive connections, per row
    message_of, open_session, ACCEPT, HANDSHAKE_VERSION: the JSON-RPC side of MCP over HTTP

Scripts import this as `_common` (Python puts a script's own directory first on `sys.path`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar

HOST: Final = "127.0.0.1"
HANDSHAKE_VERSION: Final = "2025-11-25"
ACCEPT: Final = "application/json, text/event-stream"
"""What the SDK's own Streamable HTTP client sends on every POST."""

STARTUP_TIMEOUT_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 5.0
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_CHUNKS: Final = 10_000
"""Most chunks one response may have: every read loop here is bounded."""

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Child side: one uvicorn server on an inherited listening socket.
# --------------------------------------------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the bench process dies, however it dies."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(AttributeError, OSError):  # a libc without prctl: rely on the parent's cleanup
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        sys.exit(1)


def serve_app(app: Any, fd: int) -> None:
    """Serve `app` with uvicorn (uvloop, httptools, one worker, no access log) on the inherited socket `fd`."""
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])


def gateway_app(db_path: Path, **settings: object) -> Any:
    """What `mcp-gateway serve --db PATH` serves (`create_app(Settings)`), with its SQLite writer counted.

    `settings` override `Settings` fields (e.g. `track_rate_limit`), as CLI flags would.
    The store is `SQLiteStore` with `capture` and `capture_web` wrapped to count the events handed to the
    writer; the rest comes from the store's own `writer_stats` (transactions, jobs in them, seconds from BEGIN
    to after COMMIT, fsync included). `GET /bench/writer` answers the running totals
    `{"commits", "jobs", "events", "busy_s", "max_jobs"}`.
    """
    import secrets

    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mcp_gateway.app import create_app
    from mcp_gateway.config_sources import load_settings
    from mcp_gateway.store import CaptureStatus, EventRow, ForwardHints, SessionRow, SQLiteStore

    class CountingStore(SQLiteStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.events = 0

        async def capture(
            self, sessions: Sequence[SessionRow], events: Sequence[EventRow], *, background: bool = False
        ) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
            self.events += len(events)
            return await super().capture(sessions, events, background=background)

        async def capture_web(
            self, events: Sequence[EventRow], hints: Sequence[ForwardHints | None] = ()
        ) -> list[tuple[CaptureStatus, EventRow]]:
            self.events += len(events)
            return await super().capture_web(events, hints)

    store = CountingStore(db_path)
    overrides: dict[str, object] = {"admin_token": secrets.token_urlsafe(24), **settings}
    app = create_app(load_settings({"db_path": db_path, **overrides}).settings, store=store)

    async def writer(_: Request) -> JSONResponse:
        stats = store.writer_stats
        return JSONResponse(
            {
                "commits": stats.transactions,
                "jobs": stats.jobs,
                "events": store.events,
                "busy_s": stats.busy_seconds,
                "max_jobs": stats.max_jobs,
            }
        )

    app.router.routes.insert(0, Route("/bench/writer", writer, methods=["GET"]))
    return app


def create_org_key(db_path: Path) -> str:
    """`mcp-gateway keys create --gateway demo --kind org --db PATH` (which also creates the database)."""
    script = Path(sys.executable).with_name("mcp-gateway")
    cli = [str(script)] if script.exists() else [sys.executable, "-c", "from mcp_gateway.cli import main; main()"]
    done = subprocess.run(
        [*cli, "keys", "create", "--gateway", "demo", "--kind", "org", "--db", str(db_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    key = done.stdout.strip()
    if done.returncode != 0 or not key.startswith("org_"):
        raise RuntimeError(f"mcp-gateway keys create failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return key


# --------------------------------------------------------------------------------------------------
# Parent side: start, watch and stop the child servers.
# --------------------------------------------------------------------------------------------------


@dataclass
class ChildServer:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid)


def stop(child: ChildServer) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `STOP_TIMEOUT_S`."""
    process = child.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


class Children:
    """The child servers of one run and their scratch directory, all gone when the `with` block ends.

    `spawn(name, args)` starts `python <script> --serve NAME --fd FD --parent PID *args`, with FD a
    listening socket on 127.0.0.1 (port chosen by the kernel) that only the child keeps open; its
    output goes to `<workdir>/<name>.log`. The script's `--serve` branch calls `serve_app`.
    """

    def __init__(self, script: str | Path, *, prefix: str = "mcp-bench-", workdir: Path | None = None) -> None:
        self._script = str(Path(script).resolve())
        self._prefix = prefix
        self._parent_dir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.children: dict[str, ChildServer] = {}

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("Children is not entered")
        return Path(self._tmp.name)

    def __enter__(self) -> Children:
        self._tmp = tempfile.TemporaryDirectory(prefix=self._prefix, dir=self._parent_dir)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for child in self.children.values():
                with contextlib.suppress(Exception):
                    stop(child)
        finally:
            for child in self.children.values():  # whatever stop() could not, for any reason
                if child.process.poll() is None:
                    child.process.kill()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def spawn(self, name: str, args: Sequence[str] = ()) -> ChildServer:
        if name in self.children:
            raise ValueError(f"a child named {name!r} is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(1024)
            port: int = listener.getsockname()[1]
            fd = listener.fileno()
            log_path = self.workdir / f"{name}.log"
            command = [
                sys.executable,
                self._script,
                *("--serve", name, "--fd", str(fd), "--parent", str(os.getpid())),
                *args,
            ]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,)
                )
        finally:
            listener.close()  # the child holds its own copy; if it dies, connections are refused, not queued
        child = ChildServer(name=name, process=process, port=port, log_path=log_path)
        self.children[name] = child
        return child


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that refuses connections: bound (so no one else takes it) but not listening.

    Keep the socket open for as long as the port should stay refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    port: int = sock.getsockname()[1]
    return sock, port


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far, from /proc (None where there is no /proc)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(child: ChildServer, path: str, *, need_200: bool) -> None:
    """Poll `GET path` until the child answers (with 200 if `need_200`); uvicorn answers once its lifespan ran."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} server exited with {child.process.returncode}:\n{child.log_tail()}")
        connection = RawConnection(child.port)
        try:
            async with asyncio.timeout(2.0):
                reply = await connection.request("GET", path, {"accept": "application/json"})
            if not need_200 or reply.status == 200:
                return
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            await connection.aclose()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} server not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{child.log_tail()}")


# --------------------------------------------------------------------------------------------------
# HTTP client: one keep-alive connection.
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


# --------------------------------------------------------------------------------------------------
# MCP over HTTP: the parts of JSON-RPC the benches need.
# --------------------------------------------------------------------------------------------------


def message_of(reply: Reply) -> Json:
    """The JSON-RPC message in a reply, whether sent as application/json or as an SSE event."""
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        for line in reversed(reply.body.splitlines()):
            if line.startswith(b"data:") and line[5:].strip():
                event: Json = json.loads(line[5:])
                return event
        raise ValueError(f"no data in SSE body {reply.body[:200]!r}")
    message: Json = json.loads(reply.body)
    return message


async def open_session(connection: Connection, path: str, client_name: str = "mcp-bench") -> str:
    """Initialize a Streamable HTTP session as the SDK client does; its `Mcp-Session-Id`."""
    headers = {"content-type": "application/json", "accept": ACCEPT}
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": "0"},
        },
    }
    reply = await connection.request("POST", path, headers, json.dumps(initialize).encode())
    session_id = reply.headers.get("mcp-session-id")
    if reply.status != 200 or not session_id or "result" not in message_of(reply):
        raise RuntimeError(f"initialize failed: HTTP {reply.status} {reply.body[:300]!r}")
    headers.update({"mcp-session-id": session_id, "mcp-protocol-version": HANDSHAKE_VERSION})
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    reply = await connection.request("POST", path, headers, json.dumps(initialized).encode())
    if reply.status != 202:
        raise RuntimeError(f"notifications/initialized failed: HTTP {reply.status} {reply.body[:300]!r}")
    return session_id


# --------------------------------------------------------------------------------------------------
# Sustained load: requests over keep-alive connections, timed, with the gateway's CPU and writer.
# --------------------------------------------------------------------------------------------------


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def get_json(child: ChildServer, path: str) -> Json:
    connection = RawConnection(child.port)
    try:
        async with asyncio.timeout(10):
            reply = await connection.request("GET", path, {"accept": "application/json"})
    finally:
        await connection.aclose()
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {reply.status} {reply.body[:200]!r}")
    data: Json = json.loads(reply.body)
    return data


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    stored: int = 0
    errors: int = 0
    first_error: str | None = None

    def fail(self, problem: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or problem


async def post_all(
    connections: Sequence[Connection],
    path: str,
    headers: Mapping[str, str],
    bodies: Iterable[bytes],
    stored: Callable[[Reply], int | str],
    *,
    timeout_s: float,
    sessions: Sequence[str | None] | None = None,
) -> Tally:
    """POST the bodies over the connections, one request at a time on each; time each; count stored events.

    `stored(reply)` of a 200 reply: how many events it acknowledges, or what is wrong with it (a
    str, counted as an error). A failed request is counted, never retried. All within `timeout_s`.
    `bodies` is consumed lazily, one body per request as it is sent. `sessions`, one per connection:
    the `Mcp-Session-Id` each connection's requests carry (None: none).
    """
    tally = Tally()
    todo = iter(bodies)

    async def worker(connection: Connection, session_id: str | None) -> None:
        request_headers = headers if session_id is None else {**headers, "mcp-session-id": session_id}
        for body in todo:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    reply = await connection.request("POST", path, request_headers, body)
                tally.latencies.append(time.perf_counter() - started)
                if reply.status != 200:
                    tally.fail(f"HTTP {reply.status}: {reply.body[:200]!r}")
                    continue
                outcome = stored(reply)
                if isinstance(outcome, str):
                    tally.fail(outcome)
                else:
                    tally.stored += outcome
            except Exception as exc:
                tally.latencies.append(time.perf_counter() - started)
                tally.fail(f"{type(exc).__name__}: {exc}")

    per_connection = [None] * len(connections) if sessions is None else sessions
    async with asyncio.timeout(timeout_s):
        await asyncio.gather(*(worker(c, s) for c, s in zip(connections, per_connection, strict=True)))
    return tally


@dataclass
class Run:
    """One row in one round."""

    events: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0
    cpu_s: float | None = None
    commits: float | None = None
    writer_events: float | None = None
    writer_jobs: float | None = None
    busy_s: float | None = None
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def events_per_commit(self) -> float | None:
        return self.writer_events / self.commits if self.commits and self.writer_events is not None else None

    @property
    def requests_per_commit(self) -> float | None:
        return self.writer_jobs / self.commits if self.commits and self.writer_jobs is not None else None

    @property
    def cpu_us_per_event(self) -> float | None:
        return None if self.cpu_s is None or not self.events else self.cpu_s / self.events * 1e6

    @property
    def cpu_percent(self) -> float | None:
        return None if self.cpu_s is None else 100 * self.cpu_s / self.seconds

    @property
    def busy_percent(self) -> float | None:
        return None if self.busy_s is None else 100 * self.busy_s / self.seconds

    def percentile(self, q: float) -> float:
        return percentile_ms(self.latencies, q)


async def measure_load(child: ChildServer, requests: int, load: Callable[[], Awaitable[Tally]]) -> Run:
    """Run `load` (`requests` requests) against a `gateway_app` child: its time, CPU and writer counters."""
    writer_before = await get_json(child, "/bench/writer")
    cpu_before = child.cpu_seconds()
    started = time.perf_counter()
    tally = await load()
    seconds = time.perf_counter() - started
    cpu_after = child.cpu_seconds()
    writer_after = await get_json(child, "/bench/writer")

    def delta(key: str) -> float:
        return float(writer_after[key]) - float(writer_before[key])

    return Run(
        events=tally.stored,
        requests=requests,
        seconds=seconds,
        latencies=tally.latencies,
        errors=tally.errors,
        cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        commits=delta("commits"),
        writer_events=delta("events"),
        writer_jobs=delta("jobs"),
        busy_s=delta("busy_s"),
        first_error=tally.first_error,
    )


@dataclass
class Row:
    """One row of a table: its runs, one per round."""

    key: str
    label: str
    kind: str
    connections: int | None
    per_request: int | None
    runs: list[Run] = field(default_factory=list)

    @property
    def typical(self) -> Run:
        """The run with the median rate."""
        return median_run(self.runs)

    def median(self, values: Sequence[float | None]) -> float | None:
        return median_known(values)


# --------------------------------------------------------------------------------------------------
# Figures and tables.
# --------------------------------------------------------------------------------------------------


def percentile_ms(latencies: Sequence[float], q: float) -> float:
    """The `q` quantile (nearest rank) of latencies in seconds, in milliseconds; NaN for none."""
    ordered = sorted(latencies)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _Rated(Protocol):
    @property
    def rate(self) -> float: ...


RatedT = TypeVar("RatedT", bound=_Rated)


def median_run(runs: Sequence[RatedT]) -> RatedT:
    """The run with the median rate (the lower middle one of an even count): the one a table shows."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


def median_known(values: Sequence[float | None]) -> float | None:
    """The median of the values that are known, or None if none is."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def median_ratio(pairs: Sequence[tuple[float | None, float | None]]) -> float | None:
    """The median of a / b over the pairs where both are known and b is not 0."""
    ratios = [a / b for a, b in pairs if a is not None and b]
    return statistics.median(ratios) if ratios else None


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def table(head: Sequence[str], body: Sequence[Sequence[str]], left: int) -> list[str]:
    """Lines of a plain-text table: the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(cells[i]) for cells in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        columns = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in columns).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(cells) for cells in body)]


# --------------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden arguments `Children.spawn` gives a child: `--serve NAME --fd FD --parent PID`."""
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so the `finally` that stops the child servers runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
