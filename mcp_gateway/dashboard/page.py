"""The dashboard's pages: the login form, an error page, and the dashboard itself.

`dashboard()` asks every section's question at once (one round; the funnel and the sessions' calls
need a first answer, so they come in a second), then lays the cards out in a responsive grid. All
questions get the same explicit window, so every card counts the same period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from pydantic import Field, field_validator

from ..analytics import Asked
from ..analytics.window import DAY_MS, PERIODS, TimeWindow, WindowArgs
from . import sections
from .answers import Answers, Unavailable
from .markup import Markup, concat, render, timestamp

MAX_FUNNEL_STEPS: Final = 10
DEFAULT_FUNNEL_STEPS: Final = 3
"""Steps of the funnel shown when the query string names none: the period's top events."""
SESSION_BOOKKEEPING: Final = frozenset({"$session_start", "$session_end"})
"""Events every session has, left out of the default funnel."""
HOURLY_UP_TO_MS: Final = 2 * DAY_MS
"""Windows up to this long chart sessions per hour; longer ones per day."""
RECENT_SESSIONS: Final = 8
LATEST_LEADS: Final = 10
TOP_ROWS: Final = 10
FEED_ROWS: Final = 20
SESSION_PATH: Final = "/analytics/mcp/sessions/{session_id}"
FAVICON: Final = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='4' fill='%234f46e5'/%3E%3C/svg%3E"
)
"""The tab's icon, inline: no request for /favicon.ico."""


@dataclass(frozen=True, slots=True)
class Assets:
    """The URLs of the page's stylesheet and script."""

    css: str
    js: str


class DashboardArgs(WindowArgs):
    """The dashboard's query string: the window (`period`, or `since`/`until`) and the funnel's steps."""

    steps: str | None = Field(None, max_length=1000, description="Funnel steps: event names, comma-separated")

    @field_validator("steps")
    @classmethod
    def _two_to_ten_steps(cls, steps: str | None) -> str | None:
        if steps is not None and not 2 <= len([s for s in steps.split(",") if s.strip()]) <= MAX_FUNNEL_STEPS:
            raise ValueError(f"give 2 to {MAX_FUNNEL_STEPS} comma-separated event names")
        return steps

    def step_names(self) -> list[str] | None:
        return None if self.steps is None else [s.strip() for s in self.steps.split(",") if s.strip()]


def _document(assets: Assets, title: str, body: Markup, *, script: bool = False) -> Markup:
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<title>{title}</title><link rel="icon" href="{icon}"><link rel="stylesheet" href="{css}"></head>'
        "<body>{body}{script}</body></html>",
        title=title,
        icon=FAVICON,
        css=assets.css,
        body=body,
        script=render('<script src="{js}" defer></script>', js=assets.js) if script else Markup(""),
    )


def login(assets: Assets, error: str | None = None) -> Markup:
    """The login form: one field for the read key."""
    message = render('<p class="error" role="alert">{e}</p>', e=error) if error else Markup("")
    return _document(
        assets,
        "Sign in · mcp-gateway",
        render(
            '<main class="login"><form class="card" method="post" action="/dashboard/login">'
            '<h1>mcp-gateway</h1><p class="muted">Enter a read key (rk_…) to see its gateway\'s analytics.</p>'
            '{message}<label for="key">Read key</label>'
            '<input id="key" name="key" type="password" autocomplete="current-password" required '
            'placeholder="rk_…" autofocus spellcheck="false">'
            '<button type="submit">Sign in</button></form></main>',
            message=message,
        ),
    )


def error(assets: Assets, message: str, field: object) -> Markup:
    """A page for a request the dashboard refuses, naming the bad parameter when there is one."""
    detail = render(' <span class="muted">(parameter <code>{f}</code>)</span>', f=field) if field else Markup("")
    return _document(
        assets,
        "Error · mcp-gateway",
        render(
            '<main class="login"><div class="card"><h1>Cannot show this</h1><p class="error">{m}{d}</p>'
            '<p><a href="/dashboard">Back to the dashboard</a></p></div></main>',
            m=message,
            d=detail,
        ),
    )


async def _gather(calls: Mapping[str, Awaitable[Any]]) -> dict[str, Any]:
    values = await asyncio.gather(*calls.values())
    return dict(zip(calls, values, strict=True))


def _period_links(args: DashboardArgs) -> Markup:
    explicit = args.since is not None or args.until is not None
    current = None if explicit else (args.period or "7d")
    extra = {"steps": args.steps} if args.steps else {}
    return concat(
        render(
            '<a href="?{query}"{current}>{label}</a>',
            query=urlencode({"period": period, **extra}),
            current=Markup(' aria-current="page"') if period == current else Markup(""),
            label=period,
        )
        for period in PERIODS
    )


