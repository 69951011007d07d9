"""The dashboard's sections: each turns one question's JSON answer into a card of HTML.

Sections read the answers exactly as the REST API returns them, so a figure on the page is the
figure in the API's JSON, formatted (`markup.number`, `millis`, `percent`). A section whose
question is unavailable says so in its card; an empty answer says what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import charts
from .answers import NOT_SERVED, Unavailable
from .markup import Markup, clock, concat, counted, millis, number, percent, render, timestamp

Cell = object
"""A table cell: text (escaped) or `Markup`."""


def card(title: str, body: Markup, *, section_id: str, span: str = "span-6", note: str = "") -> Markup:
    return render(
        '<section class="card {span}" id="{id}">{head}{body}</section>',
        span=span,
        id=section_id,
        head=_card_head(title, note),
        body=body,
    )


def placeholder(title: str, *, section_id: str, span: str, note: str, source: str) -> Markup:
    """The card `section_id` still loading: sections.js replaces it with the section from `source`."""
    return render(
        '<section class="card {span} pending" id="{id}" aria-busy="true" data-source="{source}">{head}'
        '<p class="loading muted" role="status">Loading…</p></section>',
        span=span,
        id=section_id,
        source=source,
        head=_card_head(title, note),
    )


def _card_head(title: str, note: str) -> Markup:
    return render(
        '<header class="card-head"><h2>{title}</h2><span class="note">{note}</span></header>', title=title, note=note
    )


def empty(text: str) -> Markup:
    return render('<p class="empty">{text}</p>', text=text)


def unavailable(reason: Unavailable) -> Markup:
    return render('<p class="empty unavailable">{reason}</p>', reason=reason.reason)


def section(answer: Any, build: Callable[[Any], Markup]) -> Markup:
    """`build(answer)`, or why not when the answer is `Unavailable`."""
    return unavailable(answer) if isinstance(answer, Unavailable) else build(answer)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, numeric_from: int = 1) -> Markup:
    """A table whose columns from `numeric_from` on are right-aligned tabular numbers."""
    head = concat(
        render('<th class="{cls}" scope="col">{h}</th>', cls="num" if i >= numeric_from else "", h=h)
        for i, h in enumerate(headers)
    )
    body = concat(
        render(
            "<tr>{cells}</tr>",
            cells=concat(
                render('<td class="{cls}">{v}</td>', cls="num" if i >= numeric_from else "", v=v)
                for i, v in enumerate(row)
            ),
        )
        for row in rows
    )
    return render(
        '<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>',
        head=head,
        body=body,
    )


def error_rate(ratio: Any) -> Markup:
    """A percentage, flagged when above 5%."""
    flagged = isinstance(ratio, int | float) and ratio > 0.05
    return render('<span class="{cls}">{text}</span>', cls="bad" if flagged else "", text=percent(ratio))


def pill(text: str, tone: str = "") -> Markup:
    return render('<span class="pill {tone}">{text}</span>', tone=tone, text=text)


# -- overview and the chart ----------------------------------------------------------------------------


def overview(answer: Any) -> Markup:
    """/analytics/overview: one tile per headline number."""
    tiles = [
        ("Sessions", number(answer["sessions"]), "web"),
        ("Visitors", number(answer["unique_visitors"]), "unique"),
        ("Page views", number(answer["page_views"]), ""),
        ("MCP sessions", number(answer["mcp_sessions"]), "agents"),
        ("Tool calls", number(answer["tool_calls"]), counted(answer["tool_errors"], "error")),
        ("Error rate", percent(answer["error_rate"]), "tool calls"),
        ("Leads", number(answer["leads"]), "agents and forms"),
        ("Events", number(answer["events"]), "all sources"),
    ]
    return concat(
        render(
            '<div class="stat" data-stat="{key}"><div class="label">{label}</div>'
            '<div class="value">{value}</div><div class="sub">{sub}</div></div>',
            key=label.lower().replace(" ", "-"),
            label=label,
            value=value,
            sub=sub,
        )
        for label, value, sub in tiles
    )


def sessions_chart(web: Any, mcp: Any) -> Markup:
    """/stats of web and of MCP events: sessions per bucket, web as columns and agents as a line."""
    for answer in (web, mcp):
        if isinstance(answer, Unavailable):
            return unavailable(answer)
    points = web["timeseries"]
    if not any(p["sessions"] for p in points) and not any(p["sessions"] for p in mcp["timeseries"]):
        return empty("No sessions in this period.")
    label_format = "%H:%M" if web["group_by"] == "hour" else "%b %d"
    labels = [clock(p["timestamp"], label_format) for p in points]
    agent_sessions = {p["timestamp"]: p["sessions"] for p in mcp["timeseries"]}
    chart = charts.column_chart(
        labels,
        charts.Series("web sessions", [p["sessions"] for p in points]),
        charts.Series("MCP sessions", [agent_sessions.get(p["timestamp"], 0) for p in points]),
        title="Sessions over time",
    )
    legend = Markup(
        '<div class="legend"><span><span class="swatch s-bar"></span>Web sessions</span>'
        '<span><span class="swatch s-line"></span>MCP sessions</span></div>'
    )
    return concat([legend, chart])


# -- MCP: tools, clients, sessions -------------------------------------------------------------------


def tools(answer: Any) -> Markup:
    """/analytics/tools: one row per tool, resource and prompt."""
    primitives = answer["primitives"]
    if not primitives:
        return empty("No tool, resource or prompt calls in this period.")
    rows = [
        (
            render(
                '<span class="kind">{kind}</span> <span class="name">{name}</span>',
                kind=p["primitive_type"],
                name=p["name"],
            ),
            number(p["calls"]),
            number(p["errors"]),
            error_rate(p["error_rate"]),
            millis(p["avg_latency_ms"]),
            millis(p["p50_ms"]),
            millis(p["p95_ms"]),
            millis(p["p99_ms"]),
        )
        for p in primitives
    ]
    return table(["Name", "Calls", "Errors", "Error rate", "Avg", "p50", "p95", "p99"], rows)


def clients(answer: Any) -> Markup:
    """/analytics/clients: one row per MCP client."""
    if not answer["clients"]:
        return empty("No MCP clients in this period.")
    rows = [
        (
            render(
                '<span class="name nowrap">{name}</span> <span class="muted">{versions}</span>',
                name=c["display_name"],
                versions=", ".join(v["version"] for v in c["versions"] if v["version"]),
            ),
            number(c["sessions"]),
            number(c["calls"]),
            error_rate(c["error_rate"]),
            millis(c["avg_latency_ms"]),
        )
        for c in answer["clients"]
    ]
    return table(["Client", "Sessions", "Calls", "Errors", "Avg"], rows)


def mcp_sessions(listing: Any, details: dict[str, Any]) -> Markup:
    """/analytics/mcp/sessions, each expandable to its calls from /analytics/mcp/sessions/{session_id}."""
    if not listing["sessions"]:
        return empty("No MCP sessions in this period.")
    return concat(_session(s, details.get(s["session_id"])) for s in listing["sessions"])


def _session(summary: Any, detail: Any) -> Markup:
    return render(
        '<details><summary><span class="grow"><span class="name">{client}</span> <span class="muted">{version}</span>'
        '</span>{errors}{booked}<span class="muted num">{calls} · {started}</span></summary>'
        '<p class="muted small">{transport} · session <span class="mono">{session}</span> · last activity {last}</p>'
        "{body}</details>",
        client=summary["display_name"],
        version=summary["client_version"] or "",
        errors=pill(counted(summary["errors"], "error"), "bad") if summary["errors"] else Markup(""),
        booked=pill("booked demo", "good") if summary["booked_demo"] else Markup(""),
        calls=counted(summary["calls"], "call"),
        started=clock(summary["started_at"], "%b %d %H:%M"),
        transport=summary["transport"] or "unknown transport",
        session=summary["session_id"],
        last=timestamp(summary["last_activity_at"]),
        body=_calls(detail),
    )


def _calls(detail: Any) -> Markup:
    """One session's calls, in order: time, kind, name, latency, and the error if it failed."""
    if detail is None or isinstance(detail, Unavailable):
        return unavailable(detail or NOT_SERVED)
    if not detail["calls"]:
        return empty("No calls.")
    items = concat(
        render(
            '<li><span class="muted mono">{time}</span>'
            '<span class="grow"><span class="kind">{kind}</span> {name}</span>'
            '{outcome}<span class="muted">{latency}</span></li>',
            time=clock(call["ts"], "%H:%M:%S"),
            kind=call["primitive_type"] or call["operation"] or "",
            name=call["name"],
            outcome=pill(call["error_type"] or "error", "bad") if call["success"] is False else Markup(""),
            latency=millis(call["latency_ms"]),
        )
        for call in detail["calls"]
    )
    more = empty("Later calls are not shown.") if detail["truncated"] else Markup("")
    return render('<ol class="calls">{items}</ol>{more}', items=items, more=more)


