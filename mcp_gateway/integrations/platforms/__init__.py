"""The platform adapters, by kind."""

from __future__ import annotations

from collections.abc import Mapping

from mcp_gateway.integrations.platforms.base import (
    ForwardedEvent,
    ForwardedUser,
    Outcome,
    OutgoingRequest,
    Platform,
    Verdict,
)

PLATFORMS: Mapping[str, Platform] = {}

__all__ = ["PLATFORMS", "ForwardedEvent", "ForwardedUser", "Outcome", "OutgoingRequest", "Platform", "Verdict"]
