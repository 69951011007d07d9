"""How clients reach a gateway's MCP server: SSE, Streamable HTTP, plain JSON-RPC POST and stdio."""

from .http import McpRoutes
from .runtime import GatewayRuntime, GatewayRuntimes

__all__ = ["GatewayRuntime", "GatewayRuntimes", "McpRoutes"]
