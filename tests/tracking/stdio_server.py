"""A tracked demo server over stdio, run as a subprocess by the tests.

    python -m tests.tracking.stdio_server ENDPOINT SPOOL_DIR [TIMEOUT]

It tracks to ENDPOINT with batches of one, so every item leaves at once (each request to the backend
may take TIMEOUT seconds, the library's default without it), and flushes on exit.
Logs go to stderr; stdout carries JSON-RPC only.
"""

from __future__ import annotations

import logging
import sys

import anyio
from mcp_gateway_tracking import track_mcp
from mcp_gateway_tracking.http_sink import DEFAULT_TIMEOUT

from .demo_server import build_demo_server

ORG_ID = "org-stdio"


async def main(endpoint: str, spool_dir: str, timeout: float) -> None:
    server = build_demo_server()
    tracker = track_mcp(
        server,
        ORG_ID,
        endpoint=endpoint,
        spool_dir=spool_dir,
        batch_size=1,
        flush_interval=0.05,
        retry_delay=0.01,
        timeout=timeout,
        identify=lambda request, env: {"userId": env.get("TRACKING_TEST_USER", "anonymous")},
    )
    try:
        await server.run_stdio_async()
    finally:
        await tracker.aclose(timeout=5)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else DEFAULT_TIMEOUT)