async def dashboard(
    answers: Answers, asked: Asked, assets: Assets, *, gateway_name: str, args: DashboardArgs, window: TimeWindow
) -> Markup:
    """The whole dashboard of `asked.gateway_id` over `window`."""
    span = {"since": window.since_ms, "until": window.until_ms}
    group_by = "hour" if window.length_ms <= HOURLY_UP_TO_MS else "day"
    found = await _gather(
        {
            "overview": answers.ask(asked, "/analytics/overview", span),
            "web": answers.ask(asked, "/stats", {**span, "source": "web", "group_by": group_by}),
            "mcp": answers.ask(asked, "/stats", {**span, "source": "mcp", "group_by": group_by}),
            "tools": answers.ask(asked, "/analytics/tools", span),
            "clients": answers.ask(asked, "/analytics/clients", span),
            "sessions": answers.ask(asked, "/analytics/mcp/sessions", {**span, "limit": RECENT_SESSIONS}),
            "leads": answers.ask(asked, "/analytics/leads", {**span, "limit": LATEST_LEADS}),
            "pages": answers.ask(asked, "/analytics/pages/top", {**span, "limit": TOP_ROWS}),
            "sources": answers.ask(asked, "/analytics/sources", {**span, "limit": TOP_ROWS}),
            "recent": answers.ask(asked, "/events", {**span, "limit": FEED_ROWS}),
        }
    )
    steps = args.step_names() or default_steps(found["web"], found["mcp"])
    listed = [] if isinstance(found["sessions"], Unavailable) else found["sessions"]["sessions"]
    later = await _gather(
        {
            "funnel": answers.ask(asked, "/funnel", {**span, "steps": steps}, "POST") if steps else _no_funnel(),
            **{s["session_id"]: answers.ask(asked, SESSION_PATH, {"session_id": s["session_id"]}) for s in listed},
        }
    )
    funnel = later.pop("funnel")
    cards = [
        render(
            '<section class="stats span-12" id="overview" aria-label="Overview">{tiles}</section>',
            tiles=sections.section(found["overview"], sections.overview),
        ),
        sections.card(
            "Sessions over time",
            sections.sessions_chart(found["web"], found["mcp"]),
            section_id="sessions-chart",
            span="span-7",
            note="per hour" if group_by == "hour" else "per day (UTC)",
        ),
        sections.card(
            "Clients", sections.section(found["clients"], sections.clients), section_id="clients", span="span-5"
        ),
        sections.card(
            "Tools",
            sections.section(found["tools"], sections.tools),
            section_id="tools",
            span="span-12",
            note="tools, resources and prompts: calls, errors and latency percentiles",
        ),
        sections.card(
            "Recent MCP sessions",
            sections.section(found["sessions"], lambda listing: sections.mcp_sessions(listing, later)),
            section_id="mcp-sessions",
            note="newest first; open one for its calls",
        ),
        sections.card(
            "Leads", sections.section(found["leads"], sections.leads), section_id="leads", note=f"latest {LATEST_LEADS}"
        ),
        sections.card("Top pages", sections.section(found["pages"], sections.top_pages), section_id="pages"),
        sections.card("Sources", sections.section(found["sources"], sections.sources), section_id="sources"),
        sections.card(
            "Funnel",
            concat([_steps_form(args, steps), sections.section(funnel, sections.funnel)]),
            section_id="funnel",
        ),
        sections.card("Live", sections.live_feed(found["recent"]), section_id="live", note="new events as they arrive"),
    ]
    header = render(
        '<header class="top"><div class="brand"><span class="logo" aria-hidden="true"></span>'
        '<div><h1>{name}</h1><p class="muted">{since} – {until}</p></div></div>'
        '<nav class="periods" aria-label="Period">{periods}</nav>'
        '<form method="post" action="/dashboard/logout"><button class="quiet" type="submit">Log out</button></form>'
        "</header>",
        name=gateway_name,
        since=timestamp(window.since_ms),
        until=timestamp(window.until_ms),
        periods=_period_links(args),
    )
    return _document(
        assets,
        f"{gateway_name} · mcp-gateway",
        render('<div class="page">{header}<main class="grid">{cards}</main></div>', header=header, cards=concat(cards)),
        script=True,
    )


def default_steps(web: Any, mcp: Any) -> list[str] | None:
    """The funnel to show when none is asked for: the top web events (page views first), else the top MCP ones."""
    for stats in (web, mcp):
        if isinstance(stats, Unavailable):
            continue
        names = [e["event"] for e in stats["top_events"] if e["event"] not in SESSION_BOOKKEEPING]
        if len(names) >= 2:
            return names[:DEFAULT_FUNNEL_STEPS]
    return None


def _steps_form(args: DashboardArgs, steps: list[str] | None) -> Markup:
    keep = {"period": args.period, "since": args.since, "until": args.until}
    hidden = concat(
        render('<input type="hidden" name="{name}" value="{value}">', name=name, value=value)
        for name, value in keep.items()
        if value is not None
    )
    return render(
        '<form class="steps" method="get" action="/dashboard">{hidden}'
        '<input name="steps" aria-label="Funnel steps" value="{steps}" placeholder="page_view,signup,…">'
        '<button class="quiet" type="submit">Apply</button></form>',
        hidden=hidden,
        steps=",".join(steps or ()),
    )


async def _no_funnel() -> Unavailable:
    return Unavailable("No events to build a funnel from yet.")
