"""Headless Chromium for the browser tests: where it is, the flags every run takes, and a page's final DOM.

Chromium is required under CI (`make test` installs it with scripts/install_chromium.sh); a developer machine
without it skips the browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pytest

CHROMIUM: Final = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
BROWSER_TIMEOUT: Final = 60.0

HEADLESS_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
)
"""Headless, as root, on a machine whose only network is loopback (background requests would be refused)."""


def require_chromium() -> str:
    """The Chromium binary; the test fails under CI without one, and is skipped elsewhere."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: run scripts/install_chromium.sh")
        pytest.skip("chromium is not installed (scripts/install_chromium.sh installs it); CI runs this test")
    return CHROMIUM


def dump_dom(chromium: str, url: str, profile: Path, *, virtual_time_ms: int, flags: Sequence[str] = ()) -> str:
    """The DOM of `url` once its scripts ran for `virtual_time_ms` of virtual time; `flags` go to Chromium too."""
    command = [
        chromium,
        *HEADLESS_FLAGS,
        f"--user-data-dir={profile}",
        *flags,
        f"--virtual-time-budget={virtual_time_ms}",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
