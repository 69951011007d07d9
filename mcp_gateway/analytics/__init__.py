"""Answers about the data: one function per question, and the REST routes that serve them."""

from .primitives import PrimitiveStats, primitive_stats
from .window import TimeWindow, parse_window

__all__ = ["PrimitiveStats", "TimeWindow", "parse_window", "primitive_stats"]
