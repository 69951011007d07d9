"""No raw personal data at rest: a unique marker in every accepted field of every ingest route and MCP method,
then the database (SQLite file and write-ahead log, or every PostgreSQL row as text) and the logs are searched.

Markers: an email (`m<n>-<tag>@example.com`, searched by its unique local part, so a percent-encoded copy is
found too), a phone (searched by its digit groups, whatever separates them) and a plain marker under sensitive
keys and query parameters. A lead's own name, email, company and message are business data the leads table
keeps as given (DESIGN.md): they get markers of their own, checked with SQL to be in the leads table and in
no other table; and a read key sees the emails and phones in a lead's message masked.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import uuid
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from mcp.types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from .integrations_support import create_integration
from .support import (
    ADMIN_HEADERS,
    MODERN,
    LiveServer,
    create_key,
    database_bytes,
    database_url,
    jsonrpc_request,
    stored_rows,
)

OTHER_TABLES_QUERY: Final = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'leads'",
    "postgresql": "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'leads'",
}


class Markers:
    """Unique markers, each remembered with the field it was sent in."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self._count = itertools.count()
        self._random = random.Random(self.tag)
        self.sent: list[tuple[str, str, re.Pattern[bytes]]] = []
        """(field, marker as sent, what finds a raw copy of it in lower-cased bytes)."""

    def email(self, field: str) -> str:
        local = f"m{next(self._count)}-{self.tag}"
        self.sent.append((field, f"{local}@example.com", re.compile(re.escape(local.encode()))))
        return f"{local}@example.com"

    def phone(self, field: str, national: bool = False) -> str:
        digits = [f"{self._random.randrange(10**4):04d}" for _ in range(2)]
        phone = f"(415) {digits[0][:3]}-{digits[1]}" if national else f"+44 20 {digits[0]} {digits[1]}"
        groups = ["415", digits[0][:3], digits[1]] if national else ["44", "20", *digits]
        self.sent.append((field, phone, re.compile(rb"\D{0,4}".join(g.encode() for g in groups))))
        return phone

    def plain(self, field: str) -> str:
        marker = f"plain{next(self._count)}x{self.tag}"
        self.sent.append((field, marker, re.compile(marker.encode())))
        return marker

    def text(self, field: str) -> str:
        """Free text holding an email and a phone."""
        return f"Reach me at {self.email(field)} or {self.phone(field)}, or {self.phone(field, national=True)}."

    def properties(self, field: str) -> dict[str, Any]:
        """Custom data with markers under sensitive keys, nested, in free text and in a URL."""
        return {
            "email": self.email(f"{field}.email"),
            "phone": self.phone(f"{field}.phone"),
            "mobile": self.phone(f"{field}.mobile", national=True),
            "tel": self.phone(f"{field}.tel"),
            "password": self.plain(f"{field}.password"),
            "note": self.text(f"{field}.note"),
            "nested": {"msisdn": self.plain(f"{field}.nested.msisdn"), "items": [self.text(f"{field}.items")]},
            "page": self.url(f"{field}.page"),
            "plan": "pro",
        }

    def url(self, field: str) -> str:
        """A URL with markers in its path, sensitive query parameters (one percent-encoded) and fragment."""
        email, phone = self.email(f"{field}.path"), self.email(f"{field}.query")
        token, encoded = self.plain(f"{field}.token"), self.email(f"{field}.q").replace("@", "%40")
        return (
            f"https://shop.example/u/{email}/cart?email={phone}&token={token}&q={encoded}"
            f"&utm_campaign={self.email(field + '.campaign')}#access_token={self.plain(field + '.fragment')}"
        )

    def path(self, field: str) -> str:
        return f"/account/{self.email(field)}/orders?tel={self.phone(field).replace(' ', '%20')}"


def modern_meta(client_name: str) -> dict[str, Any]:
    return {
        PROTOCOL_VERSION_META_KEY: MODERN,
        CLIENT_INFO_META_KEY: {"name": client_name, "version": "1.0"},
        CLIENT_CAPABILITIES_META_KEY: {},
    }


class Lead:
    """A lead's own fields: business data, kept as given in the leads table only."""

    def __init__(self, tag: str, n: int) -> None:
        self.tag = tag
        self.name = f"Lead Person {n} {tag}"
        self.email = f"lead{n}-{tag}@example.com"
        self.company = f"Lead Company {n} {tag}"
        self.message_email = f"leadmsg{n}-{tag}@example.com"
        self.message_phone = f"+44 20 7946 {n:04d}"
        self.message = f"Lead message {n} {tag}: write to {self.message_email} or call {self.message_phone}"


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, (response.request.url, response.status_code, response.text[:500])
    return response.json()


