"""The platform adapters, by kind: Meta CAPI, GA4 Measurement Protocol, TikTok Events API, a signed webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from mcp_gateway.integrations.platforms.base import (
    ForwardedEvent,
    ForwardedUser,
    Outcome,
    OutgoingRequest,
    Platform,
    Verdict,
)
from mcp_gateway.integrations.platforms.ga4 import GA4
from mcp_gateway.integrations.platforms.meta import META
from mcp_gateway.integrations.platforms.tiktok import TIKTOK
from mcp_gateway.integrations.platforms.webhook import WEBHOOK, verify_webhook

PLATFORMS: Final[Mapping[str, Platform]] = {platform.kind: platform for platform in (META, GA4, TIKTOK, WEBHOOK)}

__all__ = [
    "PLATFORMS",
    "ForwardedEvent",
    "ForwardedUser",
    "Outcome",
    "OutgoingRequest",
    "Platform",
    "Verdict",
    "verify_webhook",
]
