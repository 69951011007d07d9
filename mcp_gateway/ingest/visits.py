"""Seed 001's browser tracking API: sessions, events, engagement, lead capture and `tracker.js`.

    POST /track/session/start  SessionStart   -> 200 {"session_id", "visitor_id", "timestamp", "status"}
    POST /track/event          SessionEventIn -> 200 same, plus "event_id"
    POST /track/events/batch   EventBatch     -> 200 the first three, "results": [{"event_id", "session_id", "status"}]
    POST /track/session/end    SessionEnd     -> 200 same, plus "engagement_score" and "duration_ms"
    POST /lead.capture         LeadCapture    -> 200 {"lead_id", "status", "session_id", "visitor_id", "timestamp"}
    POST /lead, POST /         deprecated aliases of /lead.capture: its answer, plus `Deprecation`, `Sunset`, `Link`
    GET  /tracker.js, /v1/tracker.js, /form.js, /pulse.js  -> the browser scripts (`scripts.py`)

The answers are the TypedDicts below (`SessionStarted`, ...), which `operations()` documents.

No authentication: the gateway is named by `X-Gateway-ID` or `?gid=` (missing -> 400, unknown ->
404 `{"error": "Gateway Not Configured"}`). Every route answers CORS preflights and carries the
seed's CORS headers (`web.cors_route`). `timestamp` is milliseconds since the epoch.

**Visitor id** (seed 001: a SHA-256 hash): the body's `visitor_id` (or `anonymous_id`), else the
`X-Visitor-ID` header, else the `X-Fingerprint-ID` header, each stored and answered as its SHA-256 like
every other identifier (kept as sent when it already is 64 hex digits, as this API answers it, so a
browser sending back the `visitor_id` it was given keeps it); with none of them,
`sha256(daily-salted IP hash | user agent)`: stable for a browser within a UTC day, never the raw IP.

**Beacons**: `/track/session/end` also reads a `text/plain` body as JSON: what `navigator.sendBeacon` sends
without a CORS preflight, which a JSON beacon needs and the seed's `Access-Control-Allow-Origin: *` refuses.

**Sessions**: `/track/event` and `/track/session/end` name a session `/track/session/start` started;
an unknown `session_id` is 404 `{"error": ..., "field": "session_id"}` (the batch route takes any).

**Rate limits**: per client IP and route, fixed one-minute windows, `RATE_LIMITS` (the seed's
numbers; `/lead.capture` is ours). Over the limit -> 429 `{"error", "retry_after"}` with
`Retry-After`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

**Engagement score** (`engagement_score`, 0-100, stored in `$session_end`'s properties):
40 points for time on site (linear up to 5 minutes), 20 for page views (linear up to 5), 20 for
scroll depth (percent of the page, 0-100) and 20 for clicks (linear up to 10). Fields not sent
count 0; without `duration_ms` the time since the session's `$session_start` is used.

Identities (`user.email`, `user.phone`, `user.external_id`, a lead's email and phone) are stored
only as hashes by `WebIngestor`; the store redacts the rest (`store/redaction.py`: sensitive keys in
`properties`, sensitive query parameters in URLs, emails and phones anywhere).
A lead is business data: `store.book_lead` keeps its email as given, like `book_demo`'s.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from ..errors import InvalidInputError
from ..gateways import GatewayDirectory
from ..leads import MAX_COMPANY, MAX_EMAIL, MAX_MESSAGE, MAX_NAME, book_lead
from ..openapi import GATEWAY_PARAMS, Operation, Param
from ..privacy import IpHasher
from ..ratelimit import Verdict, limiter_for
from ..store import CaptureStatus, Store
from ..vocabulary import LEAD, SESSION_END, SESSION_START, lead_event_id
from ..web import CLIENT_ERRORS, ApiError, client_error, cors_route, read_model, request_gateway
from .scripts import BrowserScript
from .web import MAX_TIMESTAMP, WebEvent, WebIngestor, timestamp_ms

RATE_LIMITS: Final[dict[str, tuple[int, float]]] = {
    "session_start": (10, 60.0),
    "session_end": (10, 60.0),
    "event": (120, 60.0),
    "batch": (30, 60.0),
    "lead": (10, 60.0),
}
"""Requests allowed per client IP per window: route -> (limit, window seconds). Seed 001, plus `lead`."""

MAX_BATCH: Final = 100
MAX_ID: Final = 128
MAX_NAME_CHARS: Final = 200
MAX_URL_INPUT: Final = 8192
"""Longest URL accepted; the store keeps the first `privacy.MAX_URL_CHARS` characters, redacted."""
BATCH_BODY_FACTOR: Final = 8


VISITOR_HEADER: Final = "X-Visitor-ID"
FINGERPRINT_HEADER: Final = "X-Fingerprint-ID"
_HASHED: Final = re.compile(r"[0-9a-f]{64}")

BEACON_CONTENT_TYPE: Final = "text/plain"
"""What `navigator.sendBeacon` sends a string as; `/track/session/end` reads it as JSON (pulse.js ends visits so)."""

LEAD_ALIASES: Final = ("/lead", "/")
"""Seed 001's deprecated paths of `/lead.capture`, answered like it until the seed's sunset."""
LEAD_ALIAS_HEADERS: Final = {
    "Deprecation": "@1735689600",  # RFC 9745: deprecated since 2025-01-01, before this gateway served them
    "Sunset": "Mon, 01 Jun 2026 00:00:00 GMT",  # RFC 8594: seed 001's sunset date
    "Link": '</lead.capture>; rel="successor-version"',
}
"""What an answer on a deprecated lead path adds: when it was deprecated, when it goes, and what replaces it."""

# -- bodies -------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TrackUser(_Body):
    """Seed 000's user object, the identifiers this API hashes."""

    email: str | None = Field(default=None, max_length=MAX_EMAIL)
    phone: str | None = Field(default=None, max_length=64)
    external_id: str | None = Field(default=None, max_length=MAX_ID)