async def send_web_routes(http: httpx.AsyncClient, m: Markers, lead: Lead) -> None:
    gid = {"X-Gateway-ID": "demo", "User-Agent": f"Mozilla/5.0 {m.email('user-agent')}"}

    def track_body(prefix: str) -> dict[str, Any]:
        return {
            "event_name": f"signup {m.email(prefix + '.event_name')}",
            "event_id": m.email(prefix + ".event_id"),
            "user": {
                "email": m.email(prefix + ".user.email"),
                "phone": m.phone(prefix + ".user.phone"),
                "external_id": m.email(prefix + ".user.external_id"),
                "fbp": m.email(prefix + ".user.fbp"),
                "fbc": m.email(prefix + ".user.fbc"),
                "client_user_agent": m.email(prefix + ".user.client_user_agent"),
            },
            "custom_data": m.properties(prefix + ".custom_data"),
            "url": m.url(prefix + ".url"),
            "referrer": m.url(prefix + ".referrer"),
            "anonymous_id": m.email(prefix + ".anonymous_id"),
            "session_id": m.email(prefix + ".session_id"),
        }

    await _ok(await http.post("/track", json=track_body("track"), headers=gid))
    batch = await _ok(await http.post("/track/batch", json={"events": [track_body("track_batch")]}, headers=gid))
    assert batch["results"][0]["status"] == "confirmed", batch

    def visit(prefix: str) -> dict[str, Any]:
        return {
            "visitor_id": m.email(prefix + ".visitor_id"),
            "session_id": m.email(prefix + ".session_id"),
            "url": m.url(prefix + ".url"),
            "referrer": m.url(prefix + ".referrer"),
            "properties": m.properties(prefix + ".properties"),
            "user": {
                "email": m.email(prefix + ".user.email"),
                "phone": m.phone(prefix + ".user.phone", national=True),
                "external_id": m.email(prefix + ".user.external_id"),
            },
        }

    started = await _ok(await http.post("/track/session/start", json=visit("session_start"), headers=gid))
    visit_session = {"session_id": started["session_id"]}  # a session the start made: others are 404 (seed 001)
    event = visit("event") | {"event_name": m.text("event.event_name"), "event_id": m.email("event.event_id")}
    await _ok(await http.post("/track/event", json=event | visit_session, headers=gid))
    item = visit("batch.item") | {"event_name": m.email("batch.event_name"), "event_id": m.email("batch.event_id")}
    batch_body = {"events": [item], "session_id": m.email("batch.session_id"), "visitor_id": m.email("batch.visitor")}
    await _ok(await http.post("/track/events/batch", json=batch_body, headers=gid))
    end = visit("session_end") | visit_session | {"duration_ms": 1000}
    await _ok(await http.post("/track/session/end", json=end, headers=gid))
    capture = visit("lead") | {
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "message": lead.message,
        "phone": m.phone("lead.phone"),
        "source": m.email("lead.source"),
        "project": m.text("lead.project"),
    }
    await _ok(await http.post("/lead.capture", json=capture, headers=gid))

    secret = {"Authorization": f"Bearer {await create_key(http, kind='sk')}"}
    v1 = {
        "event": m.email("v1.event"),
        "event_id": m.email("v1.event_id"),
        "anonymous_id": m.email("v1.anonymous_id"),
        "user_id": m.email("v1.user_id"),
        "session_id": m.email("v1.session_id"),
        "url": m.url("v1.url"),
        "path": m.path("v1.path"),
        "referrer": m.url("v1.referrer"),
        "properties": m.properties("v1.properties"),
    }
    await _ok(await http.post("/v1/track", json=v1, headers=secret))


async def send_capture_routes(http: httpx.AsyncClient, m: Markers) -> None:
    org = {"X-Org-Id": await create_key(http, kind="org")}

    def session(prefix: str) -> dict[str, Any]:
        return {
            "session_id": str(uuid.uuid4()),
            "client_config": m.email(prefix + ".client_config"),
            "connection_type": m.phone(prefix + ".connection_type"),
            "tools": [m.email(prefix + ".tools")],
            "user_data": m.properties(prefix + ".user_data"),
            "transport": m.phone(prefix + ".transport", national=True),
        }

    def event(prefix: str, session_id: str) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "primitive_type": "resource",
            "primitive_name": m.url(prefix + ".primitive_name"),
            "latency": 1.5,
            "success": False,
            "args": json.dumps(m.properties(prefix + ".args")),
            "result": m.text(prefix + ".result"),
            "event_id": m.email(prefix + ".event_id"),
            "error_type": m.text(prefix + ".error_type")[:128],
        }

    first = session("capture_session")
    await _ok(await http.post("/api/v1/capture-session", json=first, headers=org))
    await _ok(await http.post("/api/v1/capture-event", json=event("capture_event", first["session_id"]), headers=org))
    second = session("capture_batch.session")
    batch = {"sessions": [second], "events": [event("capture_batch.event", second["session_id"])]}
    await _ok(await http.post("/api/v1/capture-batch", json=batch, headers=org))


