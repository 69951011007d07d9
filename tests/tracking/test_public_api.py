"""The public API of `mcp_gateway.tracking` is chosen on purpose."""

from __future__ import annotations

import mcp_gateway.tracking as tracking


def test_the_public_api_is_pinned() -> None:
    assert tracking.__all__ == [
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
    assert all(hasattr(tracking, name) for name in tracking.__all__)
