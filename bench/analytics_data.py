"""The data set `analytics_questions.py` asks about (not a benchmark itself): generated, stored through the
store's real write path, cached, and copied into DuckDB.

    generate(path, events, seed)   N events over 30 days for gateway `demo` (and ~1% for gateway `other`),
                                   written by `SQLiteStore.capture` (MCP sessions and events, so the
                                   writer keeps `mcp_rollups` as in production) and `capture_web` (web
                                   events, sessions derived by the writer where the client sent none),
                                   in batches of `BATCH_EVENTS`; leads by `store.book_lead`
    cached_dataset(dir, events)    the cached SQLite and DuckDB files of that data set, made if missing
    Dataset                        where the files are, the data's `now_ms`, row counts, generation figures

What is generated, in time order (a visit's or session's events are spread over minutes; arrivals
follow a day/night and weekday cycle with a slight growth over the month):

    web (~60%)  visits of anonymous visitors (about N/20 of them; half of the visits come back from an
                earlier visitor) with a device, browser, OS and country each; 75% tracked with seed 001's
                sessions (`$session_start` id `ss_<session>`, `$session_end` id `se_<session>` with
                duration_ms, page_views, scroll_depth, clicks and the engagement score), the rest
                `/track`-style events without a session (the writer derives one by 30-minute gaps);
                `page_view` on 50 paths with Zipf-like popularity, `cta_click`, the funnel
                `page_view` -> `signup_start` -> `signup_complete`, and `$lead` (id `lead_<lead>`, a
                stored lead with form source and project); traffic source/medium/campaign classified
                from each event's URL and referrer by the ingest's own `classify_traffic`
    mcp (~40%)  sessions of a few clients ("claude-desktop 1.0", "cursor 1.2", "mcp-inspector 0.14", ...),
                each a `tools/list` then calls: 10 tools (log-normal latencies, ~3% errors), resource
                reads and prompt gets; `book_demo` stores a lead and records `{"lead_id": ...}` in its result

Files are keyed by N, `GENERATOR_VERSION` and a hash of the store's writer code (`mcp_gateway/store/*.py`
but the migrations, which opening the file applies: a database written before the writer changed would
lack its new rollups), and count as cached only once their `.json` sidecar exists. Generation is
deterministic for a seed, except the time the data ends at (the hour generation started, rounded down).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import heapq
import itertools
import json
import math
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import duckdb
from mcp_gateway_tracking.privacy import canonical_json

from mcp_gateway import store as store_package
from mcp_gateway.gateways import DEMO_GATEWAY_ID, GatewayCreate, GatewayDirectory
from mcp_gateway.ingest.enrich import Traffic, classify_traffic
from mcp_gateway.ingest.visits import LEAD_EVENT, SESSION_START, engagement_score
from mcp_gateway.store import EventRow, LeadRecord, SessionRow, SQLiteStore, WebFields
from mcp_gateway.store.session_rollup import SESSION_END

GENERATOR_VERSION: Final = 1
"""Bump whenever what `generate` writes changes, so cached data sets are made again."""
OTHER_GATEWAY_ID: Final = "other"
OTHER_SHARE: Final = 0.01
"""Share of visits and MCP sessions that belong to the second gateway."""
DAYS: Final = 30
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
BATCH_EVENTS: Final = 5000
"""Events per `capture` / `capture_web` call."""
IN_FLIGHT: Final = 2
"""Batches handed to the writer and not yet committed while the next one is generated."""
MCP_SHARE: Final = 0.40
OVERSHOOT: Final = 1.03
"""Arrivals are planned for this much more than N events; generation stops at exactly N."""

SITE: Final = "https://acme.example"
PAGE_VIEW: Final = "page_view"
FUNNEL: Final = (PAGE_VIEW, "signup_start", "signup_complete")

PATHS: Final = (
    "/",
    "/pricing",
    "/docs",
    "/docs/getting-started",
    "/blog",
    "/docs/mcp",
    "/signup",
    "/docs/tracking",
    "/integrations/claude",
    "/docs/analytics",
    "/about",
    "/integrations/cursor",
    "/changelog",
    "/contact",
    "/security",
    "/careers",
    "/docs/api",
    "/docs/self-hosting",
    "/customers",
    "/compare/posthog",
    *(f"/blog/post-{n}" for n in range(1, 31)),
)
"""50 paths, most popular first: a page is picked with weight 1 / rank**1.1."""

REFERRERS: Final = (
    (None, "", 30),
    ("https://www.google.com/", "", 25),
    ("https://chatgpt.com/", "", 8),
    ("https://www.perplexity.ai/", "", 3),
    ("https://t.co/abc", "", 5),
    ("https://www.linkedin.com/feed/", "", 4),
    ("https://news.ycombinator.com/item?id=1", "", 3),
    (None, "?utm_source=newsletter&utm_medium=email&utm_campaign=launch", 7),
    ("https://www.google.com/", "?gclid=abc123&utm_campaign=brand", 6),
    ("https://github.com/acme/gateway", "", 5),
    ("https://www.bing.com/", "", 4),
)
"""(referrer, landing query, weight) of a visit's first page."""

