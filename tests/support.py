"""Helpers shared by the tests: a real uvicorn server in a thread, and one MCP session API per transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import httpx
import psycopg
import uvicorn
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    CallToolResult,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListToolsResult,
    ReadResourceResult,
)
from mcp.types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from starlette.applications import Starlette

from mcp_gateway.store.postgres import to_pg

ADMIN_TOKEN: Final = "test-admin-token-0123456789abcdef"
DATABASE_URL_VARIABLE: Final = "MCP_GATEWAY_DATABASE_URL"
ADMIN_HEADERS: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEMO: Final = "demo"

STARTUP_TIMEOUT: Final = 60.0
"""Longest a test server may take to start or stop. A bound against hanging, not a speed check: `mcp-gateway
serve` loads the cloud IP ranges before it answers (2 to 4 s on an idle core), and took over 15 s on a 2-core
machine running the suite on two workers beside other work."""

MCP_TIMEOUT: Final = 30.0
"""Longest one MCP session (connect, every call, close) may take in a test."""

HANDSHAKE: Final = LATEST_HANDSHAKE_VERSION
"""The session protocol revision (initialize handshake): 2025-11-25."""

MODERN: Final = LATEST_MODERN_VERSION
"""The sessionless revision the SDK client negotiates by default: 2026-07-28."""


# -- a real server on a loopback socket -------------------------------------------------------------


class _ThreadedServer(uvicorn.Server):
    """A uvicorn server that tells another thread when its startup finished, successfully or not."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


@dataclass(frozen=True)
class LiveServer:
    """A running gateway: its base URL, the app it serves and the database it writes."""

    base_url: str
    app: Starlette
    db_path: Path

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.contextmanager
def serve_in_thread(app: Starlette, db_path: Path) -> Iterator[LiveServer]:
    """Run `app` (lifespan included) under uvicorn on a free loopback port until the block ends."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none", timeout_graceful_shutdown=5
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()
    try:
        if not server.startup_done.wait(STARTUP_TIMEOUT):
            raise TimeoutError("the test server did not start in time")
        if not server.started:
            raise RuntimeError("the test server failed to start (see the log above)")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", app=app, db_path=db_path)
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        if thread.is_alive():
            raise TimeoutError("the test server did not stop in time")


@contextlib.asynccontextmanager
async def lifespan_running(app: Starlette) -> AsyncIterator[None]:
    """Run `app`'s lifespan in a task of its own while the block runs, as a server would.

    The lifespan holds a task group, which must be exited by the task that entered it; pytest-asyncio
    sets a fixture up and tears it down in different tasks, so the fixture cannot enter it itself.
    """
    ready = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            ready.set()
            await stop.wait()

    task = asyncio.create_task(run(), name="app-lifespan")
    try:
        ready_waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, ready_waiter}, timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        ready_waiter.cancel()
        if task.done():
            task.result()  # raises what the startup raised
            raise RuntimeError("the app lifespan ended during startup")
        if not ready.is_set():
            raise TimeoutError("the app lifespan did not start in time")
        yield
    finally:
        stop.set()
        with anyio.fail_after(STARTUP_TIMEOUT):
            await task


REQUEST_TIMEOUT: Final = 15.0
"""Longest one in-process request may take; past it the request fails instead of hanging the run."""


class BoundedASGITransport(httpx.ASGITransport):
    """`httpx.ASGITransport` with a deadline: a response that never ends (an SSE stream) fails the test."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with anyio.fail_after(REQUEST_TIMEOUT):
            return await super().handle_async_request(request)


# -- the admin API ----------------------------------------------------------------------------------


