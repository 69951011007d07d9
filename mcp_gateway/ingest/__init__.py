"""Getting data in: the Agnost-compatible capture API (and, later, web and server events)."""

from .agnost import AgnostApi
from .capture import CaptureOutcome, Ingestor
from .web import WebEvent, WebIngestor

__all__ = ["AgnostApi", "CaptureOutcome", "Ingestor", "WebEvent", "WebIngestor"]
