"""The tools a gateway offers to agents."""

from .book_demo import BookDemoResult, register_book_demo

__all__ = ["BookDemoResult", "register_book_demo"]
