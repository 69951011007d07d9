"""The layering, pinned: read every module's imports with `ast` and check them against `RULES`.

Data flows down (DESIGN.md): transports and ingest -> tenant model -> store; analytics reads the store and
never the write side; the tracking SDK knows nothing of the gateway. A rule is data: to add one, or to follow
a package that moved, edit `SOURCES` and `RULES`. Every import counts, also one inside a function or under
`TYPE_CHECKING`: a type-only import is still a dependency a reader has to know about.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent

SOURCES: Final = (ROOT / "mcp_gateway", ROOT / "packages" / "mcp-gateway-tracking" / "src" / "mcp_gateway_tracking")
"""Top-level import packages whose modules are checked; a package's name is its directory's name."""


@dataclass(frozen=True)
class Rule:
    """Modules under `importers`, other than those named in `exempt`, import nothing under `forbidden` (but may
    import under `allowed`). Names are dotted module prefixes, `a.b` covering `a.b` and `a.b.c` (never `a.bc`),
    except in `exempt`, which names modules exactly."""

    why: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()


RULES: Final = (
    Rule(
        "the event vocabulary and the errors are the bottom: everything reads them, they read nothing of ours",
        importers=("mcp_gateway.vocabulary", "mcp_gateway.errors"),
        forbidden=("mcp_gateway",),
        allowed=("mcp_gateway.vocabulary", "mcp_gateway.errors"),
    ),
    Rule(
        "the store imports nothing above it: only the vocabulary, the errors and the redaction it applies",
        importers=("mcp_gateway.store",),
        forbidden=("mcp_gateway",),
        allowed=(
            "mcp_gateway.store",
            "mcp_gateway.errors",
            "mcp_gateway.vocabulary",
            "mcp_gateway.privacy",
        ),
    ),
    Rule(
        "analytics reads what the store holds, never the write side (ingest), the transports or what sits on top",
        importers=("mcp_gateway.analytics",),
        forbidden=(
            "mcp_gateway.ingest",
            "mcp_gateway.transports",
            "mcp_gateway.tools",
            "mcp_gateway.dashboard",
            "mcp_gateway.admin",
            "mcp_gateway.app",
            "mcp_gateway.cli",
        ),
    ),
    Rule(
        "below the routes nothing knows HTTP: analytics' questions, the store, rate limits, experiments' statistics,"
        " accounts' service and the integrations' platforms and worker raise domain errors (`mcp_gateway.errors`),"
        " which only the route layer turns into HTTP answers (`mcp_gateway.web`)",
        importers=(
            "mcp_gateway.analytics",
            "mcp_gateway.store",
            "mcp_gateway.ratelimit",
            "mcp_gateway.experiments.stats",
            "mcp_gateway.experiments.results",
            "mcp_gateway.experiments.assignment",
            "mcp_gateway.experiments.repository",
            "mcp_gateway.accounts.service",
            "mcp_gateway.accounts.limits",
            "mcp_gateway.integrations.platforms",
            "mcp_gateway.integrations.worker",
        ),
        forbidden=("starlette", "sse_starlette", "uvicorn", "mcp_gateway.web"),
        exempt=("mcp_gateway.analytics.api", "mcp_gateway.analytics.live", "mcp_gateway.analytics.mcp_endpoint"),
    ),
    Rule(
        "the tenant model and its keys know no HTTP",
        importers=("mcp_gateway.gateways", "mcp_gateway.keys"),
        forbidden=("starlette", "sse_starlette", "uvicorn", "mcp_gateway.web"),
    ),
    Rule(
        "`Services` is no locator: the entry points that build it (the app, stdio) hand each component what it needs",
        importers=("mcp_gateway",),
        forbidden=("mcp_gateway.services",),
        exempt=("mcp_gateway.services", "mcp_gateway.app", "mcp_gateway.transports.stdio"),
    ),
    Rule(
        "only the entry points build the app: the command line, and the package's public API",
        importers=("mcp_gateway",),
        forbidden=("mcp_gateway.app",),
        exempt=("mcp_gateway", "mcp_gateway.cli", "mcp_gateway.app"),
    ),
    Rule(
        "the tracking SDK (its own distribution, packages/mcp-gateway-tracking) imports nothing of the gateway",
        importers=("mcp_gateway_tracking",),
        forbidden=("mcp_gateway",),
    ),
)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def modules(source: Path) -> Iterator[tuple[str, Path, bool]]:
    """(dotted name, file, is a package's `__init__`) of every module under the package directory `source`."""
    for path in sorted(source.rglob("*.py")):
        parts = path.relative_to(source.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        yield ".".join(parts[:-1] if is_package else parts), path, is_package


def imports_of(name: str, path: Path, is_package: bool, known: set[str]) -> Iterator[Import]:
    """Every module `path` imports; `from pkg import mod` counts as importing `pkg.mod` when that is a module."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                yield Import(name, submodule if submodule in known else module, node.lineno)


def import_graph(sources: tuple[Path, ...] = SOURCES) -> tuple[set[str], list[Import]]:
    """The modules under `sources` and every import they make."""
    found = [module for source in sources for module in modules(source)]
    known = {name for name, _, _ in found}
    return known, [edge for name, path, is_package in found for edge in imports_of(name, path, is_package, known)]


def violations(edges: list[Import], rules: tuple[Rule, ...] = RULES) -> list[tuple[Import, Rule]]:
    return [
        (edge, rule)
        for rule in rules
        for edge in edges
        if _under(edge.importer, rule.importers)
        and edge.importer not in rule.exempt
        and _under(edge.imported, rule.forbidden)
        and not _under(edge.imported, rule.allowed)
    ]


def test_the_lower_layers_never_import_the_upper_ones() -> None:
    _, edges = import_graph()

    assert [f"{edge}: {rule.why}" for edge, rule in violations(edges)] == []


def test_every_rule_names_modules_that_exist() -> None:
    """A rule whose importers all moved or were renamed would pass for nothing: it must follow them."""
    known, _ = import_graph()

    vacant = [rule.why for rule in RULES if not any(_under(module, rule.importers) for module in known)]

    assert vacant == []


def test_a_forbidden_import_is_reported_with_its_line(tmp_path: Path) -> None:
    package = tmp_path / "mcp_gateway"
    (package / "store").mkdir(parents=True)
    (package / "analytics").mkdir()
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "ingest.py").write_text("")
    (package / "store" / "__init__.py").write_text("from ..errors import X\n")
    (package / "store" / "sqlite.py").write_text("import json\n\n\ndef f():\n    from .. import ingest\n")
    (package / "analytics" / "__init__.py").write_text("from mcp_gateway.ingest import capture\n")
    (package / "gateways.py").write_text("if True:\n    from starlette.requests import Request\n")

    _, edges = import_graph((package,))
    found = [(edge.importer, edge.imported, edge.line) for edge, _ in violations(edges)]

    assert found == [
        ("mcp_gateway.store.sqlite", "mcp_gateway.ingest", 5),
        ("mcp_gateway.analytics", "mcp_gateway.ingest", 1),
        ("mcp_gateway.gateways", "starlette.requests", 2),
    ]


def test_relative_imports_resolve_against_the_package() -> None:
    known = {"mcp_gateway", "mcp_gateway.web", "mcp_gateway.analytics", "mcp_gateway.analytics.live"}
    source = ROOT / "mcp_gateway" / "analytics" / "live.py"

    imported = {edge.imported for edge in imports_of("mcp_gateway.analytics.live", source, False, known)}

    assert "mcp_gateway.web" in imported
    assert not any(name.startswith(".") for name in imported)


def test_every_exempt_module_exists() -> None:
    """An exemption for a module that moved would silently exempt nothing, or later the wrong module."""
    known, _ = import_graph()

    assert [name for rule in RULES for name in rule.exempt if name not in known] == []


def test_an_analytics_question_raising_an_http_error_is_reported_and_its_route_is_not(tmp_path: Path) -> None:
    package = tmp_path / "mcp_gateway"
    (package / "analytics").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "analytics" / "__init__.py").write_text("")
    (package / "analytics" / "window.py").write_text(
        "from ..errors import InvalidInputError\nfrom ..web import ApiError\n"
    )
    (package / "analytics" / "api.py").write_text(
        "from starlette.requests import Request\nfrom ..web import ApiError\n"
    )

    _, edges = import_graph((package,))
    found = [(edge.importer, edge.imported) for edge, _ in violations(edges)]

    assert found == [("mcp_gateway.analytics.window", "mcp_gateway.web")]
