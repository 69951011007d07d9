"""mcp-gateway: a self-hosted agent gateway with analytics.

The names below load on first use (PEP 562), so `import mcp_gateway.<module>` (the CLI, a test, the tracking
shim) does not import the app, the store drivers and the dashboard it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .app import create_app
    from .config import Settings
    from .gateways import AgentManifest, Gateway, GatewayDirectory
    from .server import build_gateway_server
    from .store import SQLiteStore, Store

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

_LAZY: dict[str, str] = {
    "AgentManifest": ".gateways",
    "Gateway": ".gateways",
    "GatewayDirectory": ".gateways",
    "SQLiteStore": ".store",
    "Settings": ".config",
    "Store": ".store",
    "build_gateway_server": ".server",
    "create_app": ".app",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