async def send_mcp_methods(http: httpx.AsyncClient, m: Markers, lead: Lead) -> None:
    meta = modern_meta(f"agent {m.email('mcp.client_name')}")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("tools/call", {"name": "book_demo", "arguments": lead_arguments(lead)}),
        ("tools/call", {"name": "book_demo", "arguments": {"name": " ", "email": m.email("mcp.refused_email")}}),
        ("tools/call", {"name": "no_such_tool", "arguments": m.properties("mcp.tools_call")}),
        ("resources/read", {"uri": m.url("mcp.resource_uri")}),
        ("resources/read", {"uri": f"docs://{m.email('mcp.resource_host')}/x"}),
        ("resources/read", {"uri": f"pricing://current?phone={m.phone('mcp.resource_phone').replace(' ', '')}"}),
        ("prompts/get", {"name": "recommend_plan", "arguments": {"needs": m.text("mcp.prompt_argument")}}),
    ]
    headers = {"MCP-Protocol-Version": MODERN}
    for index, (method, params) in enumerate(calls, start=1):
        message = jsonrpc_request(method, {**params, "_meta": meta}, index)
        response = await http.post("/v1/mcp/sse?gid=demo", json=message, headers=headers)
        assert response.status_code in (200, 400), (method, response.text)  # 400: an unknown resource's error
        assert response.json()["id"] == index


def lead_arguments(lead: Lead) -> dict[str, str]:
    return {"name": lead.name, "email": lead.email, "company": lead.company, "message": lead.message}


def leaked(m: Markers, haystack: bytes) -> list[tuple[str, str]]:
    """The (field, marker) pairs whose marker is in `haystack`, raw."""
    lowered = haystack.lower()
    return [(field, marker) for field, marker, pattern in m.sent if pattern.search(lowered)]


def other_tables_text(db_path: Path) -> str:
    """Every row of every table but `leads`, as text."""
    dialect = "postgresql" if database_url() else "sqlite"
    tables = [row["name"] for row in stored_rows(db_path, OTHER_TABLES_QUERY[dialect])]
    return "\n".join(str(row) for table in tables for row in stored_rows(db_path, f'SELECT * FROM "{table}"'))


async def test_no_marker_sent_to_any_route_lands_raw_in_the_database_or_the_logs(
    live_server: LiveServer, live_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    m = Markers()
    web_lead, agent_lead = Lead(m.tag, 1), Lead(m.tag, 2)
    # An enabled integration, so each event also stores a delivery payload (fbp, fbc, user agent); nothing listens
    # at its endpoint, so the deliveries stay in the outbox to be read.
    meta = {"pixel_id": "1234567890", "access_token": "tok", "endpoint": "http://127.0.0.1:9"}
    await create_integration(live_http, {"kind": "meta", "config": meta})
    await send_web_routes(live_http, m, web_lead)
    await send_capture_routes(live_http, m)
    await send_mcp_methods(live_http, m, agent_lead)
    assert await live_server.app.state.services.tracking_sink.flush(10.0)

    assert len(m.sent) > 150
    assert leaked(m, database_bytes(live_server.db_path)) == []
    assert leaked(m, caplog.text.encode()) == []

    leads = {row["email"]: row for row in stored_rows(live_server.db_path, "SELECT * FROM leads")}
    others = other_tables_text(live_server.db_path).lower()
    for lead in (web_lead, agent_lead):
        assert (leads[lead.email]["name"], leads[lead.email]["company"]) == (lead.name, lead.company)
        assert leads[lead.email]["message"] == lead.message
        own = [lead.name, lead.email, lead.company, lead.message, lead.message_email, lead.message_phone]
        assert [text for text in own if text.lower() in others] == []
        assert [text for text in own if text.lower() in caplog.text.lower()] == []


async def test_a_read_key_sees_emails_and_phones_in_lead_messages_masked_and_the_admin_sees_them(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    lead = Lead(uuid.uuid4().hex[:10], 3)
    arguments = {"name": lead.name, "email": lead.email, "message": lead.message}
    message = jsonrpc_request("tools/call", {"name": "book_demo", "arguments": arguments})
    assert (await live_http.post("/v1/mcp/sse?gid=demo", json=message)).status_code == 200

    read = {"Authorization": f"Bearer {await create_key(live_http, kind='read')}"}
    listed = (await _ok(await live_http.get("/analytics/leads", headers=read)))["leads"]
    [shown] = [item for item in listed if item["name"] == lead.name]
    detail = await _ok(await live_http.get(f"/analytics/leads/{shown['id']}", headers=read))
    for masked in (shown["message"], json.dumps(detail)):
        assert lead.message_email not in masked and lead.message_phone not in masked
        assert lead.email not in masked
    assert shown["message"] == f"Lead message 3 {lead.tag}: write to l•••@example.com or call •••03"

    admin = await _ok(await live_http.get("/v1/gateways/demo/leads", headers=ADMIN_HEADERS))
    [full] = [item for item in admin["leads"] if item["name"] == lead.name]
    assert (full["email"], full["message"]) == (lead.email, lead.message)