class _Visit(_Body):
    visitor_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID, validation_alias=AliasChoices("visitor_id", "anonymous_id")
    )
    session_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    url: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    referrer: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    properties: dict[str, Any] | None = None
    timestamp: float | None = Field(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP,
        allow_inf_nan=False,
        description="Seconds or milliseconds since the epoch.",
    )
    user: TrackUser | None = None


class SessionStart(_Visit):
    url: str = Field(min_length=1, max_length=MAX_URL_INPUT)


class TrackEventIn(_Visit):
    """An event of a batch: without a `session_id`, the batch's applies."""

    event_name: str = Field(
        min_length=1, max_length=MAX_NAME_CHARS, validation_alias=AliasChoices("event_name", "name")
    )
    event_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)


class SessionEventIn(TrackEventIn):
    """The body of `POST /track/event`: an event alone names its session."""

    session_id: str = Field(min_length=1, max_length=MAX_ID)


class EventBatch(_Body):
    events: list[TrackEventIn] = Field(min_length=1, max_length=MAX_BATCH)
    session_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    """Applies to events that name no session of their own."""
    visitor_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID, validation_alias=AliasChoices("visitor_id", "anonymous_id")
    )


class SessionEnd(_Visit):
    session_id: str = Field(min_length=1, max_length=MAX_ID)
    duration_ms: int | None = Field(default=None, ge=0, le=7 * 24 * 3600 * 1000)
    page_views: int | None = Field(default=None, ge=0, le=1_000_000)
    scroll_depth: float | None = Field(default=None, ge=0, le=100, description="Deepest scroll, percent of the page.")
    clicks: int | None = Field(default=None, ge=0, le=1_000_000)


class LeadCapture(_Visit):
    email: str = Field(max_length=MAX_EMAIL)
    name: str | None = Field(default=None, max_length=MAX_NAME)
    company: str | None = Field(default=None, max_length=MAX_COMPANY)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE)
    phone: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    """Where the form sits (`pricing-page`, ...); the lead's own source is always `web`."""
    project: str | None = Field(default=None, max_length=MAX_NAME_CHARS)


# -- answers ------------------------------------------------------------------------------------------


class VisitAnswer(TypedDict):
    session_id: str | None
    visitor_id: str
    timestamp: int
    """When the gateway answered, ms since the epoch."""


class SessionStarted(VisitAnswer):
    status: CaptureStatus


class EventTracked(VisitAnswer):
    event_id: str
    status: CaptureStatus


class BatchItemTracked(TypedDict):
    event_id: str
    session_id: str | None
    status: CaptureStatus


class BatchTracked(VisitAnswer):
    results: list[BatchItemTracked]


class SessionEnded(VisitAnswer):
    engagement_score: float
    duration_ms: int | None
    status: CaptureStatus


