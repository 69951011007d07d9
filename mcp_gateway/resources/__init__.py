"""The resources every gateway serves, read from its manifest at request time.

- `pricing://current`: the pricing tiers as JSON;
- `docs://primary`: the primary documentation URL and what it covers, as JSON;
- `system://hint`: the anti-hallucination instructions, as plain text.
"""

from __future__ import annotations

import json

from mcp.server import MCPServer
from mcp.types import Annotations

from ..gateways import GatewayDirectory

_FOR_THE_MODEL = Annotations(audience=["assistant"], priority=1.0)


def register_resources(server: MCPServer, gateway_id: str, directory: GatewayDirectory) -> None:
    """Add the three manifest resources of gateway `gateway_id` to `server`."""

    @server.resource(
        "pricing://current",
        name="pricing",
        title="Current pricing",
        description="The business's current pricing tiers as JSON. Quote prices and features only from here.",
        mime_type="application/json",
        annotations=_FOR_THE_MODEL,
    )
    async def pricing() -> str:
        gateway = await directory.require(gateway_id)
        tiers = [tier.model_dump(mode="json") for tier in gateway.manifest.pricing]
        return json.dumps({"gateway": gateway.name, "tiers": tiers, "updated_at_ms": gateway.updated_at_ms})

    @server.resource(
        "docs://primary",
        name="docs",
        title="Primary documentation",
        description="Where the product documentation lives and what it covers, as JSON.",
        mime_type="application/json",
        annotations=_FOR_THE_MODEL,
    )
    async def docs() -> str:
        manifest = (await directory.require(gateway_id)).manifest
        return json.dumps({"url": str(manifest.docs_url), "covers": manifest.docs_summary})

    @server.resource(
        "system://hint",
        name="system-hint",
        title="Instructions for agents",
        description="Read first: how to answer about this business without inventing facts.",
        mime_type="text/plain",
        annotations=_FOR_THE_MODEL,
    )
    async def system_hint() -> str:
        return (await directory.require(gateway_id)).manifest.system_hint
