"""`book_demo`: an agent asks for a product demo on a person's behalf, and the business gets a lead."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from ..errors import InvalidInputError
from ..leads import MAX_COMPANY, MAX_EMAIL, MAX_MESSAGE, MAX_NAME, book_lead
from ..store import Store
from ..vocabulary import BOOK_DEMO

DESCRIPTION: Final = (
    "Request a product demo for a person, which creates a sales lead the team will follow up by email. "
    "Call it only when the user asks for a demo or a sales contact, with their real name and email "
    "(ask for them if you do not have them; never invent or guess them). Booking twice with the same "
    "email within 10 minutes returns the existing request instead of creating a duplicate."
)


TOOL_NAME: Final = BOOK_DEMO

PERSONAL_ARGUMENTS: Final = frozenset({"name", "email", "company", "message"})
"""The lead's own fields: stored as given in the leads table, hashed wherever `book_demo` calls are tracked."""


class BookDemoResult(BaseModel):
    """What `book_demo` answers."""

    lead_id: str = Field(description="Identifier of the demo request; quote it if the user asks.")
    status: Literal["booked", "already_booked"]
    message: str


def register_book_demo(server: MCPServer, gateway_id: str, store: Store, *, source: str = "mcp") -> None:
    """Add `book_demo` for gateway `gateway_id` to `server`; leads go to `store`."""

    @server.tool(
        name=TOOL_NAME,
        title="Book a product demo",
        description=DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def book_demo(
        name: Annotated[str, Field(description="Full name of the person who wants the demo.", max_length=MAX_NAME)],
        email: Annotated[
            str, Field(description="Their work email address; the team replies here.", max_length=MAX_EMAIL)
        ],
        company: Annotated[
            str | None, Field(description="Company or organisation, if known.", max_length=MAX_COMPANY)
        ] = None,
        message: Annotated[
            str | None, Field(description="What they want to see or ask, in their words.", max_length=MAX_MESSAGE)
        ] = None,
    ) -> BookDemoResult:
        if not (name or "").strip():
            raise ToolError("name is required")
        try:
            stored, created = await book_lead(
                store, gateway_id, name=name, email=email, company=company, message=message, source=source
            )
        except InvalidInputError as exc:
            raise ToolError(str(exc)) from None
        if created:
            return BookDemoResult(
                lead_id=stored.id,
                status="booked",
                message=f"Demo requested for {stored.name} <{stored.email}>. The team will reply by email.",
            )
        return BookDemoResult(
            lead_id=stored.id,
            status="already_booked",
            message=f"A demo was already requested for {stored.email} a few minutes ago; no duplicate was created.",
        )
