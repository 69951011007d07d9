"""The dashboard in a real browser: headless Chromium logs in through the form, over a real socket.

Chromium is driven through its DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4
out, NUL-separated JSON), so the test needs no extra client library. It waits for the page's script to
fill in the slow cards, reads the rendered DOM, checks the figures against the REST API, watches an event
arrive in the live feed over `/stream`, and saves screenshots (light and dark) to test-artifacts/dashboard/
— and, when `DASHBOARD_SCREENSHOT` names a PNG path, a copy of the light one there (the dark one next to
it, `-dark.png`).

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh`); skipped locally without it, failed in CI.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from mcp_gateway.dashboard.page import SECTIONS

from .browser import HEADLESS_FLAGS, require_chromium
from .support import ADMIN_HEADERS, DEMO, LiveServer

PROTOCOL_TIMEOUT: Final = 30.0
"""Longest one DevTools command, or one awaited page event, may take."""
VIEWPORT: Final = {"width": 1280, "height": 900}
SESSION: Final = "550e8400-e29b-41d4-a716-446655440000"

ARTIFACTS: Final = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
"""Where the screenshots are kept after the run (git-ignored)."""


class DevTools:
    """A Chromium process and its DevTools protocol over a pipe; one page target attached (flattened)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        command = [
            chromium,
            *HEADLESS_FLAGS,
            "--hide-scrollbars",
            "--font-render-hinting=none",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The shell puts the pipes on fds 3 and 4, where --remote-debugging-pipe expects them.
        self._process = subprocess.Popen(
            ["/bin/sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2', "sh", *command],
            stdin=to_browser_read,
            stdout=from_browser_write,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.page_errors: list[dict[str, Any]] = []
        """Script exceptions and console errors (a Content-Security-Policy violation is one)."""
        self.session = ""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {**VIEWPORT, "deviceScaleFactor": 1, "mobile": False})

    def close(self) -> None:
        self._process.kill()
        self._process.wait(PROTOCOL_TIMEOUT)
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(remaining, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown" or (method == "Log.entryAdded" and params["entry"]["level"] == "error"):
            self.page_errors.append(params)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command to the page (or the browser, before a page is attached); its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + PROTOCOL_TIMEOUT
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer["result"]
                return result
            self._events.append(answer)

    def wait_for(self, event: str) -> None:
        """Until the page sends `event` (counting ones already received since the last wait)."""
        deadline = time.monotonic() + PROTOCOL_TIMEOUT
        while True:
            for i, seen in enumerate(self._events):
                if seen.get("method") == event:
                    del self._events[: i + 1]
                    return
            self._events.append(self._message(deadline))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def wait_until(self, expression: str) -> Any:
        """Until `expression` is truthy in the page (polled); its value."""
        deadline = time.monotonic() + PROTOCOL_TIMEOUT
        while (value := self.evaluate(expression)) in (None, False, "", 0):
            assert time.monotonic() < deadline, f"never true in the page: {expression}"
            time.sleep(0.05)
        return value

    def screenshot(self, path: Path) -> None:
        """The whole page, as tall as its content, as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height, "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    devtools = DevTools(require_chromium(), tmp_path / "profile")
    try:
        yield devtools
    finally:
        devtools.close()


def _capture(http: httpx.Client, org_key: str, events: list[dict[str, Any]]) -> None:
    session = {"session_id": SESSION, "client_config": "claude-desktop 1.0", "connection_type": "streamable-http"}
    response = http.post(
        "/api/v1/capture-batch", json={"sessions": [session], "events": events}, headers={"X-Org-Id": org_key}
    )
    assert response.status_code == 200, response.text
    assert {e["status"] for e in response.json()["events"]} == {"stored"}


def _tool_call(name: str, latency: float, ts_ms: int, *, success: bool = True) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "primitive_type": "tool",
        "primitive_name": name,
        "latency": latency,
        "success": success,
        "event_id": f"{name}-{ts_ms}-{latency}",
        "timestamp": ts_ms,
    }


def _cell_texts(dom: str, section_id: str) -> list[list[str]]:
    """The text of each table row's cells in the section `section_id` of the rendered DOM."""
    found = re.search(rf'<section[^>]*id="{section_id}".*?</section>', dom, re.S)
    assert found is not None, f"no section {section_id}"
    cells = [
        re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", found.group(0), re.S)
    ]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in row] for row in cells if row]


def test_the_dashboard_logs_in_through_the_form_and_shows_the_apis_figures_live(
    live_server: LiveServer, browser: DevTools, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    with httpx.Client(base_url=live_server.base_url) as http:
        keys = {
            kind: http.post(f"/v1/gateways/{DEMO}/keys", json={"kind": kind}, headers=ADMIN_HEADERS).json()["key"]
            for kind in ("org", "read")
        }
        # search: 3 calls, 1 failed -> error rate 33.3%; book_demo: 1 call.
        _capture(
            http,
            keys["org"],
            [
                _tool_call("search", 10.0, now - 60_000),
                _tool_call("search", 20.0, now - 50_000),
                _tool_call("search", 30.0, now - 40_000, success=False),
                _tool_call("book_demo", 5.0, now - 30_000),
            ],
        )
        window = {"since": now - 3_600_000, "until": now + 3_600_000}
        api = http.get("/analytics/tools", params=window, headers={"Authorization": f"Bearer {keys['read']}"}).json()

        browser.navigate(live_server.url("/dashboard"))
        assert browser.evaluate("document.querySelector('form').getAttribute('action')") == "/dashboard/login"
        browser.evaluate(
            f"document.getElementById('key').value = {json.dumps(keys['read'])};"
            " document.querySelector('form').submit()"
        )
        browser.wait_for("Page.loadEventFired")
        assert browser.evaluate("location.pathname") == "/dashboard"
        browser.navigate(live_server.url(f"/dashboard?since={window['since']}&until={window['until']}"))
        # The slow cards come as placeholders, which sections.js fills from /dashboard/sections/{id}.
        cards = len(SECTIONS) - 1  # every section but the overview's tiles is a card
        assert browser.wait_until("document.querySelectorAll('section.card').length") == cards
        browser.wait_until("!document.querySelector('[aria-busy], [data-source], .pending')")
        dom = browser.evaluate("document.documentElement.outerHTML")
        assert "could not be loaded" not in dom and "Loading…" not in dom
        for card in ("sessions-chart", "clients", "pages", "sources", "funnel"):
            assert re.search(rf'<section class="card [\w-]+" id="{card}">', dom), card

        rows = {row[0].split()[-1]: row for row in _cell_texts(dom, "tools")}
        assert set(rows) == {"search", "book_demo"}
        for stats in api["primitives"]:
            row = rows[stats["name"]]
            assert row[1:4] == [str(stats["calls"]), str(stats["errors"]), f"{stats['error_rate'] * 100:.1f}%"]
        assert rows["search"][1:4] == ["3", "1", "33.3%"]
        clients = http.get("/analytics/clients", params=window, headers={"Authorization": f"Bearer {keys['read']}"})
        assert (
            [row[1:3] for row in _cell_texts(dom, "clients")]
            == [[str(c["sessions"]), str(c["calls"])] for c in clients.json()["clients"]]
            == [["1", "4"]]
        )

        # The live feed connects to /stream with the login cookie, and shows an event stored afterwards.
        status = "document.getElementById('live-status').textContent"
        assert browser.wait_until(f"['live', 'live feed unavailable'].includes({status}) && {status}") == "live"
        _capture(http, keys["org"], [_tool_call("fresh_tool", 7.0, int(time.time() * 1000))])
        browser.wait_until("document.getElementById('live-feed').textContent.includes('fresh_tool')")
        assert browser.page_errors == []

    light = tmp_path / "dashboard.png"
    browser.screenshot(light)
    browser.call("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    dark = tmp_path / "dashboard-dark.png"
    browser.screenshot(dark)
    assert light.read_bytes().startswith(b"\x89PNG") and dark.read_bytes().startswith(b"\x89PNG")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # kept after the run, beside the conformance results
    for shot in (light, dark):
        shutil.copyfile(shot, ARTIFACTS / shot.name)
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copyfile(light, target)
        shutil.copyfile(dark, Path(target).with_name(Path(target).stem + "-dark.png"))
    print(f"dashboard screenshots: {ARTIFACTS / light.name} {ARTIFACTS / dark.name}")
