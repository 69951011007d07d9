"""The tools a gateway offers to agents."""

from .book_demo import BookDemoResult, register_book_demo
from .track_event import TrackEventResult, register_track_event

__all__ = ["BookDemoResult", "TrackEventResult", "register_book_demo", "register_track_event"]
