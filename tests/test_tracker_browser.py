"""tracker.js in a real browser: headless Chromium loads a page from another origin that uses the SDK, and the
reports show what it sent (Top pages, `/pages`, the funnel of the README, the dashboard).

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh` installs it). Without it the test is
skipped locally, but fails in CI (`CI` set), where it must run.
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any, Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mcp_gateway.accounts.access import READ_KEY_COOKIE
from mcp_gateway.ingest.enrich import sha256_hex

from .browser import dump_dom, require_chromium
from .support import ADMIN_HEADERS, DEMO, LiveServer, database_bytes, serve_in_thread, stored_rows

EVENT_WAIT: Final = 10.0

PAGE_PATH: Final = "/products/widget"
PAGE_TITLE: Final = "Tracker test page"
PAGE: Final = """<!doctype html>
<html><head><title>Tracker test page</title></head>
<body>
<p id="status">loading</p>
<script src="{gateway}/tracker.js" data-gateway="{gateway_id}"{attributes}></script>
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
        config: anacoic.config,
        mcp: anacoic.mcp || null,
        link: (document.querySelector('link[rel="mcp"]') || {{}}).href || null,
        cookies: document.cookie
      }});
    }});
  }} catch (e) {{
    statusEl.textContent = "error " + e;
  }}
