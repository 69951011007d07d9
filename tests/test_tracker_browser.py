"""tracker.js in a real browser: headless Chromium loads a page from another origin that uses the SDK.

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh` installs it). Without it the test is
skipped locally, but fails in CI (`CI` set), where it must run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Final

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mcp_gateway.ingest.enrich import sha256_hex

from .support import DEMO, LiveServer, database_bytes, serve_in_thread, stored_rows

CHROMIUM: Final = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
BROWSER_TIMEOUT: Final = 60.0
EVENT_WAIT: Final = 10.0

PAGE: Final = """<!doctype html>
<html><head><title>Tracker test page</title></head>
<body>
<p id="status">loading</p>
<script src="{gateway}/tracker.js" data-gateway="{gateway_id}"></script>
<script>
  var statusEl = document.getElementById("status");
  try {{
    anacoic.identify("User_123", {{email: "Buyer@Example.com", plan: "pro"}});
    anacoic.track({{
      event_name: "Purchase",
      event_id: "browser-purchase-1",
      user: {{phone: "+1 234 567 890"}},
      custom_data: {{value: 99.99, currency: "USD"}}
    }});
    anacoic.page("Product Detail", {{product_id: "sku_123"}});
    anacoic.flush().then(function () {{
      statusEl.textContent = "sent " + JSON.stringify({{
        same: window.anacoic === window.mcpGateway,
        config: anacoic.config
      }});
    }});
  }} catch (e) {{
    statusEl.textContent = "error " + e;
  }}
</script>
</body></html>
"""


def _require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: run scripts/install_chromium.sh")
        pytest.skip("chromium is not installed (scripts/install_chromium.sh installs it); CI runs this test")
    return CHROMIUM


def _page_app(gateway_url: str) -> Starlette:
    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(gateway=gateway_url, gateway_id=DEMO))

    return Starlette(routes=[Route("/", page)])


def _dump_dom(chromium: str, url: str, profile: Path) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _web_events(db_path: Path) -> list[dict[str, Any]]:
    return stored_rows(
        db_path,
        "SELECT id, name, session_id, anonymous_id, url, email_hash, phone_hash, external_id_hash, ip_hash,"
        " browser, properties FROM events WHERE gateway_id = ? AND source = 'web' ORDER BY seq",
        DEMO,
    )


def test_tracker_sends_page_views_tracks_and_identities_from_a_browser(live_server: LiveServer, tmp_path: Path) -> None:
    chromium = _require_chromium()
    with serve_in_thread(_page_app(live_server.base_url), tmp_path / "page-unused.db") as page_server:
        page_url = page_server.url("/").replace("127.0.0.1", "localhost")  # another origin than the gateway's
        dom = _dump_dom(chromium, page_url, tmp_path / "profile")

    shown = re.search(r'<p id="status">(.*?)</p>', dom, re.S)
    assert shown is not None and shown.group(1).startswith("sent "), dom[-3000:]
    state = json.loads(html.unescape(shown.group(1).removeprefix("sent ")))
    assert state == {"same": True, "config": {"gateway_id": DEMO, "mcp_enabled": False, "emq_mode": "standard"}}

    deadline = time.monotonic() + EVENT_WAIT
    events = _web_events(live_server.db_path)
    while len(events) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
        events = _web_events(live_server.db_path)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["name"], []).append(event)
    assert sorted(by_name) == ["Identify", "PageView", "Purchase"], events
    assert len(by_name["PageView"]) == 2  # the automatic one on load, then page("Product Detail")

    # One visitor, one session, for every event; the page's URL recorded.
    assert len({event["anonymous_id"] for event in events}) == 1
    assert len({event["session_id"] for event in events}) == 1
    assert all(event["anonymous_id"] and event["session_id"] for event in events)
    assert all(event["url"] == page_url for event in events)
    assert all(event["browser"] and "Chrome" in event["browser"] for event in events)
    assert all(event["ip_hash"] for event in events)

    [purchase] = by_name["Purchase"]
    assert purchase["id"] == "browser-purchase-1"
    assert purchase["email_hash"] == sha256_hex("buyer@example.com")
    assert purchase["external_id_hash"] == sha256_hex("user_123")
    assert purchase["phone_hash"] == sha256_hex("1234567890")
    assert json.loads(purchase["properties"])["value"] == 99.99
    # Which page view is which by what each carries, not by arrival: the browser may send both at once.
    auto_page, named_page = sorted(by_name["PageView"], key=lambda e: "product_id" in json.loads(e["properties"]))
    assert auto_page["email_hash"] is None  # sent before identify()
    assert json.loads(named_page["properties"])["page_name"] == "Product Detail"
    assert json.loads(named_page["properties"])["product_id"] == "sku_123"
    assert named_page["external_id_hash"] == sha256_hex("user_123")

    raw = database_bytes(live_server.db_path)
    for secret in (b"Buyer@Example.com", b"buyer@example.com", b"User_123", b"1234567890"):
        assert secret not in raw
