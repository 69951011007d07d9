"""Seed 001's lead questions: the leads agents and web forms left, filtered and paged, and what led to each.

    GET /analytics/leads            filters source, project, form_source, q, since/until; limit/offset paging
    GET /analytics/leads/projects   distinct projects, for a filter dropdown
    GET /analytics/leads/sources    distinct lead sources (mcp, web) and form sources
    GET /analytics/leads/{lead_id}  one lead and its activity (404 if not this gateway's)

A lead's `crm_lead_id` is the id the business's CRM reported for it (`POST /lead.capture/crm-callback`).
`/lead.capture` stores a web lead and a `$lead` event with id `lead_<lead id>` whose properties hold
the form's `project` and `form_source`; the list joins that event on its unique (gateway_id, id).
A web lead's activity is the visitor's session it was captured in (that event's `session_id`), all
events in order. An MCP lead's activity is the agent session that booked it: the earliest
`book_demo` call near the lead's creation whose recorded result names the lead (`events_by_name`),
then that session and its calls (`agents.agent_session`).

Contact details are business data readable in full only with the admin token (DESIGN.md): the
admin API's `GET /v1/gateways/{id}/leads` has them. A read key sees each email masked
(`j•••@example.com`), enough to recognise a lead without handing the address to every dashboard,
and so are the email addresses and phone numbers inside a lead's message (`•••67` for a phone).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from mcp_gateway_tracking.pii import phone_digits, replace_personal
from pydantic import BeforeValidator, Field

from ..errors import InvalidInputError, NotFoundError
from ..vocabulary import BOOK_DEMO, LEAD, LEAD_EVENT_ID_PREFIX
from .agents import AgentSessionDetail, TextFilter, agent_session, blank_is_none
from .api import Asked, Question
from .sql import HOUR_MS, Where, property_text
from .window import Args, Instant

MAX_ACTIVITY_EVENTS: Final = 500
"""Most events a web lead's activity lists; `truncated` says when there were more."""
BOOKING_SKEW_MS: Final = HOUR_MS
"""How far a `book_demo` call's timestamp may be from its lead's creation (clocks of external SDKs)."""
LEAD_COLUMNS: Final = "l.id, l.name, l.email, l.company, l.message, l.source, l.created_at_ms"
LEAD_EVENT_JOIN: Final = (
    "LEFT JOIN events e ON e.gateway_id = l.gateway_id"
    f" AND e.id = ('{LEAD_EVENT_ID_PREFIX}' || l.id) AND e.name = '{LEAD}'"
)
"""The `$lead` event `/lead.capture` stored with the lead (none for MCP leads)."""


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards escaped (with ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    name: str
    email: str
    """Masked for read keys (`mask_email`)."""
    company: str | None
    message: str | None
    source: str
    """"mcp" (an agent's book_demo) or "web" (/lead.capture)."""
    created_at: int
    project: str | None
    form_source: str | None
    """Where the web form sits ("pricing-page"), as the form sent it."""
    session_id: str | None
    """The web session the form was sent in."""
    visitor_id: str | None
    crm_lead_id: str | None
    """The lead's id in the CRM, once the CRM reported it (`POST /lead.capture/crm-callback`)."""


async def _leads(asked: Asked, where: Where, tail: str = "", tail_params: tuple[object, ...] = ()) -> list[Lead]:
    project, project_key = property_text(asked.store.dialect, "project")
    form_source, form_key = property_text(asked.store.dialect, "form_source")
    rows = await asked.store.fetch(
        f"SELECT {LEAD_COLUMNS}, {project}, {form_source}, e.session_id, e.anonymous_id, l.crm_lead_id"
        f" FROM leads l {LEAD_EVENT_JOIN} WHERE {where.sql()}{tail}",
        [project_key, form_key, *where.params, *tail_params],
    )
    leads = [Lead(*row) for row in rows]
    return [
        dataclasses.replace(lead, email=mask_email(lead.email), message=mask_message(lead.message)) for lead in leads
    ]


def mask_email(email: str) -> str:
    """`jane@example.com` -> `j•••@example.com`: the first letter and the domain."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}•••{at}{domain}"


def mask_phone(phone: str) -> str:
    """`+44 20 7946 0958` -> `•••58`: the last two digits."""
    return "•••" + phone_digits(phone)[-2:]


def mask_message(message: str | None) -> str | None:
    """A lead's message with the emails and phones in it masked (`mask_email`, `mask_phone`)."""
    return None if message is None else replace_personal(message, mask_email, mask_phone)


# -- list ---------------------------------------------------------------------------------------------


class LeadsArgs(Args):
    source: Annotated[Literal["mcp", "web"] | None, BeforeValidator(blank_is_none)] = Field(
        None, description="Only leads from agents (mcp) or web forms (web)."
    )
    project: TextFilter = Field(None, max_length=200, description="Only leads of this project.")
    form_source: TextFilter = Field(None, max_length=200, description="Only leads from this form.")
    q: TextFilter = Field(None, max_length=200, description="Text in the name, company or email (any case).")
    since: Instant | None = Field(None, description="Created at or after.")
    until: Instant | None = Field(None, description="Created before.")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


@dataclass(frozen=True, slots=True)
class LeadPage:
    gateway_id: str
    total: int
    """Leads matching the filters, all pages."""
    limit: int
    offset: int
    leads: list[Lead]
    """Newest first."""


async def list_leads(asked: Asked, args: LeadsArgs) -> LeadPage:
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise InvalidInputError("since must be before until", field="since")
    where = Where().add("l.gateway_id = ?", asked.gateway_id)
    if args.since is not None:
        where.add("l.created_at_ms >= ?", args.since)
    if args.until is not None:
        where.add("l.created_at_ms < ?", args.until)
    if args.source is not None:
        where.add("l.source = ?", args.source)
    for key, value in (("project", args.project), ("form_source", args.form_source)):
        if value is not None:
            expr, param = property_text(asked.store.dialect, key)
            where.add(f"{expr} = ?", param, value)
    if args.q is not None:
        pattern = _like(args.q.lower())
        columns = ("l.name", "l.email", "COALESCE(l.company, '')")
        where.add(
            "(" + " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '\\'" for column in columns) + ")",
            *(pattern for _ in columns),
        )
    [(total,)] = await asked.store.fetch(
        f"SELECT COUNT(*) FROM leads l {LEAD_EVENT_JOIN} WHERE {where.sql()}", where.params
    )
    leads = await _leads(
        asked, where, " ORDER BY l.created_at_ms DESC, l.id DESC LIMIT ? OFFSET ?", (args.limit, args.offset)
    )
    return LeadPage(asked.gateway_id, total, args.limit, args.offset, leads)


