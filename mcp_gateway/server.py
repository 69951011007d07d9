"""Builds the MCP server of one gateway from its manifest, with the official SDK's `MCPServer`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from . import __version__
from .config import DEFAULT_V1_TRACK_RATE_LIMIT
from .gateways import BUILTIN_TOOLS, Gateway, GatewayDirectory
from .ingest.web import Admission
from .prompts import register_prompts
from .resources import register_resources
from .store import Store
from .tools import register_book_demo, register_track_event

INSTRUCTIONS: Final = (
    "This server speaks for one business. Read system://hint first and follow it. Quote prices and plans only "
    "from pricing://current and product facts only from docs://primary. Use book_demo only when the user asks "
    "for a demo, with the real name and email they gave you. Use track_event to record an event the business "
    "asked you to track."
)

ServerFactory = Callable[[Gateway, GatewayDirectory, Store], MCPServer]
"""Builds the MCP server for a gateway; the app takes one so tests can add primitives to a gateway."""


class ToolGate:
    """Offers only the built-in tools the manifest enables, checked on every request.

    Tools that are not built-ins (registered by an embedding application) are left alone.
    """

    def __init__(self, gateway_id: str, directory: GatewayDirectory) -> None:
        self._gateway_id = gateway_id
        self._directory = directory

    async def _disabled(self) -> frozenset[str]:
        gateway = await self._directory.require(self._gateway_id)
        return frozenset(BUILTIN_TOOLS) - frozenset(gateway.manifest.enabled_tools)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call":
            name = (ctx.params or {}).get("name")
            if name in await self._disabled():
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}")
        result = await call_next(ctx)
        if ctx.method == "tools/list" and isinstance(result, dict):
            disabled = await self._disabled()
            if disabled:
                result = {**result, "tools": [t for t in result.get("tools", []) if t.get("name") not in disabled]}
        return result


class PromptGuard:
    """Answers `prompts/get` for an unknown prompt or missing required arguments with -32602.

    The SDK's `MCPServer.get_prompt` turns every failure into a `ValueError`, which reaches the
    client as an internal error; these two are the client's mistake and are said so.
    """

    def __init__(self, server: MCPServer) -> None:
        self._server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "prompts/get":
            params = ctx.params or {}
            name = params.get("name")
            prompt = next((p for p in await self._server.list_prompts() if p.name == name), None)
            if prompt is None:
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
            given = params.get("arguments") or {}
            missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in given]
            if missing:
                raise MCPError(code=INVALID_PARAMS, message=f"Missing required arguments: {', '.join(missing)}")
        return await call_next(ctx)


def build_gateway_server(
    gateway: Gateway,
    directory: GatewayDirectory,
    store: Store,
    *,
    middleware: Sequence[ServerMiddleware[Any]] = (),
    track_event_limit: int = DEFAULT_V1_TRACK_RATE_LIMIT,
    admit: Admission | None = None,
) -> MCPServer:
    """The MCP server for `gateway`: its resources, `book_demo`, `track_event` (`track_event_limit` calls a minute per
    client; its events pass `admit`, the account's event limit, when given) and prompts, reading the manifest live."""
    server: MCPServer = MCPServer(
        name="mcp-gateway",
        title=gateway.name,
        version=__version__,
        instructions=INSTRUCTIONS,
        middleware=[ToolGate(gateway.id, directory), *middleware],
    )
    server.middleware.append(PromptGuard(server))
    register_resources(server, gateway.id, directory)
    register_book_demo(server, gateway.id, store)
    register_track_event(server, gateway.id, store, limit=track_event_limit, admit=admit)
    register_prompts(server, gateway.id, directory)
    return server
