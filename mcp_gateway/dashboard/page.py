"""The dashboard's pages: the login form, an error page, and the dashboard itself.

The dashboard is a grid of `SECTIONS`; each asks its own questions (all of them concurrently) and
renders its card. `dashboard()` fills the fast sections at once and leaves a placeholder for each
slow (`deferred`) one, which the page's sections.js fills from GET /dashboard/sections/{id}, built
by the same `Section.render`; with `?full=1` (a <noscript> link) every section is filled on the
server. Within one view, every question gets the same explicit window, so every card counts the same
period.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from pydantic import Field, field_validator

from ..analytics import Asked
from ..analytics.window import DAY_MS, PERIODS, TimeWindow, WindowArgs
from ..vocabulary import SESSION_BOOKKEEPING  # events every session has, left out of the default funnel
from . import sections
from .answers import Answers, Method, Unavailable
from .experiment_card import experiments_card
from .markup import Markup, concat, render, timestamp

MAX_FUNNEL_STEPS: Final = 10
DEFAULT_FUNNEL_STEPS: Final = 3
"""Steps of the funnel shown when the query string names none: the period's top events."""
HOURLY_UP_TO_MS: Final = 2 * DAY_MS
"""Windows up to this long chart sessions per hour; longer ones per day."""
RECENT_SESSIONS: Final = 8
LATEST_LEADS: Final = 10
TOP_ROWS: Final = 10
FEED_ROWS: Final = 20
SESSION_PATH: Final = "/analytics/mcp/sessions/{session_id}"
EXPERIMENT_PATH: Final = "/experiments/{id}"
LATEST_EXPERIMENTS: Final = 5
"""The most experiments the dashboard's card shows (newest first)."""
NO_FUNNEL: Final = Unavailable("No events to build a funnel from yet.")
FAVICON: Final = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='4' fill='%234f46e5'/%3E%3C/svg%3E"
)
"""The tab's icon, inline: no request for /favicon.ico."""


@dataclass(frozen=True, slots=True)
class Assets:
    """The URLs of the page's stylesheet and scripts."""

    css: str
    js: str
    sections_js: str


class DashboardArgs(WindowArgs):
    """The dashboard's query string: the window (`period`, or `since`/`until`) and the funnel's steps."""

    steps: str | None = Field(None, max_length=1000, description="Funnel steps: event names, comma-separated")
    project: str | None = Field(
        None, max_length=200, description="The project to show, for an account key's login (its account's projects)"
    )

    @field_validator("steps")
    @classmethod
    def _two_to_ten_steps(cls, steps: str | None) -> str | None:
        if steps is not None and not 2 <= len([s for s in steps.split(",") if s.strip()]) <= MAX_FUNNEL_STEPS:
            raise ValueError(f"give 2 to {MAX_FUNNEL_STEPS} comma-separated event names")
        return steps

    def step_names(self) -> list[str] | None:
        return None if self.steps is None else [s.strip() for s in self.steps.split(",") if s.strip()]


class PageArgs(DashboardArgs):
    """The page's query string: the dashboard's, and whether to render every section on the server."""

    full: bool = Field(False, description="Render every section on the server (for browsers without JavaScript)")


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
        script=render(
            '<script src="{js}" defer></script><script src="{sections}" defer></script>',
            js=assets.js,
            sections=assets.sections_js,
        )
        if script
        else Markup(""),
    )


