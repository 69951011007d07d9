"""A/B experiments (seed 002's `/experiments`): storage, deterministic assignment, live results with their
statistics, and the routes. Reads are analytics questions (`QUESTIONS`); writes are `ExperimentsApi`'s."""

from .api import QUESTIONS, ExperimentsApi

__all__ = ["QUESTIONS", "ExperimentsApi"]