# -- the web: pages and sources -----------------------------------------------------------------------


def top_pages(answer: Any) -> Markup:
    """/analytics/pages/top: the most viewed paths."""
    if not answer["pages"]:
        return empty("No page views in this period.")
    rows = [
        (
            render('<span class="name mono">{path}</span>', path=p["path"]),
            number(p["views"]),
            number(p["unique_visitors"]),
        )
        for p in answer["pages"]
    ]
    return table(["Page", "Views", "Visitors"], rows)


def sources(answer: Any) -> Markup:
    """/analytics/sources: sessions per traffic source and medium."""
    if not answer["sources"]:
        return empty("No web sessions in this period.")
    rows = [
        (
            render(
                '<span class="name">{source}</span> <span class="muted">/ {medium}</span>',
                source=s["source"],
                medium=s["medium"],
            ),
            s["referrer_host"] or "—",
            number(s["sessions"]),
            percent(s["share"]),
        )
        for s in answer["sources"]
    ]
    return table(["Source / medium", "Referrer", "Sessions", "Share"], rows, numeric_from=2)


# -- leads, the funnel, the live feed -----------------------------------------------------------------


def funnel(answer: Any) -> Markup:
    """POST /funnel: one bar per step (users, and the share of step 1's), then the overall conversion."""
    steps = answer["steps"]
    if not steps or not steps[0]["users"]:
        return empty("Nobody did the first step in this period.")
    bars = [
        charts.Bar(
            f"{step['step']}. {step['event']}",
            step["users"],
            f"{number(step['users'])} · {percent(step['overall_conversion_rate'])}",
            f"{number(step['users'])} users, {percent(step['conversion_rate'])} of the step before,"
            f" {number(step['drop_off'])} dropped off",
        )
        for step in steps
    ]
    return concat(
        [
            charts.bar_rows(bars, title="Funnel"),
            render(
                '<p class="muted small">Overall conversion <strong>{overall}</strong> · '
                "each step within {hours} h of the first</p>",
                overall=percent(answer["overall_conversion_rate"]),
                hours=number(answer["conversion_window_hours"]),
            ),
        ]
    )