# -- filter values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterValue:
    value: str
    leads: int


@dataclass(frozen=True, slots=True)
class LeadProjects:
    gateway_id: str
    projects: list[FilterValue]


@dataclass(frozen=True, slots=True)
class LeadSources:
    gateway_id: str
    sources: list[FilterValue]
    """"mcp", "web"."""
    form_sources: list[FilterValue]


async def _property_values(asked: Asked, key: str) -> list[FilterValue]:
    expr, param = property_text(asked.store.dialect, key)
    rows = await asked.store.fetch(
        f"SELECT {expr}, COUNT(*) FROM leads l {LEAD_EVENT_JOIN}"
        f" WHERE l.gateway_id = ? AND {expr} IS NOT NULL GROUP BY 1 ORDER BY 1",
        [param, asked.gateway_id, param],
    )
    return [FilterValue(value, leads) for value, leads in rows]


async def lead_projects(asked: Asked, args: Args) -> LeadProjects:
    return LeadProjects(asked.gateway_id, await _property_values(asked, "project"))


async def lead_sources(asked: Asked, args: Args) -> LeadSources:
    rows = await asked.store.fetch(
        "SELECT source, COUNT(*) FROM leads WHERE gateway_id = ? GROUP BY source ORDER BY source", [asked.gateway_id]
    )
    sources = [FilterValue(value, leads) for value, leads in rows]
    return LeadSources(asked.gateway_id, sources, await _property_values(asked, "form_source"))


