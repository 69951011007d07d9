"""Redaction time against input size, for adversarial and ordinary text, now and (optionally) before.

    .venv/bin/python bench/redaction.py                                   # about 10 s
    .venv/bin/python bench/redaction.py --before ../wt-before --budget 5   # beside an older checkout

Each case is one string of the given size under a non-sensitive key, redacted by
`Redactor().redact` (what tracking and the store do with every argument and property): its
emails, phones and URLs found and hashed. A case's sizes run smallest first; once one size takes
longer than `--budget` seconds the larger sizes of that case are skipped (an older, quadratic scan
would take minutes). `--before` runs the same measurement with another checkout's `mcp_gateway`
first on the path, in a child process. Prints milliseconds per case and size, and the growth from
the smallest to the largest size measured (linear scans grow with the size; quadratic ones with
its square).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

SIZES: Final = (10_000, 100_000, 200_000, 1_000_000)

CASES: Final[dict[str, Callable[[int], str]]] = {
    "run without @ (adversarial)": lambda n: "a" * n,
    "many @ (adversarial)": lambda n: "a@" * (n // 2),
    "long dotted domain (adversarial)": lambda n: "a@" + "b." * (n // 2),
    "spaced digits (adversarial)": lambda n: "1 " * (n // 2),
    "+ and digit runs (adversarial)": lambda n: ("+12345678901234567890 " * (n // 22 + 1))[:n],
    "prose with emails and phones": lambda n: (
        "Hello, please call +44 20 7946 0958 or write to ada@example.com about order 1234 on 2026-05-16. " * n
    )[:n],
    "JSON-ish tool result": lambda n: ('{"plan": "pro", "price": 49.99, "id": "550e8400-e29b-41d4"} ' * n)[:n],
}


def measure(sizes: Sequence[int], budget: float) -> dict[str, dict[str, float | None]]:
    """Milliseconds per case and size (None: skipped after a slower size)."""
    from mcp_gateway_tracking.privacy import Redactor

    redactor = Redactor()
    results: dict[str, dict[str, float | None]] = {}
    for name, make in CASES.items():
        row: dict[str, float | None] = {}
        over = False
        for size in sizes:
            if over:
                row[str(size)] = None
                continue
            text = make(size)
            started = time.perf_counter()
            redactor.redact({"note": text})
            took = time.perf_counter() - started
            row[str(size)] = took * 1000
            over = took > budget
        results[name] = row
    return results


def run_child(checkout: Path, sizes: Sequence[int], budget: float) -> dict[str, dict[str, float | None]]:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    command = [sys.executable, __file__, "--child", "--budget", str(budget), "--sizes", *map(str, sizes)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    results: dict[str, dict[str, float | None]] = json.loads(output)
    return results


def cell(value: float | None) -> str:
    return "skipped" if value is None else f"{value:,.1f}"


def growth(row: dict[str, float | None], sizes: Sequence[int]) -> str:
    measured = [(size, row[str(size)]) for size in sizes if row[str(size)] is not None]
    if len(measured) < 2:
        return "-"
    (small, t_small), (large, t_large) = measured[0], measured[-1]
    assert t_small is not None and t_large is not None
    return f"x{t_large / max(t_small, 1e-3):,.0f} for x{large // small} size"


def print_table(title: str, results: dict[str, dict[str, float | None]], sizes: Sequence[int]) -> None:
    print(f"\n{title} (ms to redact one string of N characters)")
    header = f"{'case':36}" + "".join(f"{f'N={size:,}':>14}" for size in sizes) + "   growth"
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        print(f"{name:36}" + "".join(f"{cell(row[str(size)]):>14}" for size in sizes) + "   " + growth(row, sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--budget", type=float, default=5.0, help="seconds past which larger sizes are skipped")
    parser.add_argument("--before", type=Path, help="an older checkout to measure too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    if args.child:
        print(json.dumps(measure(sizes, args.budget)))
        return
    here = Path(__file__).resolve().parent.parent
    print_table(f"now ({here})", run_child(here, sizes, args.budget), sizes)
    if args.before is not None:
        print_table(f"before ({args.before.resolve()})", run_child(args.before, sizes, args.budget), sizes)


if __name__ == "__main__":
    main()