DEVICES: Final = (
    ("desktop", "Chrome", "Mac OS X", 30),
    ("desktop", "Chrome", "Windows", 22),
    ("desktop", "Firefox", "Linux", 5),
    ("desktop", "Safari", "Mac OS X", 8),
    ("desktop", "Edge", "Windows", 7),
    ("mobile", "Mobile Safari", "iOS", 14),
    ("mobile", "Chrome Mobile", "Android", 10),
    ("tablet", "Mobile Safari", "iOS", 3),
    ("bot", "Googlebot", "Other", 1),
)
COUNTRIES: Final = (("US", 35), ("DE", 10), ("GB", 9), ("FR", 7), ("IN", 8), ("CA", 5), ("BR", 4), ("JP", 4))
"""The rest (18%) have one of `OTHER_COUNTRIES` or none (geo-IP found nothing)."""
OTHER_COUNTRIES: Final = ("NL", "ES", "IT", "SE", "PL", "AU", "MX", "KR", "SG", None)

CLIENTS: Final = (
    ("claude-desktop 1.0", 40),
    ("cursor 1.2", 22),
    ("claude-code 2.0", 12),
    ("mcp-inspector 0.14", 10),
    ("windsurf 1.5", 8),
    ("vscode-copilot 1.101", 8),
)
TOOLS: Final = (
    ("search_docs", 25, 180.0),
    ("get_pricing", 15, 35.0),
    ("list_plans", 10, 20.0),
    ("summarize_page", 8, 900.0),
    ("check_status", 8, 60.0),
    ("get_integration", 6, 45.0),
    ("get_changelog", 6, 80.0),
    ("compare_plans", 6, 120.0),
    ("create_ticket", 4, 350.0),
    ("book_demo", 2, 250.0),
)
"""(name, weight, median latency ms): latencies are log-normal with sigma `LATENCY_SIGMA`."""
RESOURCES: Final = (("pricing://current", 6, 4.0), ("docs://primary", 5, 12.0), ("system://hint", 3, 2.0))
PROMPTS: Final = (("demo_intro", 3, 3.0), ("pricing_summary", 2, 5.0))
LATENCY_SIGMA: Final = 0.6
ERROR_RATE: Final = 0.03
ERROR_TYPES: Final = ("ToolError", "TimeoutError", "ValidationError", "isError")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A generated data set: its files and what a question needs to know about it."""

    sqlite_path: Path
    duckdb_path: Path
    events: int
    now_ms: int
    """The data's present: every event is before it, the newest within seconds of it."""
    rows: dict[str, int]
    """Rows per table and gateway, e.g. `events.demo`."""
    generate_s: float
    ingest_rate: float
    """Events per second through `capture` / `capture_web`, generation included."""
    sqlite_bytes: int
    duckdb_load_s: float


# --------------------------------------------------------------------------------------------------
# Random choices.
# --------------------------------------------------------------------------------------------------


class Weighted:
    """Picks from `items` with the given weights, by bisecting cumulative weights."""

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> Any:
        return rng.choices(self.items, cum_weights=self.cumulative)[0]