# -- detail -------------------------------------------------------------------------------------------


class LeadArgs(Args):
    lead_id: str = Field(min_length=1, max_length=128)


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    id: str
    name: str
    ts: int
    path: str | None
    url: str | None
    referrer: str | None
    properties: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class WebActivity:
    session_id: str
    visitor_id: str | None
    events: list[ActivityEvent]
    """The session's events in time order, the lead's `$lead` event among them."""
    truncated: bool


@dataclass(frozen=True, slots=True)
class LeadDetail:
    lead: Lead
    web_activity: WebActivity | None
    """For a web lead: the session the form was sent in."""
    agent_session: AgentSessionDetail | None
    """For an MCP lead: the agent session whose book_demo call created it (None if it was not tracked)."""


async def lead_detail(asked: Asked, args: LeadArgs) -> LeadDetail:
    found = await _leads(asked, Where().add("l.gateway_id = ?", asked.gateway_id).add("l.id = ?", args.lead_id))
    if not found:
        raise NotFoundError("No such lead")
    [lead] = found
    web = await _web_activity(asked, lead.session_id, lead.visitor_id) if lead.session_id else None
    agent = await _booking_session(asked, lead) if lead.source == "mcp" else None
    return LeadDetail(lead, web, agent)


async def _web_activity(asked: Asked, session_id: str, visitor_id: str | None) -> WebActivity:
    rows = await asked.store.fetch(
        "SELECT id, name, ts_ms, path, url, referrer, properties FROM events"
        " WHERE gateway_id = ? AND session_id = ? AND source <> 'mcp' ORDER BY ts_ms, seq LIMIT ?",
        [asked.gateway_id, session_id, MAX_ACTIVITY_EVENTS + 1],
    )
    events = [
        ActivityEvent(eid, name, ts, path, url, referrer, _properties(properties))
        for eid, name, ts, path, url, referrer, properties in rows[:MAX_ACTIVITY_EVENTS]
    ]
    return WebActivity(session_id, visitor_id, events, len(rows) > MAX_ACTIVITY_EVENTS)


async def _booking_session(asked: Asked, lead: Lead) -> AgentSessionDetail | None:
    rows = await asked.store.fetch(
        "SELECT session_id FROM events WHERE gateway_id = ? AND source = 'mcp' AND primitive_type = 'tool'"
        " AND name = ? AND ts_ms >= ? AND ts_ms <= ? AND result LIKE ? ESCAPE '\\'"
        " ORDER BY ts_ms, seq LIMIT 1",
        [
            asked.gateway_id,
            BOOK_DEMO,
            lead.created_at - BOOKING_SKEW_MS,
            lead.created_at + BOOKING_SKEW_MS,
            _like(lead.id),
        ],
    )
    if not rows or rows[0][0] is None:
        return None
    return await agent_session(asked, rows[0][0])


def _properties(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


QUESTIONS: list[Question[Any]] = [
    Question(
        "/analytics/leads",
        "Leads, newest first: filter by source, project, form source, text and time; paged with limit/offset",
        LeadsArgs,
        list_leads,
        LeadPage,
    ),
    Question("/analytics/leads/projects", "Distinct lead projects, for filters", Args, lead_projects, LeadProjects),
    Question(
        "/analytics/leads/sources",
        "Distinct lead sources and form sources, for filters",
        Args,
        lead_sources,
        LeadSources,
    ),
    Question(
        "/analytics/leads/{lead_id}",
        "One lead and what led to it: the web session it was captured in, or the agent session that booked it",
        LeadArgs,
        lead_detail,
        LeadDetail,
    ),
]
"""`projects` and `sources` come before `{lead_id}`, which would match them too."""
