"""`mcp-gateway stdio --gateway ID`: one gateway's MCP server on stdin/stdout, for Claude Desktop.

Nothing but JSON-RPC is written to stdout; logs go to stderr.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import InvalidInputError, NotFoundError
from ..gateways import GatewayDirectory
from ..server import ServerFactory, build_gateway_server
from ..store import SQLiteStore


async def serve_stdio(settings: Settings, gateway_id: str, factory: ServerFactory = build_gateway_server) -> None:
    store = SQLiteStore(settings.db_path)
    await store.open()
    try:
        directory = GatewayDirectory(store, cache_seconds=settings.gateway_cache_seconds)
        await directory.ensure_demo()
        gateway = await directory.get(gateway_id)
        if gateway is None:
            raise NotFoundError(f"gateway {gateway_id!r} does not exist (see `mcp-gateway gateways list`)")
        if not gateway.manifest.mcp_enabled:
            raise InvalidInputError(f"MCP is not enabled for gateway {gateway_id!r}", field="mcp_enabled")
        await factory(gateway, directory, store).run_stdio_async()
    finally:
        await store.close()