PAGE_PICKER: Final = Weighted(PATHS, [1 / (rank**1.1) for rank in range(1, len(PATHS) + 1)])
REFERRER_PICKER: Final = Weighted([(r, q) for r, q, _ in REFERRERS], [w for *_, w in REFERRERS])
DEVICE_PICKER: Final = Weighted([d[:3] for d in DEVICES], [d[3] for d in DEVICES])
COUNTRY_PICKER: Final = Weighted(
    [c for c, _ in COUNTRIES] + list(OTHER_COUNTRIES),
    [w for _, w in COUNTRIES] + [18 / len(OTHER_COUNTRIES)] * len(OTHER_COUNTRIES),
)
CLIENT_PICKER: Final = Weighted([c for c, _ in CLIENTS], [w for _, w in CLIENTS])
CALL_PICKER: Final = Weighted(
    [("tool", name, median) for name, _, median in TOOLS]
    + [("resource", name, median) for name, _, median in RESOURCES]
    + [("prompt", name, median) for name, _, median in PROMPTS],
    [w for _, w, _ in TOOLS] + [w for _, w, _ in RESOURCES] + [w for _, w, _ in PROMPTS],
)


def hour_weight(hour_index: int, start_ms: int) -> float:
    """Relative arrivals in an hour: a UTC day/night cycle peaking at 15:00, quieter weekends, 30% growth."""
    hour_ms = start_ms + hour_index * HOUR_MS
    hour_of_day = hour_ms // HOUR_MS % 24
    weekday = (hour_ms // DAY_MS + 4) % 7  # epoch day 0 was a Thursday; 0 = Monday
    daily = 0.35 + math.exp(-(((hour_of_day - 15) / 5) ** 2))
    weekly = 0.65 if weekday >= 5 else 1.0
    growth = 1 + 0.3 * hour_index / (DAYS * 24)
    return daily * weekly * growth


def arrival_times(rng: random.Random, count: int, start_ms: int) -> Iterator[int]:
    """`count` arrival times over `DAYS` days from `start_ms`, in order, following `hour_weight`."""
    hours = DAYS * 24
    weights = [hour_weight(h, start_ms) for h in range(hours)]
    total = sum(weights)
    carry = 0.0
    for hour, weight in enumerate(weights):
        carry += count * weight / total
        here = int(carry)
        carry -= here
        base = start_ms + hour * HOUR_MS
        yield from sorted(base + rng.randrange(HOUR_MS) for _ in range(here))


def new_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


# --------------------------------------------------------------------------------------------------
# Web visits and MCP sessions as timed rows.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    device: tuple[str, str, str]
    country: str | None
    ip_hash: str


@dataclass(slots=True)
class Population:
    """The visitors one gateway has had so far: half of its visits come from them."""

    visitors: list[Visitor] = field(default_factory=list)

    def visitor(self, rng: random.Random) -> Visitor:
        if self.visitors and rng.random() < 0.5:
            recent = rng.random() < 0.5 and len(self.visitors) > 2000
            index = rng.randrange(len(self.visitors) - 2000, len(self.visitors)) if recent else None
            return self.visitors[index if index is not None else rng.randrange(len(self.visitors))]
        visitor = Visitor("v_" + new_id(rng)[:20], DEVICE_PICKER.pick(rng), COUNTRY_PICKER.pick(rng), new_id(rng))
        self.visitors.append(visitor)
        return visitor


@lru_cache(maxsize=4096)
def traffic_of(url: str, referrer: str | None) -> Traffic:
    return classify_traffic(url, referrer)


Timed = tuple[int, int, object]
"""(time, tie-breaker, row): an EventRow, a SessionRow or a LeadRecord, released at that time."""


class Rows:
    """Builds the timed rows of visits and sessions; `tick` keeps ties in creation order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tick = itertools.count()
        self.leads = itertools.count(1)

    def timed(self, ts_ms: int, row: object) -> Timed:
        return (ts_ms, next(self.tick), row)

    def web_event(
        self,
        gateway_id: str,
        visitor: Visitor,
        name: str,
        ts_ms: int,
        *,
        session_id: str | None,
        path: str,
        query: str = "",
        referrer: str | None,
        event_id: str | None = None,
        properties: dict[str, Any] | None = None,
        email_hash: str | None = None,
    ) -> EventRow:
        url = SITE + path + query
        traffic = traffic_of(url, referrer)
        device, browser, os_name = visitor.device
        return EventRow(
            gateway_id=gateway_id,
            id=event_id or "evt_" + new_id(self.rng),
            source="web",
            session_id=session_id,
            name=name,
            primitive_type=None,
            operation=None,
            latency_ms=None,
            success=None,
            error_type=None,
            args=None,
            result=None,
            properties=properties,
            ts_ms=ts_ms,
            received_at_ms=ts_ms + 40,
            web=WebFields(
                anonymous_id=visitor.id,
                url=url,
                path=path,
                referrer=referrer,
                traffic_source=traffic.source,
                traffic_medium=traffic.medium,
                traffic_campaign=traffic.campaign,
                traffic_rule=traffic.rule,
                traffic_confidence=traffic.confidence,
                device_type=device,
                browser=browser,
                os=os_name,
                ip_hash=visitor.ip_hash,
                email_hash=email_hash,
                emq=0.4 if email_hash is None else 0.8,
                country=visitor.country,
            ),
        )

    def visit(self, gateway_id: str, visitor: Visitor, start_ms: int) -> list[Timed]:
        """One visit's rows: session start/end when tracked, page views, clicks, the funnel, maybe a lead."""
        rng = self.rng
        tracked = rng.random() < 0.75
        session_id = str(_uuid(rng)) if tracked else None
        referrer, query = REFERRER_PICKER.pick(rng)
        landing = PAGE_PICKER.pick(rng)
        out: list[Timed] = []
        ts = start_ms
        if tracked:
            out.append(
                self.timed(
                    ts,
                    self.web_event(
                        gateway_id,
                        visitor,
                        SESSION_START,
                        ts,
                        session_id=session_id,
                        path=landing,
                        query=query,
                        referrer=referrer,
                        event_id=f"ss_{session_id}",
                    ),
                )
            )
        pages = min(20, 1 + int(rng.expovariate(1 / 2.5)))
        path, page_query, page_referrer = landing, query, referrer
        clicks = 0
        for page in range(pages):
            ts += 200 if page == 0 else int(rng.expovariate(1 / 40_000)) + 500
            props = {"page_name": path.strip("/") or "home"}
            event = self.web_event(
                gateway_id,
                visitor,
                PAGE_VIEW,
                ts,
                session_id=session_id,
                path=path,
                query=page_query,
                referrer=page_referrer,
                properties=props,
            )
            out.append(self.timed(ts, event))
            if rng.random() < 0.3:
                clicks += 1
                ts += int(rng.expovariate(1 / 8000)) + 100
                button = rng.choice(("hero_cta", "nav_pricing", "footer_docs", "copy_snippet"))
                out.append(
                    self.timed(
                        ts,
                        self.web_event(
                            gateway_id,
                            visitor,
                            "cta_click",
                            ts,
                            session_id=session_id,
                            path=path,
                            referrer=page_referrer,
                            properties={"button": button},
                        ),
                    )
                )
            page_referrer, page_query = SITE + path, ""
            path = PAGE_PICKER.pick(rng)
        if rng.random() < 0.10:
            ts += int(rng.expovariate(1 / 20_000)) + 1000
            plan = rng.choice(("free", "free", "growth", "enterprise"))
            out.append(
                self.timed(
                    ts,
                    self.web_event(
                        gateway_id,
                        visitor,
                        FUNNEL[1],
                        ts,
                        session_id=session_id,
                        path="/signup",
                        referrer=page_referrer,
                        properties={"plan": plan},
                    ),
                )
            )
            if rng.random() < 0.55:
                ts += int(rng.expovariate(1 / 60_000)) + 5000
                out.append(
                    self.timed(
                        ts,
                        self.web_event(
                            gateway_id,
                            visitor,
                            FUNNEL[2],
                            ts,
                            session_id=session_id,
                            path="/signup",
                            referrer=SITE + "/signup",
                            properties={"plan": plan},
                        ),
                    )
                )
        if rng.random() < 0.012:
            ts += int(rng.expovariate(1 / 30_000)) + 2000
            out.extend(self.web_lead(gateway_id, visitor, ts, session_id, page_referrer))
        if tracked:
            ts += int(rng.expovariate(1 / 15_000)) + 500
            duration = ts - start_ms
            scroll = round(rng.uniform(5, 100), 1)
            engagement = {
                "duration_ms": duration,
                "page_views": pages,
                "scroll_depth": scroll,
                "clicks": clicks,
                "engagement_score": engagement_score(duration, pages, scroll, clicks),
            }
            end = self.web_event(
                gateway_id,
                visitor,
                SESSION_END,
                ts,
                session_id=session_id,
                path=path,
                referrer=page_referrer,
                event_id=f"se_{session_id}",
                properties=engagement,
            )
            out.append(self.timed(ts, end))
        return out

    def web_lead(
        self, gateway_id: str, visitor: Visitor, ts: int, session_id: str | None, referrer: str | None
    ) -> list[Timed]:
        number = next(self.leads)
        lead = LeadRecord(
            id=str(_uuid(self.rng)),
            gateway_id=gateway_id,
            name=f"Web Lead {number}",
            email=f"web.lead{number}@example.com",
            company=self.rng.choice(("Initech", "Globex", "Umbrella", None)),
            message=None,
            source="web",
            created_at_ms=ts,
        )
        properties = {
            "lead_id": lead.id,
            "form_source": self.rng.choice(("contact_form", "pricing_form", "footer")),
            "project": self.rng.choice(("website", "docs", "launch")),
        }
        event = self.web_event(
            gateway_id,
            visitor,
            LEAD_EVENT,
            ts,
            session_id=session_id,
            path="/contact",
            referrer=referrer,
            event_id=f"lead_{lead.id}",
            properties=properties,
            email_hash=new_id(self.rng) + new_id(self.rng),
        )
        return [self.timed(ts, lead), self.timed(ts, event)]

    def mcp_session(self, gateway_id: str, start_ms: int) -> list[Timed]:
        """One agent session's rows: the session, a `tools/list`, then calls; at most one `book_demo`."""
        rng = self.rng
        session = SessionRow(
            gateway_id=gateway_id,
            id=str(_uuid(rng)),
            client_config=CLIENT_PICKER.pick(rng),
            connection_type="streamable-http" if rng.random() < 0.85 else "sse",
            transport="streamable-http",
            ip_hash=new_id(rng),
            tools=tuple(name for name, _, _ in TOOLS),
            user_data=None,
            started_at_ms=start_ms,
            received_at_ms=start_ms + 30,
            country=COUNTRY_PICKER.pick(rng),
        )
        out = [self.timed(start_ms, session)]
        ts = start_ms + 50
        listed = canonical_json({"tools": [name for name, _, _ in TOOLS]})
        out.append(self.timed(ts, self.mcp_event(session, "tool", "list", "tools/list", ts, 3.0, "{}", listed)))
        booked = False
        for _ in range(min(60, 1 + int(rng.expovariate(1 / 7)))):
            ts += int(rng.expovariate(1 / 20_000)) + 200
            kind, name, median = CALL_PICKER.pick(rng)
            if name == "book_demo" and booked:
                kind, name, median = "tool", "search_docs", 180.0
            latency = round(median * math.exp(rng.gauss(0, LATENCY_SIGMA)), 3)
            if name == "book_demo":
                booked = True
                out.extend(self.booking(session, ts, latency))
                continue
            failed = rng.random() < ERROR_RATE
            args = canonical_json({"query": f"q{rng.randrange(500)}"} if kind == "tool" else {})
            result = canonical_json({"isError": failed, "content": [{"type": "text", "text": f"{name} answer"}]})
            event = self.mcp_event(session, kind, "call", name, ts, latency, args, result, failed=failed)
            out.append(self.timed(ts, event))
        return out

    def booking(self, session: SessionRow, ts: int, latency: float) -> list[Timed]:
        number = next(self.leads)
        lead = LeadRecord(
            id=str(_uuid(self.rng)),
            gateway_id=session.gateway_id,
            name=f"Agent Lead {number}",
            email=f"agent.lead{number}@example.com",
            company=self.rng.choice(("Acme", "Hooli", "Pied Piper", None)),
            message="Wants a demo of the analytics",
            source="mcp",
            created_at_ms=ts + int(latency),
        )
        args = canonical_json({"name": lead.name, "email": "sha256:" + new_id(self.rng), "company": lead.company})
        structured = {"lead_id": lead.id, "status": "booked", "message": f"Demo requested for {lead.name}."}
        result = canonical_json(
            {
                "content": [{"type": "text", "text": json.dumps(structured)}],
                "isError": False,
                "structuredContent": structured,
            }
        )
        event = self.mcp_event(session, "tool", "call", "book_demo", ts, latency, args, result)
        return [self.timed(ts, lead), self.timed(ts, event)]

    def mcp_event(
        self,
        session: SessionRow,
        kind: str,
        operation: str,
        name: str,
        ts: int,
        latency: float,
        args: str,
        result: str,
        *,
        failed: bool = False,
    ) -> EventRow:
        return EventRow(
            gateway_id=session.gateway_id,
            id=str(_uuid(self.rng)),
            source="mcp",
            session_id=session.id,
            name=name,
            primitive_type=kind,
            operation=operation,
            latency_ms=latency,
            success=not failed,
            error_type=self.rng.choice(ERROR_TYPES) if failed else None,
            args=args,
            result=result,
            properties=None,
            ts_ms=ts,
            received_at_ms=ts + int(latency) + 150,
        )


def _uuid(rng: random.Random) -> str:
    hex32 = new_id(rng)
    return f"{hex32[:8]}-{hex32[8:12]}-4{hex32[13:16]}-a{hex32[17:20]}-{hex32[20:]}"


def timed_rows(events: int, end_ms: int, seed: int) -> Iterator[object]:
    """Every row of the data set in time order: visits and MCP sessions planned for a bit more than
    `events` events (the caller stops at `events`), each gateway's visitors its own."""
    rng = random.Random(seed)
    rows = Rows(rng)
    start_ms = end_ms - DAYS * DAY_MS
    pages = 1 + 1 / (math.exp(1 / 2.5) - 1)  # 1 + floor of an exponential with mean 2.5
    web_per_visit = 0.75 * 2 + pages * 1.3 + 0.1 * 1.55 + 0.012  # session start/end, pages and clicks, funnel, lead
    mcp_per_session = 2 + 1 / (math.exp(1 / 7) - 1)  # tools/list, then 1 + floor of an exponential with mean 7
    visits = arrival_times(rng, int(events * OVERSHOOT * (1 - MCP_SHARE) / web_per_visit), start_ms)
    sessions = arrival_times(rng, int(events * OVERSHOOT * MCP_SHARE / mcp_per_session), start_ms)
    arrivals = heapq.merge(((t, "web") for t in visits), ((t, "mcp") for t in sessions))
    populations = {DEMO_GATEWAY_ID: Population(), OTHER_GATEWAY_ID: Population()}
    pending: list[Timed] = []
    for start, kind in arrivals:
        while pending and pending[0][0] < start:
            yield heapq.heappop(pending)[2]
        gateway_id = OTHER_GATEWAY_ID if rng.random() < OTHER_SHARE else DEMO_GATEWAY_ID
        if kind == "web":
            made = rows.visit(gateway_id, populations[gateway_id].visitor(rng), start)
        else:
            made = rows.mcp_session(gateway_id, start)
        for item in made:
            if item[0] < end_ms:
                heapq.heappush(pending, item)
    while pending:
        yield heapq.heappop(pending)[2]


# --------------------------------------------------------------------------------------------------
# Writing through the store.
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Batches:
    """Rows waiting to go to the store, by write path; `flush` hands them over, `IN_FLIGHT` at a time."""

    store: SQLiteStore
    sessions: list[SessionRow] = field(default_factory=list)
    mcp: list[EventRow] = field(default_factory=list)
    web: list[EventRow] = field(default_factory=list)
    leads: list[LeadRecord] = field(default_factory=list)
    in_flight: list[asyncio.Task[None]] = field(default_factory=list)

    def add(self, row: object) -> bool:
        """Queue a row; True if it is an event."""
        if isinstance(row, EventRow):
            (self.mcp if row.source == "mcp" else self.web).append(row)
            return True
        if isinstance(row, SessionRow):
            self.sessions.append(row)
        elif isinstance(row, LeadRecord):
            self.leads.append(row)
        return False

    async def flush(self, *, full_only: bool) -> None:
        if len(self.mcp) >= BATCH_EVENTS or (not full_only and (self.mcp or self.sessions)):
            sessions, events, self.sessions, self.mcp = self.sessions, self.mcp, [], []
            await self._submit(self._capture(sessions, events))
        if len(self.web) >= BATCH_EVENTS or (not full_only and self.web):
            events, self.web = self.web, []
            await self._submit(self._capture_web(events))
        if len(self.leads) >= 100 or (not full_only and self.leads):
            leads, self.leads = self.leads, []
            await self._submit(self._book(leads))
        if not full_only:
            await asyncio.gather(*self.in_flight)
            self.in_flight.clear()

    async def _submit(self, write: Any) -> None:
        while len(self.in_flight) >= IN_FLIGHT:
            done, _ = await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            self.in_flight = [t for t in self.in_flight if t not in done]
        self.in_flight.append(asyncio.create_task(write))

    async def _capture(self, sessions: list[SessionRow], events: list[EventRow]) -> None:
        session_status, event_status = await self.store.capture(sessions, events)
        unstored = (set(session_status) | set(event_status)) - {"stored"}
        if unstored:
            raise RuntimeError(f"capture did not store every row: {sorted(unstored)}")

    async def _capture_web(self, events: list[EventRow]) -> None:
        results = await self.store.capture_web(events)
        if any(status != "stored" for status, _ in results):
            raise RuntimeError("capture_web did not store every event")

    async def _book(self, leads: list[LeadRecord]) -> None:
        outcomes = await asyncio.gather(*(self.store.book_lead(lead, dedupe_window_ms=0) for lead in leads))
        if not all(created for _, created in outcomes):
            raise RuntimeError("a generated lead was taken for a duplicate")


async def generate(path: Path, events: int, end_ms: int, seed: int = 7, progress: bool = True) -> float:
    """Write the data set into a new SQLite database at `path`; the events per second it took."""
    store = SQLiteStore(path)
    await store.open()
    try:
        gateways = GatewayDirectory(store, cache_seconds=0)
        await gateways.ensure_demo()
        await gateways.create(GatewayCreate(id=OTHER_GATEWAY_ID, name="Other gateway"))
        batches = Batches(store)
        written = 0
        started = time.perf_counter()
        for row in timed_rows(events, end_ms, seed):
            if batches.add(row):
                written += 1
                if written % BATCH_EVENTS == 0:
                    await batches.flush(full_only=True)
                    if progress and written % (BATCH_EVENTS * 40) == 0:
                        rate = written / (time.perf_counter() - started)
                        print(f"  {written:>11,} events  {rate:>8,.0f}/s", flush=True)
                if written >= events:
                    break
        await batches.flush(full_only=False)
        return written / (time.perf_counter() - started)
    finally:
        await store.close()


# --------------------------------------------------------------------------------------------------
# DuckDB: the same rows as plain columnar tables.
# --------------------------------------------------------------------------------------------------

TABLES: Final = {
    "events": "seq",
    "mcp_sessions": "seq",
    "leads": "created_at_ms",
}
"""The tables copied to DuckDB and the column each is copied in the order of."""
DUCKDB_TYPES: Final = {
    "INTEGER": "BIGINT",
    "BIGINT": "BIGINT",
    "DOUBLE PRECISION": "DOUBLE",
    "TEXT": "VARCHAR",
}
CSV_NULL: Final = "\\N"


def duckdb_connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never tries to download an extension and draws no progress bar."""
    connection = duckdb.connect(str(path), read_only=read_only, config={"autoinstall_known_extensions": False})
    connection.execute("SET enable_progress_bar = false")
    return connection


def copy_to_duckdb(sqlite_path: Path, duckdb_path: Path) -> float:
    """Copy `TABLES` into a new DuckDB file through CSV (DuckDB's sqlite scanner would need a download);
    the seconds it took."""
    started = time.perf_counter()
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    target = duckdb_connect(duckdb_path)
    try:
        for table, order in TABLES.items():
            columns = [(str(r[1]), str(r[2]).upper()) for r in source.execute(f"PRAGMA table_info({table})")]
            csv_path = duckdb_path.with_suffix(f".{table}.csv")
            with csv_path.open("w", newline="") as out:
                writer = csv.writer(out)
                cursor = source.execute(f"SELECT * FROM {table} ORDER BY {order}")
                while chunk := cursor.fetchmany(10_000):
                    writer.writerows([CSV_NULL if v is None else v for v in row] for row in chunk)
            types = {name: DUCKDB_TYPES.get(kind, "VARCHAR") for name, kind in columns}
            spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in types.items()) + "}"
            target.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv(?, header = false, columns = {spec},"
                f" nullstr = '{CSV_NULL}', quote = '\"', escape = '\"')",
                [str(csv_path)],
            )
            csv_path.unlink()
        target.execute("CHECKPOINT")
    finally:
        target.close()
        source.close()
    return time.perf_counter() - started


def count_rows(sqlite_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        counts: dict[str, int] = {}
        tables = [str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rollups = [name for name in tables if name.endswith("_rollups")]
        for table in (*TABLES, *rollups):
            for gateway_id, count in conn.execute(f"SELECT gateway_id, COUNT(*) FROM {table} GROUP BY gateway_id"):
                counts[f"{table}.{gateway_id}"] = int(count)
        return counts
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# The cache.
# --------------------------------------------------------------------------------------------------


def writer_digest() -> str:
    """A short hash of the store's write path (`mcp_gateway/store/*.py` but the migrations, which opening the
    cached file applies): a data set written by other code may lack what the writer now keeps."""
    package = Path(store_package.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        if path.name != "migrations.py":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def dataset_stem(events: int) -> str:
    return f"analytics-{events}-g{GENERATOR_VERSION}-w{writer_digest()}"


def cached_dataset(data_dir: Path, events: int) -> Dataset:
    """The data set of `events` events under `data_dir`: read from the cache, or generated and cached."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = dataset_stem(events)
    meta_path = data_dir / f"{stem}.json"
    sqlite_path = data_dir / f"{stem}.db"
    duckdb_path = data_dir / f"{stem}.duckdb"
    if meta_path.exists() and sqlite_path.exists() and duckdb_path.exists():
        return Dataset(sqlite_path=sqlite_path, duckdb_path=duckdb_path, **json.loads(meta_path.read_text()))
    for stale in data_dir.glob(f"{stem}.*"):
        stale.unlink()
    end_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    print(f"generating {events:,} events into {sqlite_path} (cached for later runs)", flush=True)
    started = time.perf_counter()
    rate = asyncio.run(generate(sqlite_path, events, end_ms))
    generate_s = time.perf_counter() - started
    print(f"loading the same rows into DuckDB ({duckdb_path})", flush=True)
    load_s = copy_to_duckdb(sqlite_path, duckdb_path)
    rows = count_rows(sqlite_path)
    newest = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        last_ts = int(newest.execute("SELECT MAX(ts_ms) FROM events").fetchone()[0])
    finally:
        newest.close()
    meta: dict[str, Any] = {
        "events": sum(v for k, v in rows.items() if k.startswith("events.")),
        "now_ms": last_ts + 1000,
        "rows": rows,
        "generate_s": round(generate_s, 1),
        "ingest_rate": round(rate),
        "sqlite_bytes": sum(p.stat().st_size for p in data_dir.glob(f"{stem}.db*")),
        "duckdb_load_s": round(load_s, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return Dataset(sqlite_path=sqlite_path, duckdb_path=duckdb_path, **meta)
