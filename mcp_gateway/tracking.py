"""Compatibility: `mcp_gateway.tracking` was the wrapper's home before it became its own distribution.

Import it from `mcp_gateway_tracking` (`pip install mcp-gateway-tracking`), which needs neither the gateway nor
its dependencies; these names stay here so that code written against the old path keeps working.
"""

from mcp_gateway_tracking import (
    DEFAULT_ENDPOINT,
    DEFAULT_SENSITIVE_KEYS,
    BatchingSink,
    CaptureBatch,
    CaptureEvent,
    CaptureItem,
    CaptureSession,
    CaptureSink,
    ConnectionFacts,
    HttpSink,
    IdentifyFn,
    LocalSink,
    Redactor,
    SessionTable,
    SinkStats,
    Spool,
    ToolLister,
    Tracker,
    TrackingMiddleware,
    TrackingSettings,
    track_mcp,
)

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
