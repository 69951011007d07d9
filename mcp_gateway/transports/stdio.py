"""`mcp-gateway stdio --gateway ID`: one gateway's MCP server on stdin/stdout, for Claude Desktop.

Nothing but JSON-RPC is written to stdout; logs go to stderr.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import InvalidInputError, NotFoundError
from ..server import ServerFactory, build_gateway_server
from ..services import Services


async def serve_stdio(settings: Settings, gateway_id: str, factory: ServerFactory = build_gateway_server) -> None:
    services = Services.build(settings)
    await services.start(network_clients=False)
    try:
        gateway = await services.directory.get(gateway_id)
        if gateway is None:
            raise NotFoundError(f"gateway {gateway_id!r} does not exist (see `mcp-gateway gateways list`)")
        if not gateway.manifest.mcp_enabled:
            raise InvalidInputError(f"MCP is not enabled for gateway {gateway_id!r}", field="mcp_enabled")
        if factory is build_gateway_server:  # its track_event tool ingests: under the account's event limit
            server = build_gateway_server(gateway, services.directory, services.store, admit=services.admit)
        else:
            server = factory(gateway, services.directory, services.store)
        services.track(server, gateway.id)
        await server.run_stdio_async()
    finally:
        await services.stop()
