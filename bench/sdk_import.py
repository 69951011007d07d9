"""How long importing the tracking SDK takes: `import mcp_gateway_tracking` against the old `import
mcp_gateway.tracking`, which loaded the whole gateway before the SDK became its own package.

Each import runs in a fresh interpreter that times it with `time.perf_counter` (start-up excluded), `--runs`
times per row, the rows interleaved (every other round reversed) so that load from other processes on the
machine falls on all of them alike, after one warm-up run each that writes the bytecode caches. Two views:

- alone: the import in an empty interpreter;
- in a server: the same import after `import mcp.server`, which every server built on the SDK has already paid
  for: what tracking adds to a server's start.

It prints medians in milliseconds, wall and CPU (the CPU time moves less when other processes load the machine),
and the modules each import added.

    .venv/bin/python bench/sdk_import.py                 # about 30 s on 2 CPUs
    .venv/bin/python bench/sdk_import.py --runs 30 --before <rev>

"before" rows import `mcp_gateway.tracking` from the tree of `--before` (default: the commit before the one
that moved `mcp_gateway/tracking/` out, found with git), extracted into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
SDK_SOURCE: Final = REPO_ROOT / "packages" / "mcp-gateway-tracking" / "src"
MOVED_MODULE: Final = "mcp_gateway/tracking/__init__.py"
TIMEOUT_S: Final = 60.0


PROBE: Final = """
import sys, time
exec(sys.argv[1])
count = len(sys.modules)
wall, cpu = time.perf_counter(), time.process_time()
exec(sys.argv[2])
print(time.perf_counter() - wall, time.process_time() - cpu, len(sys.modules) - count)
"""
"""Runs a prelude, then times the statement; prints its wall and CPU seconds and the modules it added."""

SERVER_PRELUDE: Final = "import mcp.server"


@dataclass
class Target:
    label: str
    statement: str
    path: list[Path]
    prelude: str = "pass"
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    modules: int = 0

    def run(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(folder) for folder in self.path)}
        done = subprocess.run(
            [sys.executable, "-c", PROBE, self.prelude, self.statement],
            cwd=tempfile.gettempdir(),
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=True,
        )
        wall, cpu, modules = done.stdout.split()
        self.seconds.append(float(wall))
        self.cpu_seconds.append(float(cpu))
        self.modules = int(modules)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def median_cpu_ms(self) -> float:
        return statistics.median(self.cpu_seconds) * 1000


def moved_at() -> str | None:
    """The commit before the one that removed `mcp_gateway/tracking/__init__.py`, if git knows it."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-list", "-1", "HEAD", "--", MOVED_MODULE],
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT_S,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{rev}^" if rev else None


def extract(rev: str, into: Path) -> None:
    """The `mcp_gateway` package as it was at `rev`, written below `into`."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", rev, "mcp_gateway"], stdout=out, check=True, timeout=TIMEOUT_S
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per target (default 15)")
    parser.add_argument("--before", default=moved_at(), help="the revision of the old import (default: found)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        sdk, repo, old = [SDK_SOURCE], [SDK_SOURCE, REPO_ROOT], [Path(scratch)]
        rows = [
            Target("alone: import mcp_gateway_tracking (the SDK)", "import mcp_gateway_tracking", sdk),
            Target("alone: import mcp_gateway.tracking (compat, now)", "import mcp_gateway.tracking", repo),
            Target("alone: import mcp", "import mcp", sdk),
            Target("in a server: import mcp_gateway_tracking", "import mcp_gateway_tracking", sdk, SERVER_PRELUDE),
        ]
        if args.before:
            extract(args.before, Path(scratch))
            rows.insert(1, Target("alone: import mcp_gateway.tracking (before)", "import mcp_gateway.tracking", old))
            rows.append(
                Target(
                    "in a server: import mcp_gateway.tracking (before)",
                    "import mcp_gateway.tracking",
                    old,
                    SERVER_PRELUDE,
                )
            )
        for row in rows:
            row.run()  # warm-up: bytecode caches
            row.seconds.clear()
            row.cpu_seconds.clear()
        for round_ in range(args.runs):
            for row in rows if round_ % 2 == 0 else rows[::-1]:
                row.run()

    print(f"{'import':<52} {'wall ms':>9} {'CPU ms':>8} {'modules':>8}")
    for row in rows:
        print(f"{row.label:<52} {row.median_ms:>9.1f} {row.median_cpu_ms:>8.1f} {row.modules:>8}")
    if args.before:
        print(f"before: {args.before}")
        for view in ("alone", "in a server"):
            sdk_row, before_row = (
                next(r for r in rows if r.label.startswith(view) and key in r.label)
                for key in ("mcp_gateway_tracking", "(before)")
            )
            wall = sdk_row.median_ms / before_row.median_ms
            cpu = sdk_row.median_cpu_ms / before_row.median_cpu_ms
            print(f"{view}: the SDK takes {wall:.2f} of the old import's wall time, {cpu:.2f} of its CPU time")
    print(f"medians of {args.runs} runs each")


if __name__ == "__main__":
    main()
