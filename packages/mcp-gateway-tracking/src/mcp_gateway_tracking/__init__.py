"""Tracking for any MCP server built on the official SDK, in the Agnost wire format.

    from mcp_gateway_tracking import track_mcp

    tracker = track_mcp(server, "org-id", endpoint="https://api.agnost.ai")
    ...
    await tracker.aclose()

`track_mcp` adds one `ServerMiddleware` to the server (`middleware.py`) that records a session
per client connection (`sessions.py` says what counts as one) and an event per tool call,
resource read, prompt get and list call, with sensitive values hashed (`privacy.py`). A sink
delivers them in the background without ever failing or slowing the server: `HttpSink` to an
Agnost-compatible backend (`http_sink.py`, with an on-disk spool in `spool.py`) or `LocalSink`
to a function in the process (`sinks.py`). The wire models are in `wire.py`.

This package depends on `mcp` and `httpx` only and imports nothing of the gateway (mcp-gateway), which
depends on it instead.
"""

from .http_sink import DEFAULT_ENDPOINT, HttpSink
from .middleware import IdentifyFn, ToolLister, TrackingMiddleware
from .privacy import DEFAULT_SENSITIVE_KEYS, Redactor
from .sessions import ConnectionFacts, SessionTable
from .sinks import BatchingSink, CaptureItem, CaptureSink, LocalSink, SinkStats
from .spool import Spool
from .tracker import Tracker, TrackingSettings, track_mcp
from .wire import CaptureBatch, CaptureEvent, CaptureSession

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_SENSITIVE_KEYS",
    "BatchingSink",
    "CaptureBatch",
    "CaptureEvent",
    "CaptureItem",
    "CaptureSession",
    "CaptureSink",
    "ConnectionFacts",
    "HttpSink",
    "IdentifyFn",
    "LocalSink",
    "Redactor",
    "SessionTable",
    "SinkStats",
    "Spool",
    "ToolLister",
    "Tracker",
    "TrackingMiddleware",
    "TrackingSettings",
    "track_mcp",
]
