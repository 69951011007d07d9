"""A two-variant A/B experiment end to end in headless Chromium: the page (another origin) loads tracker.js with
the project token, `getVariant` assigns the visitor (the server's hash gives the same variant), sends the exposure
once, the goal event carries the variant, and `GET /experiments/{id}` counts it under that variant.

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh`): skipped locally without it, a failure in CI.
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

from mcp_gateway.experiments.assignment import assign

from .browser import dump_dom, require_chromium
from .support import ADMIN_HEADERS, DEMO, LiveServer, serve_in_thread

RESULT_WAIT: Final = 10.0
PAGE_PATH: Final = "/signup"
PAGE: Final = """<!doctype html>
<html><head><title>Signup</title></head>
<body>
<p id="status">loading</p>
<script src="{gateway}/tracker.js" data-gateway="{gateway_id}" data-token="{token}" data-auto-page="false"></script>
<script>
  var statusEl = document.getElementById("status");
  Promise.all([
    anacoic.getVariant("signup-cta"),
    anacoic.getVariant("signup-cta"),
    anacoic.getVariant("nope"),
    anacoic.getVariant("hero"),
    anacoic.getVariant("pricing")
  ])
    .then(function (variants) {{
      anacoic.track({{event_name: "signup_complete"}});
      return anacoic.flush().then(function () {{
        statusEl.textContent = "sent " + JSON.stringify({{
          variants: variants,
          visitor: localStorage.getItem("mcpg_anonymous_id")
        }});
      }});
    }})
    .catch(function (e) {{ statusEl.textContent = "error " + e; }});
</script>
</body></html>
"""


def _page_app(gateway_url: str, token: str) -> Starlette:
    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(gateway=gateway_url, gateway_id=DEMO, token=token))

    return Starlette(routes=[Route(PAGE_PATH, page)])


def _key(http: httpx.Client, kind: str) -> str:
    created = http.post(f"/v1/gateways/{DEMO}/keys", json={"kind": kind}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def _visit(page_server: LiveServer, tmp_path: Path) -> Any:
    """Load the page in Chromium (one profile and origin: the same visitor every time); what its script reported."""
    page_url = page_server.url(PAGE_PATH).replace("127.0.0.1", "localhost")
    dom = dump_dom(require_chromium(), page_url, tmp_path / "profile", virtual_time_ms=5000)
    shown = re.search(r'<p id="status">(.*?)</p>', dom, re.S)
    assert shown is not None and shown.group(1).startswith("sent "), dom[-3000:]
    return json.loads(html.unescape(shown.group(1).removeprefix("sent ")))


def _results_once(http: httpx.Client, experiment_id: str, read_key: str, conversions: int) -> dict[str, Any]:
    """The experiment's answer once it counts `conversions` goal events (a bounded wait for the browser's sends)."""
    deadline = time.monotonic() + RESULT_WAIT
    while True:
        answer: dict[str, Any] = http.get(f"/experiments/{experiment_id}", headers={"X-API-Key": read_key}).json()
        counted = sum(variant["conversion_events"] for variant in answer["results"]["variants"])
        if counted >= conversions or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_browser_is_assigned_exposed_once_and_converts_under_its_variant(
    live_server: LiveServer, tmp_path: Path
) -> None:
    require_chromium()
    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        token, read_key = _key(http, "pk"), _key(http, "read")
        created = http.post(
            "/experiments",
            json={
                "project": DEMO,
                "name": "signup-cta",
                "variants": ["control", "new_cta"],
                "goal_event": "signup_complete",
            },
            headers=ADMIN_HEADERS,
        )
        assert created.status_code == 201, created.text
        experiment = created.json()
        others: dict[
            str, tuple[list[str], dict[str, float]]
        ] = {  # more draws of the hash, with uneven splits: the browser's and the server's must agree on each
            "hero": (["a", "b", "c"], {"a": 1, "b": 2, "c": 3}),
            "pricing": (["p10", "p20", "p30", "p40"], {"p10": 0.4, "p20": 0.3, "p30": 0.2, "p40": 0.1}),
        }
        other_ids = {}
        for name, (variants, split) in others.items():
            made = http.post(
                "/experiments",
                json={"project": DEMO, "name": name, "variants": variants, "goal_event": "x", "traffic_split": split},
                headers=ADMIN_HEADERS,
            )
            assert made.status_code == 201, made.text
            other_ids[name] = made.json()["id"]

        pages = serve_in_thread(_page_app(live_server.base_url, token), tmp_path / "page-unused.db")
        with pages as page_server:
            first = _visit(page_server, tmp_path)
            second = _visit(page_server, tmp_path)  # the same visitor comes back and converts again
        variant = assign(experiment["id"], first["visitor"], ["control", "new_cta"], [1.0, 1.0])
        expected = [
            assign(other_ids[name], first["visitor"], variants, [float(split[v]) for v in variants])
            for name, (variants, split) in others.items()
        ]
        # The server's hash, sticky, null for an unknown experiment, and the same hash for uneven splits.
        assert first["variants"] == [variant, variant, None, *expected]
        assert second == first
        answer = _results_once(http, experiment["id"], read_key, 2)

    by_variant = {row["variant"]: row for row in answer["results"]["variants"]}
    other = "new_cta" if variant == "control" else "control"
    assert (by_variant[variant]["exposures"], by_variant[variant]["unique_users"]) == (1, 1)  # exposed once
    assert (by_variant[variant]["conversions"], by_variant[variant]["conversion_events"]) == (1, 2)
    assert by_variant[variant]["conversion_rate"] == 1.0
    assert (by_variant[other]["exposures"], by_variant[other]["conversions"]) == (0, 0)
    assert answer["results"]["total_users"] == 1
