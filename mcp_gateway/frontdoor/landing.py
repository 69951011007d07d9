"""`GET /`: what a person who opens the gateway's address finds, and what a program asking for JSON gets.

A browser (whatever asks for `text/html`, or for anything) gets a page: what this gateway is, links to
the dashboard (and how to get the read key it asks for), the API docs and the operations endpoints, and,
for each gateway that offers MCP, its endpoints and how to connect Claude Desktop and the MCP Inspector
with configuration to copy. A client that asks for `application/json` and not HTML gets the same facts
as JSON. `POST /` is another route: seed 001's deprecated alias of `/lead.capture` (`ingest.visits`).

The copyable Claude Desktop configuration names this server's `mcp-gateway` executable and SQLite file
only for a client on the same machine (a loopback address); anyone else sees placeholders, so the page
tells nobody remote where files lie. A PostgreSQL URL (which holds a password) is never shown.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from typing_extensions import TypedDict

from .. import __version__
from ..config import Settings
from ..dashboard.markup import Markup, concat, render
from ..dashboard.page import FAVICON
from ..gateways import Gateway, GatewayDirectory
from ..openapi import Operation
from ..transports.runtime import MCP_PATH
from ..web import client_host

MAX_LISTED_GATEWAYS: Final = 20
"""Gateways whose endpoints the page lists; past that it says how many more there are."""
SSE_PATH: Final = "/v1/mcp/sse"
INSPECTOR_NODE: Final = "22.19"
"""The oldest Node the MCP Inspector runs on."""
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none';"
        " base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept",
}
"""No script at all; styles only from this origin (the dashboard's stylesheet)."""


class Endpoints(TypedDict):
    streamable_http: str
    sse: str
    json_rpc: str
    stdio: str


class GatewayEntry(TypedDict):
    id: str
    name: str
    endpoints: Endpoints


class Links(TypedDict):
    dashboard: str
    docs: str
    openapi: str
    health: str
    metrics: str


class FrontDoorInfo(TypedDict):
    """`GET /` as JSON (`Accept: application/json`)."""

    name: str
    version: str
    links: Links
    gateways: list[GatewayEntry]
    more_gateways: int
    """Gateways offering MCP beyond the first `MAX_LISTED_GATEWAYS`."""


LINKS: Final = Links(
    dashboard="/dashboard", docs="/docs", openapi="/openapi.json", health="/health", metrics="/metrics"
)


def wants_json(accept: str) -> bool:
    """True when the client asked for JSON and not for HTML: a browser (`text/html`, `*/*`) gets the page."""
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return "application/json" in kinds and "text/html" not in kinds


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class StdioCommand:
    """How Claude Desktop starts `mcp-gateway stdio`: the executable and the database flags."""

    executable: str
    database: tuple[str, ...]

    @classmethod
    def for_client(cls, settings: Settings, *, local: bool) -> StdioCommand:
        if settings.database_url is not None:
            return cls(_executable(local), ("--database-url", "postgresql://USER:PASSWORD@HOST/DBNAME"))
        if not local:
            return cls(_executable(local), ("--db", "/path/to/mcp-gateway.db"))
        return cls(_executable(local), ("--db", str(settings.db_path.resolve())))

    def config(self, gateway: Gateway) -> str:
        args = ["stdio", "--gateway", gateway.id, *self.database]
        server = {"command": self.executable, "args": args}
        return json.dumps({"mcpServers": {gateway.id: server}}, indent=2)


def _executable(local: bool) -> str:
    """The absolute path of this installation's `mcp-gateway` script, for a local client that has one."""
    script = Path(sys.executable).with_name("mcp-gateway")
    return str(script) if local and script.exists() else "/path/to/mcp-gateway/.venv/bin/mcp-gateway"


class FrontDoor:
    """`GET /`: the landing page, or its facts as JSON."""

    def __init__(self, directory: GatewayDirectory, settings: Settings, *, css: str) -> None:
        self._directory = directory
        self._settings = settings
        self._css = css

    def operation(self) -> Operation:
        return Operation(
            "GET",
            "/",
            "The landing page (HTML): what this gateway is, its dashboard, API docs and MCP endpoints",
            "operations",
            response=str,
            content_type="text/html",
            errors=(),
            description="A client whose Accept names application/json and not text/html gets the same facts as JSON"
            " (`FrontDoorInfo`: name, version, links, and each gateway offering MCP with its endpoints).",
        )

    async def serve(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        offered = [gateway for gateway in await self._directory.all() if gateway.manifest.mcp_enabled]
        listed, more = offered[:MAX_LISTED_GATEWAYS], max(0, len(offered) - MAX_LISTED_GATEWAYS)
        if wants_json(request.headers.get("accept", "")):
            info = FrontDoorInfo(
                name="mcp-gateway",
                version=__version__,
                links=LINKS,
                gateways=[_entry(gateway, base) for gateway in listed],
                more_gateways=more,
            )
            return JSONResponse(info, headers={"Vary": "Accept", "Cache-Control": "no-store"})
        stdio = StdioCommand.for_client(self._settings, local=_is_loopback(client_host(request)))
        return HTMLResponse(_page(self._css, base, listed, more, stdio), headers=PAGE_HEADERS)


def _entry(gateway: Gateway, base: str) -> GatewayEntry:
    return GatewayEntry(
        id=gateway.id,
        name=gateway.name,
        endpoints=Endpoints(
            streamable_http=f"{base}{MCP_PATH}?gid={gateway.id}",
            sse=f"{base}{SSE_PATH}?gid={gateway.id}",
            json_rpc=f"POST {base}{SSE_PATH}?gid={gateway.id}",
            stdio=f"mcp-gateway stdio --gateway {gateway.id}",
        ),
    )


def _page(css: str, base: str, gateways: Sequence[Gateway], more: int, stdio: StdioCommand) -> Markup:
    cards = concat(_gateway_card(gateway, base, stdio) for gateway in gateways)
    if not gateways:
        cards = render(
            '<section class="card span-12"><h2>No gateway offers MCP</h2><p class="muted">Create one with '
            "<code>mcp-gateway gateways create</code>, or enable MCP in a gateway's manifest.</p></section>"
        )
    if more:
        cards = concat([cards, render('<p class="muted">… and {n} more gateways.</p>', n=more)])
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark"><title>mcp-gateway</title><link rel="icon" href="{icon}">'
        '<link rel="stylesheet" href="{css}"></head><body><main class="page">'
        '<header class="top"><div class="brand"><span class="logo" aria-hidden="true"></span>'
        '<div><h1>mcp-gateway</h1><p class="muted">version {version}</p></div></div></header>'
        '<div class="grid">'
        '<section class="card span-12"><p>An <strong>agent gateway with analytics</strong>: AI agents connect '
        "here over MCP and find this business's resources, tools and prompts; every session and call is "
        "recorded, with personal data hashed, next to the website's events, and answered as analytics.</p>"
        "<ul>"
        '<li><a href="/dashboard">Dashboard</a>: sessions, tools, clients, leads, pages and a live feed. It asks '
        "for a read key (<code>rk_…</code>), which whoever runs the gateway creates with "
        "<code>mcp-gateway keys create --gateway ID --kind read</code> (or the admin API: "
        '<code>POST /v1/gateways/ID/keys</code> with <code>{{"kind": "read"}}</code>).</li>'
        '<li><a href="/docs">API docs</a>: every REST operation, to read and to try '
        '(<a href="/openapi.json">OpenAPI document</a>).</li>'
        '<li><a href="/health">Health</a> and <a href="/metrics">Prometheus metrics</a>.</li>'
        "</ul></section>"
        "{cards}</div></main></body></html>",
        css=css,
        icon=FAVICON,
        version=__version__,
        cards=cards,
    )


def _gateway_card(gateway: Gateway, base: str, stdio: StdioCommand) -> Markup:
    entry = _entry(gateway, base)["endpoints"]
    inspector = (
        f"npx @modelcontextprotocol/inspector --cli '{entry['streamable_http']}' --transport http --method tools/list"
    )
    return render(
        '<section class="card span-12" id="gateway-{id}"><h2>{name} <span class="muted">({id})</span></h2>'
        "<table><tbody>"
        "<tr><td>Streamable HTTP</td><td><code>{http}</code></td></tr>"
        "<tr><td>SSE (older clients)</td><td><code>GET {sse}</code></td></tr>"
        "<tr><td>Plain JSON-RPC</td><td><code>{rpc}</code></td></tr>"
        "<tr><td>stdio</td><td><code>{stdio_cmd}</code></td></tr>"
        "</tbody></table>"
        '<h3>Claude Desktop</h3><p class="muted">Add to <code>claude_desktop_config.json</code> '
        "(macOS: <code>~/Library/Application Support/Claude/</code>, Windows: <code>%APPDATA%\\Claude\\</code>), "
        "then restart Claude Desktop:</p><pre><code>{desktop}</code></pre>"
        '<h3>MCP Inspector</h3><p class="muted">Needs Node ≥ {node}. Run <code>npx @modelcontextprotocol/inspector'
        "</code>, choose transport <strong>Streamable HTTP</strong> and URL <code>{http}</code>, then Connect. "
        "Or without the UI:</p><pre><code>{inspector}</code></pre></section>",
        id=gateway.id,
        name=gateway.name,
        http=entry["streamable_http"],
        sse=entry["sse"],
        rpc=entry["json_rpc"],
        stdio_cmd=entry["stdio"],
        desktop=stdio.config(gateway),
        node=INSPECTOR_NODE,
        inspector=inspector,
    )
