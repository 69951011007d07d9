"""pulse.js and form.js in a real browser: headless Chromium loads pages of another origin that use them, and
what they send shows in the reports (leads, sessions, engagement, top pages).

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh` installs it). Without it the tests are skipped
locally, but fail in CI (`CI` set), where they must run.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mcp_gateway.ingest.visits import engagement_score

from .browser import dump_dom, require_chromium
from .support import DEMO, LiveServer, create_key, database_bytes, serve_in_thread, stored_rows

EVENT_WAIT: Final = 10.0
"""Longest the test waits for what the browser sent (a beacon may land after the page is gone) to be stored."""

PULSE_PAGE: Final = """<!doctype html>
<html><head><title>Pulse test page</title></head>
<body>
<p id="status">loading</p>
<form id="pricing" data-pulse-form="pricing-page" data-project="alpha" onsubmit="event.preventDefault()">
  <input type="email" name="email" value="Form.Person@Example.org">
  <input name="first_name" value="Form"> <input name="last_name" value="Person">
  <input name="company" value="Forms Inc">
  <input type="password" name="password" value="hunter2-secret">
  <label><input type="checkbox" name="consent" checked> contact me</label>
</form>
<form id="footer" data-pulse-form="footer" onsubmit="event.preventDefault()">
  <input type="email" name="email" value="no.consent@example.org">
  <label><input type="checkbox" data-pulse-consent> contact me</label>
</form>
<script src="{gateway}/pulse.js" data-gateway="{gateway_id}" data-auto-init="false"></script>
<script>
  var statusEl = document.getElementById("status");
  var answered = null;
  document.getElementById("pricing").addEventListener("pulse:lead", function (e) {{ answered = e.detail; }});
  try {{
    PulseGate.init({{heartbeatSeconds: 1, project: "site"}});
    PulseGate.track("signup_click", {{plan: "pro"}});  // before the session is known: queued
    PulseGate.flush().then(function () {{
      document.body.click();
      document.body.click();
      document.getElementById("footer").requestSubmit();  // its consent box is unticked: not sent
      document.getElementById("pricing").requestSubmit();
      return PulseGate.flush();
    }}).then(function () {{
      setTimeout(function () {{  // a heartbeat or two, then tell the page around this one, which removes it
        var state = {{session: PulseGate.sessionId(), visitor: PulseGate.visitorId(), lead: answered}};
        parent.postMessage(JSON.stringify(state), "*");
      }}, 2500);
    }});
  }} catch (e) {{
    statusEl.textContent = "error " + e;
  }}
</script>
</body></html>
"""

FORM_PAGE: Final = """<!doctype html>
<html><head><title>Form test page</title></head>
<body>
<p id="status">loading</p>
<form id="contact" onsubmit="event.preventDefault()">
  <input type="email" name="email" value="Plain.Form@Example.net">
  <input name="name" value="Plain Form"> <textarea name="message">Call me</textarea>
  <input type="checkbox" name="consent" checked>
</form>
<form id="newsletter" onsubmit="event.preventDefault()">
  <input type="email" name="email" value="no.box@example.net">
</form>
<script src="{gateway}/form.js" data-gateway="{gateway_id}" data-require-consent="true"></script>
<script>
  var statusEl = document.getElementById("status");
  var answered = null;
  document.getElementById("contact").addEventListener("pulse:lead", function (e) {{ answered = e.detail; }});
  document.getElementById("newsletter").requestSubmit();  // no consent given on the page: not sent
  document.getElementById("contact").requestSubmit();
  PulseForm.flush().then(function () {{
    statusEl.textContent = "sent " + JSON.stringify({{lead: answered}});
  }});
</script>
</body></html>
"""

VISIT_PAGE: Final = """<!doctype html>
<html><body>
<p id="status">loading</p>
<iframe id="visit" src="/visit" width="1000" height="1000"></iframe>
<script>
  window.addEventListener("message", function (e) {
    document.getElementById("visit").remove();  // the visited page goes away: its pagehide ends the visit
    document.getElementById("status").textContent = "sent " + e.data;
  });
</script>
</body></html>
"""
"""The visited page (`PULSE_PAGE`) in a frame, so that the test sees it leave (and pulse.js end the visit)."""


@pytest.fixture
def page_server(live_server: LiveServer, tmp_path: Path) -> Iterator[LiveServer]:
    """The test pages, on another origin than the gateway's."""

    async def pulse(_: Request) -> HTMLResponse:
        return HTMLResponse(PULSE_PAGE.format(gateway=live_server.base_url, gateway_id=DEMO))

    async def form(_: Request) -> HTMLResponse:
        return HTMLResponse(FORM_PAGE.format(gateway=live_server.base_url, gateway_id=DEMO))

    async def visit(_: Request) -> HTMLResponse:
        return HTMLResponse(VISIT_PAGE)

    app = Starlette(routes=[Route("/", visit), Route("/visit", pulse), Route("/form", form)])
    with serve_in_thread(app, tmp_path / "page-unused.db") as server:
        yield server