class LeadCaptured(VisitAnswer):
    lead_id: str
    status: Literal["created", "duplicate"]


# -- helpers ------------------------------------------------------------------------------------------


def engagement_score(
    duration_ms: int | None, page_views: int | None = None, scroll_depth: float | None = None, clicks: int | None = None
) -> float:
    """0-100: 40 for time (to 5 min), 20 for page views (to 5), 20 for scroll depth (%), 20 for clicks (to 10)."""
    score = 40 * min((duration_ms or 0) / 300_000, 1.0)
    score += 20 * min((page_views or 0) / 5, 1.0)
    score += 20 * min((scroll_depth or 0) / 100, 1.0)
    score += 20 * min((clicks or 0) / 10, 1.0)
    return round(score, 1)


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _path(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


class VisitRoutes:
    def __init__(
        self,
        directory: GatewayDirectory,
        ingestor: WebIngestor,
        store: Store,
        hash_ip: IpHasher,
        *,
        max_body_bytes: int,
        rate_limits: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        self._directory = directory
        self._ingestor = ingestor
        self._store = store
        self._hash_ip = hash_ip
        self._max_body_bytes = max_body_bytes
        limits = {**RATE_LIMITS, **(rate_limits or {})}
        self._limiters = {
            route: limiter_for(store, limit, seconds, name=f"visits:{route}")
            for route, (limit, seconds) in limits.items()
        }
        self._tracker_js = BrowserScript("tracker.js")
        self._form_js = BrowserScript("form-capture.js", "form.js")
        self._pulse_js = BrowserScript("form-capture.js", "pulse.js")

    def routes(self) -> list[BaseRoute]:
        return [
            cors_route("/track/session/start", self.session_start, ["POST"]),
            cors_route("/track/event", self.event, ["POST"]),
            cors_route("/track/events/batch", self.batch, ["POST"]),
            cors_route("/track/session/end", self.session_end, ["POST"]),
            cors_route("/lead.capture", self.lead_capture, ["POST"]),
            *(cors_route(path, self.deprecated_lead_capture, ["POST"]) for path in LEAD_ALIASES),
            cors_route("/tracker.js", self._tracker_js.serve, ["GET"]),
            cors_route("/v1/tracker.js", self._tracker_js.serve, ["GET"]),
            cors_route("/form.js", self._form_js.serve, ["GET"]),
            cors_route("/pulse.js", self._pulse_js.serve, ["GET"]),
        ]

    def operations(self) -> list[Operation]:
        errors = (400, 404, 413, 415, 429)

        header_id = Annotated[str, Field(max_length=MAX_ID)]
        visitor_headers = (
            Param(
                VISITOR_HEADER, "header", "The visitor's id when the body has none (stored as its SHA-256)", header_id
            ),
            Param(FINGERPRINT_HEADER, "header", "A browser fingerprint: the visitor's id when none is sent", header_id),
        )

        def visit(path: str, summary: str, body: type[_Body], response: Any, *, deprecated: bool = False) -> Operation:
            return Operation(
                "POST",
                path,
                summary,
                "tracking",
                body=body,
                response=response,
                params=(*GATEWAY_PARAMS, *visitor_headers),
                errors=errors,
                description="Deprecated: use POST /lead.capture (sunset 2026-06-01)." if deprecated else "",
            )

        return [
            visit("/track/session/start", "Start a visit: a session and its visitor", SessionStart, SessionStarted),
            visit("/track/event", "Record one event of a session", SessionEventIn, EventTracked),
            visit("/track/events/batch", "Record up to 100 events of a session", EventBatch, BatchTracked),
            visit("/track/session/end", "End a visit with its engagement", SessionEnd, SessionEnded),
            visit("/lead.capture", "Capture a lead from a form", LeadCapture, LeadCaptured),
            *(
                visit(path, "Capture a lead (deprecated alias)", LeadCapture, LeadCaptured, deprecated=True)
                for path in LEAD_ALIASES
            ),
            self._tracker_js.operation("/tracker.js", "The browser tracking SDK"),
            self._tracker_js.operation("/v1/tracker.js", "The browser tracking SDK"),
            self._form_js.operation("/form.js", "The form capture script: submitted forms become leads"),
            self._pulse_js.operation("/pulse.js", "The visit tracker and form capture script (PulseGate)"),
        ]

    # -- shared steps ---------------------------------------------------------------------------------

    async def _limit(self, request: Request, route: str) -> Verdict:
        ip = request.client.host if request.client else "unknown"
        return (await self._limiters[route].hit(ip)).enforce()

    async def _gateway_id(self, request: Request) -> str:
        return (await request_gateway(request, self._directory)).id

    def _visitor_id(self, request: Request, given: str | None) -> str:
        """The visitor's id as stored and answered: a hash of the one supplied, else derived (module docstring)."""
        for name, value in (
            ("visitor_id", given),
            (VISITOR_HEADER, request.headers.get(VISITOR_HEADER)),
            (FINGERPRINT_HEADER, request.headers.get(FINGERPRINT_HEADER)),
        ):
            value = (value or "").strip()
            if len(value) > MAX_ID:
                raise ApiError(400, f"Invalid {name}: at most {MAX_ID} characters", field=name)
            if value:
                return value if _HASHED.fullmatch(value) else hashlib.sha256(value.encode()).hexdigest()
        ip = request.client.host if request.client else ""
        ip_hash = (self._hash_ip(ip) or "") if ip else ""
        agent = request.headers.get("user-agent", "")
        return hashlib.sha256(f"{ip_hash}|{agent}".encode()).hexdigest()

    def _event(
        self,
        request: Request,
        name: str,
        body: _Visit,
        *,
        visitor_id: str,
        session_id: str | None,
        event_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> WebEvent:
        user = body.user or TrackUser()
        properties = dict(body.properties or {})
        properties.update(extra or {})
        return WebEvent(
            name=name,
            source="web",
            event_id=event_id,
            ts_ms=timestamp_ms(body.timestamp),
            anonymous_id=visitor_id,
            session_id=session_id,
            url=_clean(body.url),
            path=_path(_clean(body.url)),
            referrer=_clean(body.referrer),
            properties=properties or None,
            email=_clean(user.email),
            phone=_clean(user.phone),
            external_id=_clean(user.external_id),
            client_ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )

    async def _started_at_ms(self, gateway_id: str, session_id: str) -> int:
        """When `/track/session/start` started the session; 404 in the seed's shape if it never did."""
        start = await self._store.get_event(gateway_id, f"ss_{session_id}")
        if start is None:
            raise ApiError(404, "Unknown session_id: start it with POST /track/session/start", field="session_id")
        return start.ts_ms

    @staticmethod
    def _answer(verdict: Verdict, body: VisitAnswer) -> JSONResponse:
        return JSONResponse(body, headers=verdict.headers())

    # -- routes ---------------------------------------------------------------------------------------

    async def session_start(self, request: Request) -> JSONResponse:
        verdict = await self._limit(request, "session_start")
        gateway_id = await self._gateway_id(request)
        body = await read_model(request, SessionStart, limit=self._max_body_bytes)
        visitor_id = self._visitor_id(request, body.visitor_id)
        session_id = body.session_id or str(uuid.uuid4())
        event = self._event(
            request, SESSION_START, body, visitor_id=visitor_id, session_id=session_id, event_id=f"ss_{session_id}"
        )
        [(status, _)] = await self._ingestor.capture(gateway_id, [event])
        answer = SessionStarted(session_id=session_id, visitor_id=visitor_id, timestamp=_now_ms(), status=status)
        return self._answer(verdict, answer)

    async def event(self, request: Request) -> JSONResponse:
        verdict = await self._limit(request, "event")
        gateway_id = await self._gateway_id(request)
        body = await read_model(request, SessionEventIn, limit=self._max_body_bytes)
        visitor_id = self._visitor_id(request, body.visitor_id)
        await self._started_at_ms(gateway_id, body.session_id)
        event = self._event(
            request, body.event_name, body, visitor_id=visitor_id, session_id=body.session_id, event_id=body.event_id
        )
        [(status, row)] = await self._ingestor.capture(gateway_id, [event])
        answer = EventTracked(
            session_id=row.session_id, visitor_id=visitor_id, timestamp=_now_ms(), event_id=row.id, status=status
        )
        return self._answer(verdict, answer)

    async def batch(self, request: Request) -> JSONResponse:
        verdict = await self._limit(request, "batch")
        gateway_id = await self._gateway_id(request)
        body = await read_model(request, EventBatch, limit=self._max_body_bytes * BATCH_BODY_FACTOR)
        visitor_id = self._visitor_id(request, body.visitor_id)
        events = []
        for index, item in enumerate(body.events):
            session_id = item.session_id or body.session_id
            if not session_id:
                field = f"events.{index}.session_id"
                raise ApiError(400, f"Invalid {field}: Field required", field=field)
            events.append(
                self._event(
                    request,
                    item.event_name,
                    item,
                    visitor_id=self._visitor_id(request, item.visitor_id) if item.visitor_id else visitor_id,
                    session_id=session_id,
                    event_id=item.event_id,
                )
            )
        outcome = await self._ingestor.capture(gateway_id, events)
        results = [
            BatchItemTracked(event_id=row.id, session_id=row.session_id, status=status) for status, row in outcome
        ]
        answer = BatchTracked(session_id=body.session_id, visitor_id=visitor_id, timestamp=_now_ms(), results=results)
        return self._answer(verdict, answer)

    async def session_end(self, request: Request) -> JSONResponse:
        verdict = await self._limit(request, "session_end")
        gateway_id = await self._gateway_id(request)
        beacon = request.headers.get("content-type", "").lower().startswith(BEACON_CONTENT_TYPE)
        body = await read_model(request, SessionEnd, limit=self._max_body_bytes, strict_content_type=not beacon)
        visitor_id = self._visitor_id(request, body.visitor_id)
        started_ms = await self._started_at_ms(gateway_id, body.session_id)
        duration_ms = body.duration_ms
        if duration_ms is None:
            duration_ms = max(0, (timestamp_ms(body.timestamp) or _now_ms()) - started_ms)
        score = engagement_score(duration_ms, body.page_views, body.scroll_depth, body.clicks)
        engagement = {
            "duration_ms": duration_ms,
            "page_views": body.page_views,
            "scroll_depth": body.scroll_depth,
            "clicks": body.clicks,
            "engagement_score": score,
        }
        event = self._event(
            request,
            SESSION_END,
            body,
            visitor_id=visitor_id,
            session_id=body.session_id,
            event_id=f"se_{body.session_id}",
            extra={key: value for key, value in engagement.items() if value is not None},
        )
        [(status, row)] = await self._ingestor.capture(gateway_id, [event])
        stored_score = (row.properties or {}).get("engagement_score", score)
        answer = SessionEnded(
            session_id=body.session_id,
            visitor_id=visitor_id,
            timestamp=_now_ms(),
            engagement_score=stored_score,
            duration_ms=duration_ms,
            status=status,
        )
        return self._answer(verdict, answer)

    async def lead_capture(self, request: Request) -> JSONResponse:
        verdict = await self._limit(request, "lead")
        gateway_id = await self._gateway_id(request)
        body = await read_model(request, LeadCapture, limit=self._max_body_bytes)
        try:
            lead, created = await book_lead(
                self._store,
                gateway_id,
                name=body.name,
                email=body.email,
                company=body.company,
                message=body.message,
                source="web",
            )
        except InvalidInputError as exc:
            raise ApiError(400, str(exc), field=exc.field) from None
        visitor_id = self._visitor_id(request, body.visitor_id)
        email = lead.email
        user = TrackUser(email=email, phone=body.phone, external_id=body.user.external_id if body.user else None)
        extra = {"lead_id": lead.id, "form_source": _clean(body.source), "project": _clean(body.project)}
        event = self._event(
            request,
            LEAD,
            body.model_copy(update={"user": user}),
            visitor_id=visitor_id,
            session_id=body.session_id,
            event_id=lead_event_id(lead.id),
            extra={key: value for key, value in extra.items() if value is not None},
        )
        [(_, row)] = await self._ingestor.capture(gateway_id, [event])
        answer = LeadCaptured(
            session_id=row.session_id,
            visitor_id=visitor_id,
            timestamp=_now_ms(),
            lead_id=lead.id,
            status="created" if created else "duplicate",
        )
        return self._answer(verdict, answer)

    async def deprecated_lead_capture(self, request: Request) -> JSONResponse:
        """`POST /lead` and `POST /`: `/lead.capture`'s answer, errors included, with the deprecation headers."""
        try:
            response = await self.lead_capture(request)
        except CLIENT_ERRORS as exc:
            refused = client_error(exc)
            refused.headers.update(LEAD_ALIAS_HEADERS)
            if refused is exc:
                raise
            raise refused from exc
        response.headers.update(LEAD_ALIAS_HEADERS)
        return response
