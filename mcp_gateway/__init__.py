"""mcp-gateway: a self-hosted agent gateway with analytics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-gateway")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

from .app import create_app  # noqa: E402
from .config import Settings  # noqa: E402
from .gateways import AgentManifest, Gateway, GatewayDirectory  # noqa: E402
from .server import build_gateway_server  # noqa: E402
from .store import SQLiteStore, Store  # noqa: E402

__all__ = [
    "AgentManifest",
    "Gateway",
    "GatewayDirectory",
    "SQLiteStore",
    "Settings",
    "Store",
    "__version__",
    "build_gateway_server",
    "create_app",
]