def _shown_state(chromium: str, url: str, profile: Path) -> dict[str, Any]:
    """Load `url` in headless Chromium; the JSON the page finally shows after "sent "."""
    dom = dump_dom(chromium, url, profile, virtual_time_ms=10000)
    shown = re.search(r'<p id="status">(.*?)</p>', dom, re.S)
    assert shown is not None and shown.group(1).startswith("sent "), dom[-3000:]
    state: dict[str, Any] = json.loads(html.unescape(shown.group(1).removeprefix("sent ")))
    return state


def _web_events(db_path: Path, until: str | None = None) -> list[dict[str, Any]]:
    """The gateway's web events; with `until`, waits (bounded) until one of that name is stored."""
    deadline = time.monotonic() + EVENT_WAIT
    while True:
        rows = stored_rows(
            db_path,
            "SELECT id, name, session_id, anonymous_id, path, email_hash, properties FROM events"
            " WHERE gateway_id = ? AND source = 'web' ORDER BY seq",
            DEMO,
        )
        if until is None or any(row["name"] == until for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _get(live_server: LiveServer, path: str, headers: dict[str, str]) -> Any:
    response = httpx.get(live_server.url(path), headers=headers, params={"period": "24h"})
    assert response.status_code == 200, response.text
    return response.json()


async def _read_headers(live_server: LiveServer) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        return {"X-API-Key": await create_key(http, DEMO, "read")}


async def test_pulse_sends_a_visit_with_events_a_lead_and_its_engagement(
    live_server: LiveServer, page_server: LiveServer, tmp_path: Path
) -> None:
    chromium = require_chromium()
    page_url = page_server.url("/").replace("127.0.0.1", "localhost")

    state = _shown_state(chromium, page_url, tmp_path / "profile")

    session_id, visitor_id = state["session"], state["visitor"]
    assert state["lead"]["ok"] is True and state["lead"]["status"] == "created"
    assert state["lead"]["session_id"] == session_id
    events = _web_events(live_server.db_path, until="$session_end")
    names = [event["name"] for event in events]
    assert names[0] == "$session_start", names  # what follows is sent concurrently, so in any order
    assert {"page_view", "signup_click", "$heartbeat", "$lead", "$session_end"} <= set(names), names
    assert {event["session_id"] for event in events} == {session_id}
    assert {event["anonymous_id"] for event in events} == {visitor_id}
    assert events[0]["path"] == "/visit"
    [end] = [event for event in events if event["name"] == "$session_end"]
    ended = json.loads(end["properties"])
    assert (ended["page_views"], ended["clicks"], ended["scroll_depth"]) == (1, 2, 100)
    assert ended["duration_ms"] > 0
    assert ended["engagement_score"] == engagement_score(ended["duration_ms"], 1, 100, 2)
    [lead_event] = [event for event in events if event["name"] == "$lead"]
    lead_properties = json.loads(lead_event["properties"])
    assert (lead_properties["project"], lead_properties["form_source"]) == ("alpha", "pricing-page")

    read = await _read_headers(live_server)
    [lead] = _get(live_server, "/analytics/leads", read)["leads"]  # the footer form had no consent
    assert (lead["name"], lead["company"], lead["session_id"]) == ("Form Person", "Forms Inc", session_id)
    assert (lead["project"], lead["form_source"], lead["source"]) == ("alpha", "pricing-page", "web")
    overview = _get(live_server, "/analytics/overview", read)
    assert (overview["sessions"], overview["unique_visitors"], overview["leads"]) == (1, 1, 1)
    assert overview["avg_engagement"] == ended["engagement_score"]
    assert sum(bucket["sessions"] for bucket in _get(live_server, "/analytics/engagement", read)["buckets"]) == 1
    assert "/visit" in [page["path"] for page in _get(live_server, "/analytics/pages/top", read)["pages"]]
    assert b"hunter2-secret" not in database_bytes(live_server.db_path)


async def test_form_js_turns_a_consented_form_into_a_lead(
    live_server: LiveServer, page_server: LiveServer, tmp_path: Path
) -> None:
    chromium = require_chromium()
    page_url = page_server.url("/form").replace("127.0.0.1", "localhost")

    state = _shown_state(chromium, page_url, tmp_path / "profile")

    assert state["lead"]["ok"] is True and state["lead"]["status"] == "created"
    read = await _read_headers(live_server)
    [lead] = _get(live_server, "/analytics/leads", read)["leads"]  # the newsletter form had no consent
    assert (lead["id"], lead["name"], lead["message"]) == (state["lead"]["lead_id"], "Plain Form", "Call me")
    assert (lead["form_source"], lead["email"]) == ("contact", "p•••@example.net")
    [lead_event] = _web_events(live_server.db_path)
    assert lead_event["name"] == "$lead"
