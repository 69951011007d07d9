"""The tracking SDK is a package of its own: it imports no gateway module and depends on `mcp` and `httpx` only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SDK_ROOT: Final = REPO_ROOT / "packages" / "mcp-gateway-tracking"
SDK_SOURCE: Final = SDK_ROOT / "src"
SDK_PACKAGE: Final = "mcp_gateway_tracking"

HEAVY_GATEWAY_DEPENDENCIES: Final = ("psycopg", "prometheus_client", "geoip2fast", "ua_parser", "cloudip")
"""What the gateway loads and a tracked server must not pay for."""


def imported_modules(statement: str, *path: Path) -> list[str]:
    """The modules `python -X importtime -c statement` reports, run with only `path` (else the SDK's source) on
    `PYTHONPATH` and outside the checkout, so the gateway is not importable from the working directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(folder) for folder in path or (SDK_SOURCE,))}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=SDK_SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # `import time: <self us> | <cumulative us> | <module, indented by depth>`, under a header line.
    rows = [line.removeprefix("import time:").split("|") for line in done.stderr.splitlines()]
    return [row[2].strip() for row in rows if len(row) == 3 and row[0].strip().isdigit()]


def is_gateway_module(name: str) -> bool:
    return name == "mcp_gateway" or name.startswith("mcp_gateway.")


def test_importing_the_sdk_loads_no_gateway_module_nor_the_gateways_dependencies() -> None:
    modules = imported_modules(f"import {SDK_PACKAGE}; {SDK_PACKAGE}.track_mcp")

    assert SDK_PACKAGE in modules and f"{SDK_PACKAGE}.tracker" in modules
    assert [name for name in modules if is_gateway_module(name)] == []
    assert [name for name in modules if name.split(".")[0] in HEAVY_GATEWAY_DEPENDENCIES] == []


def test_the_old_import_path_is_seen_as_gateway_modules_by_the_same_probe() -> None:
    # The probe can fail: `mcp_gateway.tracking` (the compatibility re-export) is gateway code.
    modules = imported_modules("import mcp_gateway.tracking", SDK_SOURCE, REPO_ROOT)

    assert "mcp_gateway.tracking" in modules and SDK_PACKAGE in modules
    assert [name for name in modules if is_gateway_module(name)] == [
        "mcp_gateway._version",
        "mcp_gateway",
        "mcp_gateway.tracking",
    ]


def test_no_sdk_module_names_the_gateway_even_in_a_function() -> None:
    offenders = []
    for path in sorted((SDK_SOURCE / SDK_PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} {name}" for name in names if is_gateway_module(name)]
    assert offenders == []


def test_the_sdk_depends_on_mcp_and_httpx_only() -> None:
    project = tomllib.loads((SDK_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"]
    names = sorted(req.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for req in requirements)

    assert names == ["httpx", "mcp"]
    assert project["name"] == "mcp-gateway-tracking"


def test_the_gateway_depends_on_the_sdk_in_this_repository() -> None:
    requirements = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]

    assert "mcp-gateway-tracking @ {root:uri}/packages/mcp-gateway-tracking" in requirements