def login(assets: Assets, error: str | None = None) -> Markup:
    """The login form: one field for the read key."""
    message = render('<p class="error" role="alert">{e}</p>', e=error) if error else Markup("")
    return _document(
        assets,
        "Sign in · mcp-gateway",
        render(
            '<main class="login"><form class="card" method="post" action="/dashboard/login">'
            '<h1>mcp-gateway</h1><p class="muted">Enter a read key (rk_…) to see its gateway\'s analytics, or an '
            "account key (ak_…) to see its account's projects.</p>"
            '{message}<label for="key">Read key or account key</label>'
            '<input id="key" name="key" type="password" autocomplete="current-password" required '
            'placeholder="rk_… or ak_…" autofocus spellcheck="false">'
            '<button type="submit">Sign in</button>'
            '<p class="muted" id="get-a-key">No read key? Whoever runs the gateway creates one: '
            "<code>mcp-gateway keys create --gateway ID --kind read</code> on its machine (the gateway of a fresh "
            "install is <code>demo</code>), or with the admin token, <code>POST /v1/gateways/ID/keys</code> with "
            '<code>{{"kind": "read"}}</code>. The key is shown once.</p></form></main>',
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


def _period_links(view: View) -> Markup:
    args = view.args
    explicit = args.since is not None or args.until is not None
    current = None if explicit else (args.period or "7d")
    extra = {"steps": args.steps} if args.steps else {}
    if args.project:
        extra["project"] = args.project
    if view.full:
        extra["full"] = "1"
    return concat(
        render(
            '<a href="?{query}"{current}>{label}</a>',
            query=urlencode({"period": period, **extra}),
            current=Markup(' aria-current="page"') if period == current else Markup(""),
            label=period,
        )
        for period in PERIODS
    )


@dataclass(slots=True)
class View:
    """What every section is built from: one gateway's questions over one window, and the query string.

    A question asked twice with the same parameters (the funnel's default steps read the chart's /stats)
    is answered once per view.
    """

    answers: Answers
    asked: Asked
    args: DashboardArgs
    window: TimeWindow
    full: bool = False
    """The whole page rendered on the server (`?full=1`, for browsers without JavaScript)."""
    _asking: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def span(self) -> dict[str, int]:
        return {"since": self.window.since_ms, "until": self.window.until_ms}

    @property
    def group_by(self) -> str:
        return "hour" if self.window.length_ms <= HOURLY_UP_TO_MS else "day"

    def ask(self, path: str, params: Mapping[str, Any], method: Method = "GET") -> Awaitable[Any]:
        """The JSON answer of `method path` to `params`, or `Unavailable` (see `Answers.ask`)."""
        key = json.dumps([method, path, dict(params)], sort_keys=True, default=str)
        if key not in self._asking:
            self._asking[key] = asyncio.ensure_future(self.answers.ask(self.asked, path, params, method))
        return self._asking[key]

    def stats(self, source: str) -> Awaitable[Any]:
        return self.ask("/stats", {**self.span, "source": source, "group_by": self.group_by})

    def query(self, **extra: str) -> str:
        """The view's own query string (window and steps, as given), with `extra`."""
        given: dict[str, object] = {"period": self.args.period, "since": self.args.since, "until": self.args.until}
        given["steps"] = self.args.steps
        given["project"] = self.args.project
        return urlencode({**{k: v for k, v in given.items() if v is not None}, **extra})


# -- the sections: each asks its questions and renders its card ----------------------------------------


async def _overview(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/overview", view.span), sections.overview)


async def _sessions_chart(view: View) -> Markup:
    web, mcp = await asyncio.gather(view.stats("web"), view.stats("mcp"))
    return sections.sessions_chart(web, mcp)


async def _clients(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/clients", view.span), sections.clients)


async def _tools(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/tools", view.span), sections.tools)


async def _mcp_sessions(view: View) -> Markup:
    """The latest sessions, then each one's calls (the listing names them)."""
    found = await view.ask("/analytics/mcp/sessions", {**view.span, "limit": RECENT_SESSIONS})
    listed = [] if isinstance(found, Unavailable) else found["sessions"]
    ids = [s["session_id"] for s in listed]
    details = await asyncio.gather(*(view.ask(SESSION_PATH, {"session_id": i}) for i in ids))
    calls = dict(zip(ids, details, strict=True))
    return sections.section(found, lambda listing: sections.mcp_sessions(listing, calls))


async def _leads(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/leads", {**view.span, "limit": LATEST_LEADS}), sections.leads)


async def _top_pages(view: View) -> Markup:
    return sections.section(
        await view.ask("/analytics/pages/top", {**view.span, "limit": TOP_ROWS}), sections.top_pages
    )


async def _sources(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/sources", {**view.span, "limit": TOP_ROWS}), sections.sources)


async def _funnel(view: View) -> Markup:
    """The steps from the query string, else the period's top events (from /stats), and their funnel."""
    steps = view.args.step_names()
    if steps is None:
        steps = default_steps(*await asyncio.gather(view.stats("web"), view.stats("mcp")))
    funnel = await view.ask("/funnel", {**view.span, "steps": steps}, "POST") if steps else NO_FUNNEL
    return concat([_steps_form(view, steps), sections.section(funnel, sections.funnel)])


async def _experiments(view: View) -> Markup:
    """The active experiments (the newest `LATEST_EXPERIMENTS`), each with its live results."""
    found = await view.ask("/experiments", {"status": "active"})
    listed = [] if isinstance(found, Unavailable) else found["experiments"][:LATEST_EXPERIMENTS]
    ids = [experiment["id"] for experiment in listed]
    details = await asyncio.gather(*(view.ask(EXPERIMENT_PATH, {"id": i}) for i in ids))
    if not isinstance(found, Unavailable):
        found = {**found, "experiments": listed}
    return experiments_card(found, dict(zip(ids, details, strict=True)))


async def _integrations(view: View) -> Markup:
    return sections.section(await view.ask("/analytics/integrations", {}), sections.integrations)


async def _live(view: View) -> Markup:
    stream = "/stream" + (f"?{urlencode({'project': view.args.project})}" if view.args.project else "")
    return sections.live_feed(await view.ask("/events", {**view.span, "limit": FEED_ROWS}), stream=stream)


@dataclass(frozen=True, slots=True)
class Section:
    """One card of the page: its place, and how its body is built.

    A `deferred` section's questions take long on a big database: the page comes with a placeholder
    in its place, which sections.js fills from /dashboard/sections/{id}.
    """

    id: str
    title: str
    body: Callable[[View], Awaitable[Markup]]
    span: str = "span-6"
    note: str | Callable[[View], str] = ""
    deferred: bool = False

    def note_for(self, view: View) -> str:
        return self.note if isinstance(self.note, str) else self.note(view)

    async def render(self, view: View) -> Markup:
        """The section, filled: what the whole page shows, and what /dashboard/sections/{id} answers."""
        body = await self.body(view)
        if self.id == "overview":
            return render(
                '<section class="stats span-12" id="overview" aria-label="Overview">{tiles}</section>', tiles=body
            )
        return sections.card(self.title, body, section_id=self.id, span=self.span, note=self.note_for(view))

    def placeholder(self, view: View) -> Markup:
        return sections.placeholder(
            self.title,
            section_id=self.id,
            span=self.span,
            note=self.note_for(view),
            source=f"{SECTIONS_PATH}/{self.id}?{view.query()}",
        )


SECTIONS_PATH: Final = "/dashboard/sections"
SECTIONS: Final[dict[str, Section]] = {
    section.id: section
    for section in [
        Section("overview", "Overview", _overview, span="span-12"),
        Section(
            "sessions-chart",
            "Sessions over time",
            _sessions_chart,
            span="span-7",
            note=lambda view: "per hour" if view.group_by == "hour" else "per day (UTC)",
            deferred=True,
        ),
        Section("clients", "Clients", _clients, span="span-5", deferred=True),
        Section(
            "tools",
            "Tools",
            _tools,
            span="span-12",
            note="tools, resources and prompts: calls, errors and latency percentiles",
        ),
        Section("mcp-sessions", "Recent MCP sessions", _mcp_sessions, note="newest first; open one for its calls"),
        Section("leads", "Leads", _leads, note=f"latest {LATEST_LEADS}"),
        Section("pages", "Top pages", _top_pages, deferred=True),
        Section("sources", "Sources", _sources, deferred=True),
        Section("funnel", "Funnel", _funnel, deferred=True),
        Section("experiments", "Experiments", _experiments, span="span-12", note="active A/B tests, live results"),
        Section("integrations", "Integrations", _integrations, note="deliveries to ad and analytics platforms"),
        Section("live", "Live", _live, note="new events as they arrive"),
    ]
}
"""The page's sections, in the page's order, by id."""


@dataclass(frozen=True, slots=True)
class ProjectChoice:
    """A project an account key's login may show."""

    id: str
    name: str


def _project_picker(current: str, choices: Sequence[ProjectChoice]) -> Markup:
    """A form switching the dashboard to another project of the account (no script: a select and a button)."""
    options = concat(
        render(
            '<option value="{id}"{selected}>{name}</option>',
            id=choice.id,
            name=choice.name,
            selected=Markup(" selected") if choice.id == current else Markup(""),
        )
        for choice in choices
    )
    return render(
        '<form class="picker" method="get" action="/dashboard"><select name="project" aria-label="Project">'
        '{options}</select><button class="quiet" type="submit">Show</button></form>',
        options=options,
    )


def projects(assets: Assets, choices: Sequence[ProjectChoice]) -> Markup:
    """The page an account key's login lands on when its account has several projects: one link each."""
    links = concat(
        render(
            '<li><a href="/dashboard?{query}">{name}</a> <span class="muted mono">{id}</span></li>',
            query=urlencode({"project": choice.id}),
            name=choice.name,
            id=choice.id,
        )
        for choice in choices
    )
    return _document(
        assets,
        "Projects · mcp-gateway",
        render(
            '<main class="login"><div class="card"><h1>Choose a project</h1>'
            '<ul class="projects">{links}</ul>'
            '<form method="post" action="/dashboard/logout"><button class="quiet" type="submit">Log out</button>'
            "</form></div></main>",
            links=links or Markup('<li class="muted">This account has no project yet: POST /projects.</li>'),
        ),
    )


async def dashboard(view: View, assets: Assets, *, gateway_name: str, choices: Sequence[ProjectChoice] = ()) -> Markup:
    """The dashboard of `view.asked.gateway_id` over `view.window`.

    The fast sections are filled at once; each deferred one is a placeholder that sections.js fills,
    unless `view.full` asks for the whole page (a <noscript> link does, for browsers without JavaScript).
    """
    filled = await asyncio.gather(
        *(section.render(view) for section in SECTIONS.values() if view.full or not section.deferred)
    )
    rendered = iter(filled)
    cards = [
        next(rendered) if view.full or not section.deferred else section.placeholder(view)
        for section in SECTIONS.values()
    ]
    pending = not view.full and any(section.deferred for section in SECTIONS.values())
    noscript = render(
        '<noscript><p class="noscript muted">Some cards load with JavaScript. '
        '<a href="?{query}">Show the whole page</a> instead.</p></noscript>',
        query=view.query(full="1"),
    )
    header = render(
        '<header class="top"><div class="brand"><span class="logo" aria-hidden="true"></span>'
        '<div><h1>{name}</h1><p class="muted">{since} – {until}</p></div></div>'
        '<nav class="periods" aria-label="Period">{periods}</nav>{picker}'
        '<form method="post" action="/dashboard/logout"><button class="quiet" type="submit">Log out</button></form>'
        "</header>{noscript}",
        picker=_project_picker(view.asked.gateway_id, choices) if choices else Markup(""),
        name=gateway_name,
        since=timestamp(view.window.since_ms),
        until=timestamp(view.window.until_ms),
        periods=_period_links(view),
        noscript=noscript if pending else Markup(""),
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


def _steps_form(view: View, steps: list[str] | None) -> Markup:
    args = view.args
    keep = {"period": args.period, "since": args.since, "until": args.until, "full": "1" if view.full else None}
    keep["project"] = args.project
    hidden = concat(
        render('<input type="hidden" name="{name}" value="{value}">', name=name, value=value)
        for name, value in keep.items()
        if value is not None
    )
    return render(
        '<form class="steps" method="get" action="/dashboard">{hidden}'
        '<input name="steps" aria-label="Funnel steps" value="{steps}" placeholder="PageView,Lead,…">'
        '<button class="quiet" type="submit">Apply</button></form>',
        hidden=hidden,
        steps=",".join(steps or ()),
    )
