"""The names `mcp_gateway` exports: adding or removing one is a deliberate change to this list."""

from __future__ import annotations

import subprocess
import sys
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


def test_importing_the_package_loads_none_of_its_modules_until_a_name_is_used() -> None:
    probe = (
        "import sys, mcp_gateway\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mcp_gateway'))\n"
        "mcp_gateway.create_app\n"
        "print('mcp_gateway.app' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)

    assert done.stdout.splitlines() == ["['mcp_gateway', 'mcp_gateway._version']", "True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(mcp_gateway, "no_such_name")
