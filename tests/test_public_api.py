"""The names `mcp_gateway` exports: adding or removing one is a deliberate change to this list."""

from __future__ import annotations

from importlib.metadata import version

import mcp_gateway

PUBLIC_NAMES = [
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


def test_public_names_are_pinned_and_sorted() -> None:
    assert mcp_gateway.__all__ == PUBLIC_NAMES
    assert mcp_gateway.__all__ == sorted(mcp_gateway.__all__)


def test_every_public_name_is_importable_from_the_package() -> None:
    missing = [name for name in mcp_gateway.__all__ if not hasattr(mcp_gateway, name)]

    assert missing == []


def test_version_is_the_installed_distribution_version() -> None:
    assert mcp_gateway.__version__ == version("mcp-gateway")
