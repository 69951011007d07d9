"""What reading settings costs a command's start: importing pydantic-settings (in a fresh interpreter, after
pydantic, which the gateway imports anyway) and one `load_settings()` (every variable, a config file with a few
keys, validation), median of `--rounds`.

    .venv/bin/python bench/settings_load.py            # a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORT_PROBE = (
    "import time, pydantic.main, pydantic.fields, pydantic.type_adapter, typing_extensions;"
    " t = time.perf_counter(); import pydantic_settings;"
    " print(time.perf_counter() - t)"
)


def import_seconds(rounds: int) -> float:
    runs = [float(subprocess.check_output([sys.executable, "-c", IMPORT_PROBE], text=True)) for _ in range(rounds)]
    return statistics.median(runs)


def load_seconds(rounds: int) -> float:
    from mcp_gateway.config_sources import load_settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text('port = 9000\nallowed_hosts = ["gw.example.com"]\nlog_format = "json"\n', encoding="utf-8")
        os.environ["MCP_GATEWAY_MAX_BODY_BYTES"] = "2097152"
        load_settings(config_file=path)
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            load_settings({"host": "127.0.0.1"}, config_file=path)
            runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"import pydantic_settings: {import_seconds(min(args.rounds, 9)) * 1000:.1f} ms (median, fresh interpreter)")
    print(f"load_settings(): {load_seconds(args.rounds) * 1000:.2f} ms (median of {args.rounds})")


if __name__ == "__main__":
    main()
