"""Answers about the data: one function per question, and the REST routes that serve them.

`QUESTIONS` lists every analytics route; each module contributes its own.
"""

from typing import Any

from . import agents, anomalies, events, funnel, integrations, leads, live, primitives, query, retention, site, traffic
from .api import AnalyticsApi, Asked, Question
from .primitives import PrimitiveStats, primitive_stats
from .window import TimeWindow, WindowArgs

QUESTIONS: list[Question[Any]] = [
    *primitives.QUESTIONS,
    *events.QUESTIONS,
    *query.QUESTIONS,
    *traffic.QUESTIONS,
    *site.QUESTIONS,
    *leads.QUESTIONS,
    *agents.QUESTIONS,
    *funnel.QUESTIONS,
    *retention.QUESTIONS,
    *anomalies.QUESTIONS,
    *live.QUESTIONS,
    *integrations.QUESTIONS,
]

__all__ = [
    "QUESTIONS",
    "AnalyticsApi",
    "Asked",
    "PrimitiveStats",
    "Question",
    "TimeWindow",
    "WindowArgs",
    "primitive_stats",
]
