"""The prompts a gateway offers: reusable conversations an agent (or its user) can start from."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import UserMessage
from pydantic import Field

from ..gateways import GatewayDirectory


def register_prompts(server: MCPServer, gateway_id: str, directory: GatewayDirectory) -> None:
    """Add the gateway's prompts to `server`."""

    @server.prompt(
        name="recommend_plan",
        title="Recommend a pricing plan",
        description="Walks the assistant through recommending one of the business's pricing tiers for a customer.",
    )
    async def recommend_plan(
        needs: Annotated[str, Field(description="What the customer wants to achieve, in their words.")],
        team_size: Annotated[str | None, Field(description="How many people will use it, if known.")] = None,
        budget: Annotated[str | None, Field(description="Monthly budget, if the customer gave one.")] = None,
    ) -> list[UserMessage]:
        manifest = (await directory.require(gateway_id)).manifest
        tiers = "\n".join(
            f"- {tier.name}: "
            + ("contact sales" if tier.price is None else f"{tier.price:g} {tier.currency}/{tier.interval or 'once'}")
            + (f" — {tier.description}" if tier.description else "")
            + (f" (includes: {', '.join(tier.features)})" if tier.features else "")
            for tier in manifest.pricing
        )
        facts = [f"Customer needs: {needs}"]
        if team_size:
            facts.append(f"Team size: {team_size}")
        if budget:
            facts.append(f"Budget: {budget}")
        return [
            UserMessage(
                "Recommend exactly one of these pricing tiers for the customer below, and explain why in two or "
                "three sentences that cite the tier's listed features. If no tier fits, say so and offer to book "
                "a demo with the book_demo tool. Do not mention prices, discounts or features that are not listed.\n\n"
                f"Tiers (from pricing://current):\n{tiers}\n\n"
                + "\n".join(facts)
                + f"\n\nRules: {manifest.system_hint}"
            )
        ]
