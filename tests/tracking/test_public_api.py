"""The public API of `mcp_gateway_tracking` is chosen on purpose; `mcp_gateway.tracking` still offers it."""

from __future__ import annotations

import mcp_gateway_tracking as tracking

import mcp_gateway.tracking as compat


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


def test_the_old_import_path_offers_the_same_objects() -> None:
    assert compat.__all__ == tracking.__all__
    assert all(getattr(compat, name) is getattr(tracking, name) for name in tracking.__all__)
