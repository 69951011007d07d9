"""`/docs` in headless Chromium over a real socket: Swagger UI renders the operations of `/openapi.json`, and
the browser asks nothing of any host but the gateway (Chromium's own network log, not the page, says so:
an external script or stylesheet would be a request of the page to another host).

Needs `/usr/bin/chromium` (`scripts/install_chromium.sh`); skipped locally without it, failed in CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from mcp_gateway.app import create_app
from mcp_gateway.config import Settings

from .browser import dump_dom, require_chromium
from .support import serve_in_thread

RENDER_BUDGET_MS: Final = 20_000
"""Virtual time for Swagger UI to fetch the document and render it (virtual: it costs no waiting when idle)."""


def page_requests(net_log: Path, site: str) -> list[str]:
    """The URLs Chromium's network log shows requested for a page of `site` (`http://127.0.0.1`): the requests
    whose network isolation key is that site's, which leaves out the browser's own (update checks, accounts)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and event.get("params", {}).get("network_isolation_key", "").startswith(site + " ")
    ]


def test_docs_render_every_operation_with_no_request_beyond_the_gateway(tmp_path: Path) -> None:
    chromium = require_chromium()
    net_log = tmp_path / "netlog.json"
    app = create_app(Settings(db_path=tmp_path / "gateway.db"))
    with serve_in_thread(app, tmp_path / "gateway.db") as server:
        dom = dump_dom(
            chromium,
            server.url("/docs"),
            tmp_path / "profile",
            virtual_time_ms=RENDER_BUDGET_MS,
            flags=(f"--log-net-log={net_log}",),
        )
        gateway = urlsplit(server.base_url).netloc

    assert 'class="swagger-ui"' in dom, dom[-2000:]
    for path in ("/analytics/overview", "/v1/track", "/lead.capture", "/docs"):
        assert f'data-path="{path}"' in dom, path
    urls = page_requests(net_log, "http://127.0.0.1")
    assert any(url.endswith("/docs/static/swagger-ui-bundle.js?v=" + url.rpartition("=")[2]) for url in urls), urls
    assert any(url.endswith("/openapi.json") for url in urls), urls
    assert [url for url in urls if urlsplit(url).netloc != gateway] == []
