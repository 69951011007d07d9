"""Leads: a person asking the business to get in touch, from an agent (`book_demo`) or a web form
(`/lead.capture`). One way to check and store them, whichever door they came through.

The email is checked for RFC 5321/5322 syntax (`email-validator`, no DNS look-up) and stored
normalised and lower-cased; the same email on the same gateway within `DEDUPE_WINDOW_MS` answers
the first lead instead of storing a second one (check and insert are one store transaction).
Leads are business data: stored as given, readable with the admin token.
"""

from __future__ import annotations

import time
from typing import Final

from email_validator import EmailNotValidError, validate_email
from mcp_gateway_tracking.ids import random_uuid

from .errors import InvalidInputError
from .store import LeadRecord, Store

DEDUPE_WINDOW_MS: Final = 10 * 60 * 1000
"""A second lead from the same email within this window returns the first one."""

MAX_NAME: Final = 200
MAX_COMPANY: Final = 200
MAX_MESSAGE: Final = 5000
MAX_EMAIL: Final = 254


def normalise_email(email: str) -> str:
    """The address, normalised and lower-cased; `InvalidInputError(field="email")` if it is not one."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInputError(f"email is not a valid address: {exc}", field="email") from None
    return checked.normalized.lower()


def clean(value: str | None, field: str, limit: int) -> str | None:
    """Trimmed text, None when empty; `InvalidInputError` naming `field` past `limit` characters."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidInputError(f"{field} is too long: at most {limit} characters", field=field)
    return value or None


async def book_lead(
    store: Store,
    gateway_id: str,
    *,
    name: str | None,
    email: str,
    company: str | None = None,
    message: str | None = None,
    source: str,
) -> tuple[LeadRecord, bool]:
    """Check and store a lead; the stored lead and True, or the earlier one and False."""
    lead = LeadRecord(
        id=random_uuid(),
        gateway_id=gateway_id,
        name=clean(name, "name", MAX_NAME) or "",
        email=normalise_email(email),
        company=clean(company, "company", MAX_COMPANY),
        message=clean(message, "message", MAX_MESSAGE),
        source=source,
        created_at_ms=int(time.time() * 1000),
    )
    return await store.book_lead(lead, dedupe_window_ms=DEDUPE_WINDOW_MS)