async def admin_json(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    """Call the admin API with the test token; fail the test unless it answers 2xx."""
    response = await http.request(method, path, headers=ADMIN_HEADERS, json=body)
    assert response.is_success, (response.status_code, response.text)
    return response.json()


async def leads_of(http: httpx.AsyncClient, gateway_id: str = DEMO) -> list[dict[str, Any]]:
    leads: list[dict[str, Any]] = (await admin_json(http, "GET", f"/v1/gateways/{gateway_id}/leads"))["leads"]
    return leads


# -- one session API over every transport -----------------------------------------------------------


class McpSession(Protocol):
    """The slice of `mcp.client.Client` the transport tests use; the plain JSON-RPC session offers it too."""

    @property
    def protocol_version(self) -> str: ...

    async def list_tools(self) -> ListToolsResult: ...

    async def list_resources(self) -> ListResourcesResult: ...

    async def list_prompts(self) -> ListPromptsResult: ...

    async def read_resource(self, uri: str) -> ReadResourceResult: ...

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult: ...

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> GetPromptResult: ...


def jsonrpc_request(method: str, params: Mapping[str, Any] | None = None, request_id: int | str = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


def modern_envelope() -> dict[str, Any]:
    """The `_meta` a 2026-07-28 request carries instead of a session."""
    return {
        PROTOCOL_VERSION_META_KEY: MODERN,
        CLIENT_INFO_META_KEY: {"name": "mcp-gateway-tests", "version": "1.0"},
        CLIENT_CAPABILITIES_META_KEY: {},
    }


class JsonRpcPostSession:
    """MCP over one plain `POST /v1/mcp/sse` per request, as curl would do it: no session, JSON in and out."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, protocol_version: str) -> None:
        self._http = http
        self._url = url
        self._protocol_version = protocol_version
        self._last_id = 0
        self.last_result: dict[str, Any] = {}
        """The raw `result` object of the last successful request, as it came off the wire."""

    @property
    def protocol_version(self) -> str:
        return self._protocol_version

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one request; its result, or `MCPError` carrying the JSON-RPC error."""
        self._last_id += 1
        headers: dict[str, str] = {}
        if self._protocol_version == MODERN:
            params = {**(params or {}), "_meta": modern_envelope()}
            headers["MCP-Protocol-Version"] = MODERN
        response = await self._http.post(
            self._url, json=jsonrpc_request(method, params, self._last_id), headers=headers
        )
        assert response.headers["content-type"] == "application/json", response.text
        body = response.json()
        assert body["jsonrpc"] == "2.0"
        assert body["id"] == self._last_id
        if "error" in body:
            error = body["error"]
            raise MCPError(code=error["code"], message=error["message"], data=error.get("data"))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = body["result"]
        self.last_result = result
        return result

    async def list_tools(self) -> ListToolsResult:
        return ListToolsResult.model_validate(await self.request("tools/list"))

    async def list_resources(self) -> ListResourcesResult:
        return ListResourcesResult.model_validate(await self.request("resources/list"))

    async def list_prompts(self) -> ListPromptsResult:
        return ListPromptsResult.model_validate(await self.request("prompts/list"))

    async def read_resource(self, uri: str) -> ReadResourceResult:
        return ReadResourceResult.model_validate(await self.request("resources/read", {"uri": uri}))

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        return CallToolResult.model_validate(
            await self.request("tools/call", {"name": name, "arguments": arguments or {}})
        )

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> GetPromptResult:
        return GetPromptResult.model_validate(
            await self.request("prompts/get", {"name": name, "arguments": arguments or {}})
        )


TRANSPORTS: Final = (
    "sse-2025-11-25",
    "sse-2026-07-28",
    "streamable-http-2025-11-25",
    "streamable-http-2026-07-28",
    "stdio-2026-07-28",
    "jsonrpc-post-2025-11-25",
    "jsonrpc-post-2026-07-28",
)
"""Every way a client reaches a gateway, with the protocol revision it speaks (its name's suffix)."""


def expected_protocol_version(transport: str) -> str:
    """The revision a transport id names: its last three dash-separated parts, e.g. 2025-11-25."""
    return "-".join(transport.split("-")[-3:])


def gateway_environment() -> dict[str, str]:
    """The environment the MCP SDK gives a stdio server (a safe few variables), plus this test's database URL and
    `PYTHONPATH` (the checkout under test, and its tracking SDK, run as they are tested)."""
    env = get_default_environment()
    if path := os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = path
    if data_home := os.environ.get("XDG_DATA_HOME"):  # the default database's folder: never the real home's
        env["XDG_DATA_HOME"] = data_home
    if url := database_url():
        env[DATABASE_URL_VARIABLE] = url
    return env


def serve_environment(**settings: str) -> dict[str, str]:
    """The environment for an `mcp-gateway serve` a test starts: this one without `MCP_GATEWAY_*` variables but
    the test's database URL, with the test admin token and `settings` as further `MCP_GATEWAY_*` variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_GATEWAY_")}
    if url := database_url():
        env[DATABASE_URL_VARIABLE] = url
    env["MCP_GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN  # no token banner
    env["MCP_GATEWAY_RETENTION_DAYS"] = "0"  # keep the tests' dated data sets (as the `settings` fixture does)
    env.update({f"MCP_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    return env


def gateway_executable() -> str:
    """The `mcp-gateway` console script of the environment running the tests."""
    return str(Path(sys.executable).with_name("mcp-gateway"))


@contextlib.asynccontextmanager
async def connect(transport: str, server: LiveServer, gateway_id: str = DEMO) -> AsyncIterator[McpSession]:
    """A connected session to `gateway_id` over `transport`, closed (and the process reaped) on exit."""
    version = expected_protocol_version(transport)
    mode = "legacy" if version == HANDSHAKE else "auto"
    with anyio.fail_after(MCP_TIMEOUT):
        if transport.startswith("jsonrpc-post-"):
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                yield JsonRpcPostSession(http, f"/v1/mcp/sse?gid={gateway_id}", protocol_version=version)
        elif transport.startswith("sse-"):
            async with Client(sse_client(server.url(f"/v1/mcp/sse?gid={gateway_id}")), mode=mode) as client:
                yield client
        elif transport.startswith("streamable-http-"):
            async with Client(server.url(f"/mcp?gid={gateway_id}"), mode=mode) as client:
                yield client
        elif transport.startswith("stdio-"):
            params = StdioServerParameters(
                command=gateway_executable(),
                args=["stdio", "--gateway", gateway_id, "--db", str(server.db_path)],
                env=gateway_environment(),
            )
            with (server.db_path.parent / "stdio-stderr.log").open("a", encoding="utf-8") as errlog:
                async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
                    yield client
        else:
            raise ValueError(f"unknown transport {transport!r}")


def text_of(result: ReadResourceResult) -> str:
    """The text of a single-content resource read."""
    assert len(result.contents) == 1
    content = result.contents[0]
    text = getattr(content, "text", None)
    assert isinstance(text, str), content
    return text


def json_of(result: ReadResourceResult) -> Any:
    return json.loads(text_of(result))


# -- keys and the database file ---------------------------------------------------------------------


async def create_key(http: httpx.AsyncClient, gateway_id: str = DEMO, kind: str = "org") -> str:
    """A new API key of `kind` for `gateway_id`, made through the admin API; the plaintext."""
    key: str = (await admin_json(http, "POST", f"/v1/gateways/{gateway_id}/keys", {"kind": kind}))["key"]
    return key


def database_url() -> str | None:
    """The PostgreSQL database of a test running on PostgreSQL (the `database_url` fixture sets it), else None."""
    return os.environ.get(DATABASE_URL_VARIABLE) or None


def stored_rows(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows read straight from the database this test's gateway uses, as another client would: the PostgreSQL
    database when the test runs on PostgreSQL, else the SQLite file `db_path`. `sql` has `?` placeholders."""
    if url := database_url():
        with psycopg.connect(url, row_factory=dict_row) as pg:
            return list(pg.execute(to_pg(sql), params))
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def database_bytes(db_path: Path) -> bytes:
    """Everything the database holds: for SQLite, every byte written for `db_path` (the main file and its write-ahead
    log, freed pages included); for PostgreSQL, every row of every table as text."""
    if url := database_url():
        with psycopg.connect(url) as pg:
            tables = [row[0] for row in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            texts = [str(row[0]) for table in tables for row in pg.execute(f'SELECT t::text FROM "{table}" t')]
        return "\n".join(texts).encode()
    return b"".join(path.read_bytes() for path in (db_path, db_path.with_name(db_path.name + "-wal")) if path.exists())


RUNNING_ON: Final = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@contextlib.asynccontextmanager
async def gateway_process(db_path: Path, *args: str, **settings: str) -> AsyncIterator[tuple[anyio.abc.Process, str]]:
    """`mcp-gateway serve` on a free port (`args`: further flags; `settings`: further MCP_GATEWAY_* variables): the
    process and its base URL, once `/health` answers 200. The process and any workers it started (its process
    group) are killed and reaped on exit."""
    env = serve_environment(**settings)
    command = [gateway_executable(), "serve", "--port", "0", "--db", str(db_path), "--log-level", "info", *args]
    process = await anyio.open_process(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        assert process.stderr is not None
        log = BufferedByteReceiveStream(process.stderr)
        with anyio.fail_after(STARTUP_TIMEOUT):
            while (match := RUNNING_ON.search(await log.receive_until(b"\n", 64 * 1024))) is None:
                pass
        base_url = f"http://127.0.0.1:{int(match.group(1))}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, log)  # never let a full stderr pipe stall the server
            await _healthy(base_url)
            yield process, base_url
            tg.cancel_scope.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with anyio.fail_after(STARTUP_TIMEOUT, shield=True):
            await process.aclose()  # reaps it and closes its pipes


async def _healthy(base_url: str) -> None:
    """Wait for `/health` to answer 200 (with `--workers`, the port is bound before the workers listen on it)."""
    with anyio.fail_after(STARTUP_TIMEOUT):
        async with httpx.AsyncClient(base_url=base_url) as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return
                await anyio.sleep(0.05)


async def _drain(log: BufferedByteReceiveStream) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.IncompleteRead):
        while True:
            await log.receive()


@dataclass(frozen=True)
class SseMessage:
    event: str
    id: str | None
    data: str

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


async def sse_messages(response: httpx.Response) -> AsyncGenerator[SseMessage]:
    """The SSE messages of `response` (comments and `retry:` skipped)."""
    event: str = "message"
    event_id: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseMessage(event, event_id, "\n".join(data))
            event, event_id, data = "message", None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            event_id = value


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def value(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)