</script>
</body></html>
"""


def _page_app(gateway_url: str, attributes: str = "") -> Starlette:
    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(gateway=gateway_url, gateway_id=DEMO, attributes=attributes))

    return Starlette(routes=[Route(PAGE_PATH, page)])


def _load_page(live_server: LiveServer, tmp_path: Path, query: str = "", attributes: str = "") -> tuple[str, Any]:
    """Load the test page (another origin than the gateway's) in Chromium: its URL and what its script reported."""
    chromium = require_chromium()
    with serve_in_thread(_page_app(live_server.base_url, attributes), tmp_path / "page-unused.db") as page_server:
        page_url = page_server.url(PAGE_PATH + query).replace("127.0.0.1", "localhost")
        dom = dump_dom(chromium, page_url, tmp_path / "profile", virtual_time_ms=5000)
    shown = re.search(r'<p id="status">(.*?)</p>', dom, re.S)
    assert shown is not None and shown.group(1).startswith("sent "), dom[-3000:]
    return page_url, json.loads(html.unescape(shown.group(1).removeprefix("sent ")))


def _wait_for_events(db_path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + EVENT_WAIT
    events = _web_events(db_path)
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        events = _web_events(db_path)
    return events


def _read_key(http: httpx.Client) -> str:
    created = http.post(f"/v1/gateways/{DEMO}/keys", json={"kind": "read"}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def _web_events(db_path: Path) -> list[dict[str, Any]]:
    return stored_rows(
        db_path,
        "SELECT id, name, session_id, anonymous_id, url, path, referrer, email_hash, phone_hash, external_id_hash,"
        " ip_hash, emq, browser, properties FROM events WHERE gateway_id = ? AND source = 'web' ORDER BY seq",
        DEMO,
    )


def test_tracker_sends_page_views_tracks_and_identities_from_a_browser(live_server: LiveServer, tmp_path: Path) -> None:
    page_url, state = _load_page(live_server, tmp_path, query="?fbclid=IwAR0std")
    assert state["same"] is True
    assert state["config"] == {"gateway_id": DEMO, "mcp_enabled": False, "emq_mode": "standard"}
    assert (state["mcp"], state["link"]) == (None, None)  # no AI agent features unless data-mcp="true"
    assert "_fbp" not in state["cookies"] and "_fbc" not in state["cookies"]  # none set unless data-emq="optimize"

    events = _wait_for_events(live_server.db_path, 4)
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
    assert all(event["path"] == PAGE_PATH for event in events)  # first-class, not only in the properties
    assert all(json.loads(event["properties"])["title"] == PAGE_TITLE for event in events)
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
    assert auto_page["emq"] == 2.3  # fbc from the fbclid 1.5, IP 0.5, user agent 0.3
    assert json.loads(auto_page["properties"])["page"] == PAGE_TITLE  # page() without a name: the title
    assert json.loads(named_page["properties"])["page"] == "Product Detail"
    assert json.loads(named_page["properties"])["product_id"] == "sku_123"
    assert named_page["external_id_hash"] == sha256_hex("user_123")

    raw = database_bytes(live_server.db_path)
    for secret in (b"Buyer@Example.com", b"buyer@example.com", b"User_123", b"1234567890"):
        assert secret not in raw


def test_tracker_page_views_fill_top_pages_pages_the_readme_funnel_and_the_dashboard(
    live_server: LiveServer, tmp_path: Path
) -> None:
    _load_page(live_server, tmp_path)
    assert len(_wait_for_events(live_server.db_path, 4)) == 4

    with httpx.Client(base_url=live_server.base_url) as http:
        key = _read_key(http)
        auth = {"Authorization": f"Bearer {key}"}
        top = http.get("/analytics/pages/top", params={"period": "24h"}, headers=auth)
        assert top.status_code == 200, top.text
        assert top.json()["pages"] == [{"path": PAGE_PATH, "views": 2, "unique_visitors": 1}]

        pages = http.get("/pages", params={"period": "24h"}, headers=auth).json()["pages"]
        assert [(p["path"], p["views"], p["entries"], p["exits"]) for p in pages] == [(PAGE_PATH, 2, 1, 1)]

        # The README's funnel example, against tracker.js traffic: the page view on load, then the purchase.
        body = {"steps": ["PageView", "Purchase"], "conversion_window_hours": 24, "period": "24h"}
        funnel = http.post("/funnel", json=body, headers=auth)
        assert funnel.status_code == 200, funnel.text
        assert [step["users"] for step in funnel.json()["steps"]] == [1, 1]

        dashboard = http.get(
            "/dashboard", params={"period": "24h", "full": "1"}, headers={"Cookie": f"{READ_KEY_COOKIE}={key}"}
        )
        assert dashboard.status_code == 200
        top_pages = dashboard.text.split("Top pages", 1)[1]
        assert f'<span class="name mono">{PAGE_PATH}</span>' in top_pages.split("</table>", 1)[0]


def test_tracker_with_emq_optimize_and_mcp_captures_meta_ids_and_advertises_the_gateway(
    live_server: LiveServer, tmp_path: Path
) -> None:
    _, state = _load_page(
        live_server, tmp_path, query="?fbclid=IwAR0abc", attributes=' data-emq="optimize" data-mcp="true"'
    )
    assert state["config"] == {"gateway_id": DEMO, "mcp_enabled": True, "emq_mode": "optimize"}
    mcp_url = f"{live_server.base_url}/mcp?gid={DEMO}"
    assert state["mcp"] == {"url": mcp_url, "sse_url": f"{live_server.base_url}/v1/mcp/sse?gid={DEMO}"}
    assert state["link"] == mcp_url  # <link rel="mcp"> in the page's head, for agents reading it
    cookies = dict(part.split("=", 1) for part in state["cookies"].split("; "))
    assert re.fullmatch(r"fb\.1\.\d{13}\.\d{10}", cookies["_fbp"]), cookies
    assert re.fullmatch(r"fb\.1\.\d{13}\.IwAR0abc", cookies["_fbc"]), cookies

    events = _wait_for_events(live_server.db_path, 4)
    auto_page = min((event for event in events if event["name"] == "PageView"), key=lambda event: event["emq"])
    # fbp 1.5 + fbc 1.5 + IP 0.5 + user agent 0.3: the page view on load, before identify()
    assert auto_page["emq"] == 3.8
    [purchase] = [event for event in events if event["name"] == "Purchase"]
    assert purchase["emq"] == 9.3  # and the email, phone and external id: every point of seed 000's table
    # Headless Chromium is an automated browser: with data-mcp its events say which agent saw the page.
    assert all(json.loads(event["properties"])["agent"] for event in events)
