"""`book_demo`: an agent asks for a product demo on a person's behalf, and the business gets a lead."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Final, Literal

from email_validator import EmailNotValidError, validate_email
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from ..store import LeadRecord, Store

DEDUPE_WINDOW_MS: Final = 10 * 60 * 1000
"""A second booking from the same email within this window returns the first lead."""

MAX_NAME: Final = 200
MAX_COMPANY: Final = 200
MAX_MESSAGE: Final = 5000
MAX_EMAIL: Final = 254

DESCRIPTION: Final = (
    "Request a product demo for a person, which creates a sales lead the team will follow up by email. "
    "Call it only when the user asks for a demo or a sales contact, with their real name and email "
    "(ask for them if you do not have them; never invent or guess them). Booking twice with the same "
    "email within 10 minutes returns the existing request instead of creating a duplicate."
)


class BookDemoResult(BaseModel):
    """What `book_demo` answers."""

    lead_id: str = Field(description="Identifier of the demo request; quote it if the user asks.")
    status: Literal["booked", "already_booked"]
    message: str


def _clean(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise ToolError(f"{field} is too long: at most {limit} characters")
    return value or None


def _normalise_email(email: str) -> str:
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ToolError(f"email is not a valid address: {exc}") from None
    return checked.normalized.lower()


def register_book_demo(server: MCPServer, gateway_id: str, store: Store, *, source: str = "mcp") -> None:
    """Add `book_demo` for gateway `gateway_id` to `server`; leads go to `store`."""

    @server.tool(
        name="book_demo",
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
        clean_name = _clean(name, "name", MAX_NAME)
        if not clean_name:
            raise ToolError("name is required")
        lead = LeadRecord(
            id=str(uuid.uuid4()),
            gateway_id=gateway_id,
            name=clean_name,
            email=_normalise_email(email),
            company=_clean(company, "company", MAX_COMPANY),
            message=_clean(message, "message", MAX_MESSAGE),
            source=source,
            created_at_ms=int(time.time() * 1000),
        )
        stored, created = await store.book_lead(lead, dedupe_window_ms=DEDUPE_WINDOW_MS)
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
