"""`GET /analytics/integrations`: how the gateway's integrations deliver (read key; never their config)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..integrations.status import IntegrationSummaries, summaries
from .api import Asked, Question


class Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


async def integrations(asked: Asked, _: Args) -> IntegrationSummaries:
    return await summaries(asked.store, asked.gateway_id)


QUESTIONS: list[Question[Any]] = [
    Question(
        "/analytics/integrations",
        "The gateway's integrations and their deliveries: sent, pending, failed, dead, last error, p95 latency",
        Args,
        integrations,
        IntegrationSummaries,
    ),
]