def leads(answer: Any) -> Markup:
    """/analytics/leads: the latest leads, from agents (book_demo) and web forms."""
    if not answer["leads"]:
        return empty("No leads in this period.")
    rows = [
        (
            render(
                '<span class="name">{name}</span><br><span class="muted">{email}</span>',
                name=lead["name"] or "—",
                email=lead["email"],
            ),
            lead["company"] or "—",
            pill(lead["source"], "good" if lead["source"] == "mcp" else ""),
            timestamp(lead["created_at"]),
        )
        for lead in answer["leads"]
    ]
    return table(["Name", "Company", "Source", "Created"], rows, numeric_from=3)


def integrations(answer: Any) -> Markup:
    """/analytics/integrations: each integration's deliveries, its p95 latency and its latest error."""
    if not answer["integrations"]:
        return empty("No integrations: events are not forwarded (see the admin API's /integrations).")
    rows = []
    for integration in answer["integrations"]:
        status = integration["status"]
        counts = status["deliveries"]
        state = ("sync" if integration["sync"] else "async") if integration["enabled"] else "disabled"
        rows.append(
            (
                render(
                    '<span class="name">{name}</span><br><span class="muted">{kind} · {state}</span>',
                    name=integration["name"] or integration["id"],
                    kind=integration["kind"],
                    state=state,
                ),
                status["last_error"] or "—",
                number(counts["sent"]),
                number(counts["pending"]),
                number(counts["failed"] + counts["dead"]),
                millis(status["p95_latency_ms"]),
            )
        )
    return table(["Integration", "Last error", "Sent", "Pending", "Failed", "p95"], rows, numeric_from=2)


def live_feed(recent: Any, *, stream: str = "/stream") -> Markup:
    """The latest events from /events, newest first; live.js adds new ones from /stream above them."""
    events = [] if isinstance(recent, Unavailable) else recent["events"]
    rows = concat(
        render(
            '<li><span class="time mono">{time}</span>{source}<span class="grow">{name}</span>'
            '<span class="muted">{detail}</span></li>',
            time=clock(e["timestamp"], "%H:%M:%S"),
            source=pill(e["source"]),
            name=e["event"],
            detail=_event_detail(e),
        )
        for e in events
    )
    placeholder = Markup('<li class="placeholder muted">Waiting for events…</li>')
    return render(
        '<p class="muted"><span id="live-status" class="status">connecting…</span></p>'
        '<ul class="feed" id="live-feed" data-stream="{stream}">{rows}</ul>',
        rows=rows or placeholder,
        stream=stream,
    )


def _event_detail(event: Any) -> str:
    """What live.js shows next to an event's name: the MCP call's outcome and latency, or the page's path."""
    if event["source"] == "mcp":
        parts = [event["primitive_type"] or "", "error" if event["success"] is False else "ok"]
        if isinstance(event["latency_ms"], int | float):
            parts.append(f"{event['latency_ms']:.1f} ms")
        return " · ".join(parts)
    return str(event["path"] or "")
