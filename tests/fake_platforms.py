"""Fake Meta, GA4, TikTok and webhook endpoints: one real HTTP server on loopback that checks each request
against the platform's documented schema and answers the way the platform does, error bodies included.

Use::

    with serve_fake_platforms() as fakes:
        config = {"pixel_id": fakes.META_PIXEL, "access_token": fakes.META_TOKEN, "endpoint": fakes.base_url}
        ...send requests...
        assert fakes.meta.accepted_events() == [...]

``fakes`` (a :class:`FakePlatforms`) holds one :class:`FakeEndpoint` per platform: ``fakes.meta``, ``fakes.ga4``
(``/mp/collect`` and ``/debug/mp/collect``), ``fakes.tiktok`` and ``fakes.webhook``. Each records every request
it got, in order, in ``requests`` (a :class:`Received`: path, query, headers, raw body, parsed JSON, the status
and body answered, ``problems``: what the schema check found, and ``warnings``: what the platform accepts but
advises against). Its controls, safe to call from the test's
thread while the server runs:

- ``fail(times, mode="server", retry_after=None)``: the next ``times`` requests fail the platform's way.
  ``mode`` is ``"server"`` (5xx / TikTok code 50000 / Meta code 2, transient), ``"throttle"`` (HTTP 429 for GA4
  and the webhook, Meta code 17 on HTTP 400, TikTok code 40100 on HTTP 200) or ``"permanent"`` (HTTP 400 /
  Meta code 100 / TikTok code 40002); ``retry_after`` adds a ``Retry-After`` header (seconds).
- ``slow(seconds)``: every answer waits that long first (a worker's timeout test); ``slow(0)`` stops it.
- ``recover()``: no more failures or slowness.
- ``accepted_events()``: the events of every request answered as a success (Meta ``data[]``, GA4 ``events[]``
  with the request's ``client_id`` added, TikTok ``data[]``, the webhook's ``data[]``), in arrival order;
  duplicates stay, so a test can count redeliveries.

What each fake checks (and answers when a check fails):

- **Meta** ``POST /{version}/{pixel_id}/events``: the pixel and ``access_token`` (code 190 otherwise); ``data``
  a list of 1 to 1,000 events; ``event_name``, ``event_id`` strings; ``event_time`` integer seconds, not more
  than 7 days old nor in the future; ``action_source`` from Meta's list; ``user_data`` with at least one
  identifier, ``em``/``ph``/``external_id`` lists of SHA-256 hex; ``custom_data`` an object. A ``website``
  event without ``event_source_url`` and ``client_user_agent`` (required, says Meta, yet taken) is accepted and
  noted in ``warnings``. A failed check answers HTTP 400 ``{"error": {"message", "type": "OAuthException",
  "code": 100, "error_subcode", "error_user_msg", "fbtrace_id"}}``; success ``{"events_received", "messages",
  "fbtrace_id"}``.
- **GA4** ``POST /mp/collect``: always 204, like GA4, even when the checks fail (the problems are recorded
  and the request is not counted as accepted); ``POST /debug/mp/collect``: 200 ``{"validationMessages": [...]}``.
  Checks: ``measurement_id`` and ``api_secret``; ``client_id``; ``events`` 1 to 25; names and parameter names
  (40 characters, letters/digits/underscores from a letter, not reserved); at most 25 parameters; values at most
  100 characters (``page_location`` 1,000); ``timestamp_micros`` at most 72 hours old; the body at most 130 kB.
- **TikTok** ``POST /open_api/v1.3/event/track/``: the ``Access-Token`` header (code 40105 otherwise);
  ``event_source: "web"``; ``event_source_id`` the pixel; ``data`` 1 to 1,000 events with ``event``,
  integer-second ``event_time``, ``user`` ``email``/``phone``/``external_id`` SHA-256 hex. Every answer is HTTP
  200 with ``{"code", "message", "request_id", "data"}``; a failed check is code 40002.
- **Webhook** ``POST /webhook``: the Standard Webhooks signature with ``WEBHOOK_SECRET`` (401 otherwise), the
  body ``{"type", "timestamp", "data": [...]}``; a ``webhook-id`` seen before is answered 200 and counted in
  ``duplicates`` but not accepted again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_gateway.integrations.platforms.webhook import WebhookVerificationError, verify_webhook

from .support import STARTUP_TIMEOUT

META_PIXEL: Final = "1234567890"
META_TOKEN: Final = "meta-test-token"
GA4_MEASUREMENT_ID: Final = "G-TEST1234"
GA4_SECRET: Final = "ga4-test-secret"
TIKTOK_PIXEL: Final = "CTESTPIXEL0123"
TIKTOK_TOKEN: Final = "tiktok-test-token"
WEBHOOK_SECRET: Final = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

META_ACTION_SOURCES: Final = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
_HASH: Final = re.compile(r"[0-9a-f]{64}")
GA4_MAX_BODY: Final = 130_000
_GA4_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_GA4_RESERVED_PREFIXES: Final = ("_", "firebase_", "ga_", "google_", "gtag.")
_GA4_RESERVED_EVENTS: Final = frozenset(
    {"ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure", "app_background",
     "app_clear_data", "app_exception", "app_remove", "app_store_refund", "app_update", "app_upgrade", "error",
     "first_open", "first_visit", "in_app_purchase", "notification_dismiss", "notification_foreground",
     "notification_open", "notification_receive", "os_update", "session_start", "screen_view", "user_engagement"}
)  # fmt: skip
"""A copy of GA4's documented rules, kept apart from the adapter's so that a mistake in one shows up."""


def _ga4_name_problem(name: str, reserved: frozenset[str]) -> str | None:
    if not _GA4_NAME.fullmatch(name):
        return "NAME_INVALID: at most 40 letters, digits or underscores, starting with a letter"
    if name in reserved or name.startswith(_GA4_RESERVED_PREFIXES):
        return "NAME_RESERVED"
    return None


@dataclass
class Received:
    """One request a fake got, and what it answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    json: Any
    status: int = 0
    answer: Any = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    accepted: bool = False


@dataclass
class _Failure:
    times: int
    mode: str
    retry_after: float | None


class FakeEndpoint:
    """One fake platform's record and controls (module docstring)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.requests: list[Received] = []
        self.duplicates = 0
        self._lock = threading.Lock()
        self._failure: _Failure | None = None
        self._delay_s = 0.0
        self._seen_ids: set[str] = set()

    def fail(self, times: int, mode: str = "server", retry_after: float | None = None) -> None:
        if mode not in ("server", "throttle", "permanent"):
            raise ValueError(f"unknown failure mode {mode!r}")
        with self._lock:
            self._failure = _Failure(times, mode, retry_after)

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._delay_s = seconds

    def recover(self) -> None:
        with self._lock:
            self._failure = None
            self._delay_s = 0.0

    def accepted_events(self) -> list[dict[str, Any]]:
        with self._lock:
            received = [r for r in self.requests if r.accepted]
        events: list[dict[str, Any]] = []
        for request in received:
            if self.kind == "ga4":
                events.extend({**event, "client_id": request.json["client_id"]} for event in request.json["events"])
            else:
                events.extend(request.json["data"])
        return events

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None or failure.times <= 0:
                return None
            failure.times -= 1
            return failure

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def _first_time(self, message_id: str) -> bool:
        with self._lock:
            if message_id in self._seen_ids:
                self.duplicates += 1
                return False
            self._seen_ids.add(message_id)
            return True


class FakePlatforms:
    """The running fakes: ``base_url`` is every adapter's ``endpoint`` (and ``webhook_url`` the webhook's url)."""

    META_PIXEL = META_PIXEL
    META_TOKEN = META_TOKEN
    GA4_MEASUREMENT_ID = GA4_MEASUREMENT_ID
    GA4_SECRET = GA4_SECRET
    TIKTOK_PIXEL = TIKTOK_PIXEL
    TIKTOK_TOKEN = TIKTOK_TOKEN
    WEBHOOK_SECRET = WEBHOOK_SECRET

    def __init__(self) -> None:
        self.base_url = ""
        self.meta = FakeEndpoint("meta")
        self.ga4 = FakeEndpoint("ga4")
        self.tiktok = FakeEndpoint("tiktok")
        self.webhook = FakeEndpoint("webhook")

    @property
    def webhook_url(self) -> str:
        return self.base_url + "/webhook"

    def configs(self) -> dict[str, dict[str, Any]]:
        """A working config per platform kind, pointed at these fakes."""
        return {
            "meta": {"pixel_id": META_PIXEL, "access_token": META_TOKEN, "endpoint": self.base_url},
            "ga4": {"measurement_id": GA4_MEASUREMENT_ID, "api_secret": GA4_SECRET, "endpoint": self.base_url},
            "tiktok": {"pixel_code": TIKTOK_PIXEL, "access_token": TIKTOK_TOKEN, "endpoint": self.base_url},
            "webhook": {"url": self.webhook_url, "secret": WEBHOOK_SECRET},
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{version}/{pixel_id}/events", self._handler(self.meta, _meta), methods=["POST"]),
                Route("/mp/collect", self._handler(self.ga4, _ga4), methods=["POST"]),
                Route("/debug/mp/collect", self._handler(self.ga4, _ga4), methods=["POST"]),
                Route("/open_api/v1.3/event/track/", self._handler(self.tiktok, _tiktok), methods=["POST"]),
                Route("/webhook", self._handler(self.webhook, _webhook), methods=["POST"]),
            ]
        )

    def _handler(
        self, endpoint: FakeEndpoint, answer: Callable[[FakeEndpoint, Received, _Failure | None], tuple[int, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            raw = await request.body()
            try:
                parsed = json.loads(raw)
            except (ValueError, RecursionError):
                parsed = None
            received = Received(
                path=request.url.path,
                query=dict(request.query_params),
                headers={key.lower(): value for key, value in request.headers.items()},
                raw=raw,
                json=parsed,
            )
            with endpoint._lock:
                delay = endpoint._delay_s
            if delay:
                await anyio.sleep(delay)
            failure = endpoint._next_failure()
            status, body = answer(endpoint, received, failure)
            received.status, received.answer = status, body
            endpoint._record(received)
            headers = {"Retry-After": f"{failure.retry_after:g}"} if failure and failure.retry_after is not None else {}
            if body is None:
                return Response(status_code=status, headers=headers)
            return JSONResponse(body, status_code=status, headers=headers)

        return handle


# -- Meta ---------------------------------------------------------------------------------------------------------


def _meta_error(code: int, message: str, subcode: int | None = None, transient: bool = False) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": transient,
        "fbtrace_id": "A" + uuid.uuid4().hex[:22],
    }
    if subcode is not None:
        error |= {"error_subcode": subcode, "error_user_title": "Invalid parameter", "error_user_msg": message}
    return {"error": error}


def _meta(endpoint: FakeEndpoint, received: Received, failure: _Failure | None) -> tuple[int, Any]:
    if failure is not None:
        if failure.mode == "server":
            return 500, _meta_error(2, "An unexpected error has occurred. Please retry your request later.", None, True)
        if failure.mode == "throttle":
            return 400, _meta_error(17, "User request limit reached", 2446079, True)
        return 400, _meta_error(100, "Invalid parameter", 2804050)
    body = received.json
    if received.path.split("/")[2] != META_PIXEL:
        received.problems.append("unknown pixel")
        return 400, _meta_error(100, "Unsupported post request. Object does not exist", 33)
    if not isinstance(body, dict) or body.get("access_token") != META_TOKEN:
        received.problems.append("bad access_token")
        return 400, _meta_error(190, "Invalid OAuth access token - Cannot parse access token")
    received.problems.extend(_meta_problems(body))
    received.warnings.extend(
        f"data[{i}]: a website event without event_source_url or client_user_agent (required, but accepted)"
        for i, event in enumerate(body.get("data") or [])
        if isinstance(event, dict)
        and event.get("action_source") == "website"
        and not (event.get("event_source_url") and (event.get("user_data") or {}).get("client_user_agent"))
    )
    if received.problems:
        return 400, _meta_error(100, "Invalid parameter: " + "; ".join(received.problems[:5]), 2804019)
    received.accepted = True
    return 200, {"events_received": len(body["data"]), "messages": [], "fbtrace_id": "A" + uuid.uuid4().hex[:22]}


def _meta_problems(body: dict[str, Any]) -> list[str]:
    data = body.get("data")
    if not isinstance(data, list) or not 1 <= len(data) <= 1000:
        return ["data must be a list of 1 to 1000 events"]
    problems = []
    now = time.time()
    for index, event in enumerate(data):
        where = f"data[{index}]"
        if not isinstance(event, dict):
            problems.append(f"{where} is not an object")
            continue
        for key in ("event_name", "event_id"):
            if not isinstance(event.get(key), str) or not event[key]:
                problems.append(f"{where}.{key} must be a non-empty string")
        event_time = event.get("event_time")
        if not isinstance(event_time, int) or isinstance(event_time, bool):
            problems.append(f"{where}.event_time must be an integer (Unix seconds)")
        elif event_time > now + 60:
            problems.append(f"{where}.event_time is in the future (milliseconds instead of seconds?)")
        elif event_time < now - 7 * 86400:
            problems.append(f"{where}.event_time is more than 7 days old")
        source = event.get("action_source")
        if source not in META_ACTION_SOURCES:
            problems.append(f"{where}.action_source is not one of Meta's")
        user = event.get("user_data")
        if not isinstance(user, dict) or not user:
            problems.append(f"{where}.user_data needs at least one customer information parameter")
            continue
        for key in ("em", "ph", "external_id"):
            if key in user and not (
                isinstance(user[key], list) and all(isinstance(v, str) and _HASH.fullmatch(v) for v in user[key])
            ):
                problems.append(f"{where}.user_data.{key} must be a list of SHA-256 hex strings")
        if "client_ip_address" in user:
            try:
                ipaddress.ip_address(user["client_ip_address"])
            except ValueError:
                problems.append(f"{where}.user_data.client_ip_address is not an IP address")
        if "custom_data" in event and not isinstance(event["custom_data"], dict):
            problems.append(f"{where}.custom_data must be an object")
    return problems


# -- GA4 ----------------------------------------------------------------------------------------------------------


def _ga4(endpoint: FakeEndpoint, received: Received, failure: _Failure | None) -> tuple[int, Any]:
    if failure is not None:
        return {"server": 500, "throttle": 429, "permanent": 400}[failure.mode], None
    debug = received.path.startswith("/debug/")
    if received.query.get("measurement_id") != GA4_MEASUREMENT_ID or received.query.get("api_secret") != GA4_SECRET:
        received.problems.append("measurement_id or api_secret unknown")
    received.problems.extend(_ga4_problems(received))
    if debug:
        messages = [
            {"fieldPath": "events", "description": problem, "validationCode": "VALUE_INVALID"}
            for problem in received.problems
        ]
        return 200, {"validationMessages": messages}
    received.accepted = not received.problems
    return 204, None


def _ga4_problems(received: Received) -> list[str]:
    body = received.json
    if len(received.raw) > GA4_MAX_BODY:
        return ["the body is larger than 130 kB"]
    if not isinstance(body, dict) or not isinstance(body.get("client_id"), str) or not body["client_id"]:
        return ["client_id is required"]
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        return ["events must hold 1 to 25 events"]
    problems = []
    oldest_us = (time.time() - 72 * 3600) * 1_000_000
    stamps = [body.get("timestamp_micros")] + [e.get("timestamp_micros") for e in events if isinstance(e, dict)]
    for stamp in stamps:
        if stamp is not None and (not isinstance(stamp, int) or stamp < oldest_us or stamp > time.time() * 1e6 + 6e7):
            problems.append("timestamp_micros must be within the last 72 hours")
    for event in events:
        name = event.get("name") if isinstance(event, dict) else None
        problem = _ga4_name_problem(name, _GA4_RESERVED_EVENTS) if isinstance(name, str) else "is missing"
        if problem:
            problems.append(f"event name {name!r} {problem}")
            continue
        params = event.get("params", {})
        if not isinstance(params, dict) or len(params) > 25:
            problems.append(f"{name}: params must be an object of at most 25 parameters")
            continue
        for key, value in params.items():
            problem = _ga4_name_problem(key, frozenset({"firebase_conversion"}))
            if problem:
                problems.append(f"{name}: parameter {key!r} {problem}")
            elif isinstance(value, str) and len(value) > (1000 if key == "page_location" else 100):
                problems.append(f"{name}: parameter {key!r} is too long")
            elif key != "items" and not isinstance(value, str | int | float):
                problems.append(f"{name}: parameter {key!r} must be a string or a number")
    return problems


# -- TikTok -------------------------------------------------------------------------------------------------------


def _tiktok_answer(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": {}}


def _tiktok(endpoint: FakeEndpoint, received: Received, failure: _Failure | None) -> tuple[int, Any]:
    if failure is not None:
        if failure.mode == "server":
            return 200, _tiktok_answer(50000, "System error, please try again later")
        if failure.mode == "throttle":
            return 200, _tiktok_answer(40100, "Too many requests. Please retry in some time.")
        return 200, _tiktok_answer(40002, "Invalid parameter")
    if received.headers.get("access-token") != TIKTOK_TOKEN:
        received.problems.append("bad Access-Token")
        return 200, _tiktok_answer(40105, "The access token is invalid")
    received.problems.extend(_tiktok_problems(received.json))
    if received.problems:
        return 200, _tiktok_answer(40002, "; ".join(received.problems[:5]))
    received.accepted = True
    return 200, _tiktok_answer(0, "OK")


def _tiktok_problems(body: Any) -> list[str]:
    if not isinstance(body, dict) or body.get("event_source") != "web" or body.get("event_source_id") != TIKTOK_PIXEL:
        return ["event_source must be 'web' and event_source_id the pixel code"]
    data = body.get("data")
    if not isinstance(data, list) or not 1 <= len(data) <= 1000:
        return ["data must hold 1 to 1000 events"]
    problems = []
    for index, event in enumerate(data):
        if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not event["event"]:
            problems.append(f"data[{index}].event is required")
            continue
        stamp = event.get("event_time")
        if not isinstance(stamp, int) or stamp > time.time() + 60:
            problems.append(f"data[{index}].event_time must be Unix seconds")
        user = event.get("user", {})
        for key in ("email", "phone", "external_id"):
            if key in user and not (isinstance(user[key], str) and _HASH.fullmatch(user[key])):
                problems.append(f"data[{index}].user.{key} must be SHA-256 hex")
        if "page" in event and not isinstance(event["page"].get("url"), str):
            problems.append(f"data[{index}].page.url must be a string")
    return problems


# -- webhook ------------------------------------------------------------------------------------------------------


def _webhook(endpoint: FakeEndpoint, received: Received, failure: _Failure | None) -> tuple[int, Any]:
    if failure is not None:
        return {"server": 503, "throttle": 429, "permanent": 400}[failure.mode], {"error": failure.mode}
    try:
        message_id = verify_webhook(WEBHOOK_SECRET, received.headers, received.raw)
    except WebhookVerificationError as exc:
        received.problems.append(str(exc))
        return 401, {"error": str(exc)}
    body = received.json
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not isinstance(body.get("type"), str):
        received.problems.append("the body is not {type, timestamp, data}")
        return 400, {"error": received.problems[-1]}
    received.accepted = endpoint._first_time(message_id)
    return 200, {"ok": True}


# -- the server ---------------------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


@contextlib.contextmanager
def serve_fake_platforms() -> Iterator[FakePlatforms]:
    """The fakes on a free loopback port, in a thread, until the block ends."""
    fakes = FakePlatforms()
    config = uvicorn.Config(fakes.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="fake-platforms", daemon=True)
    thread.start()
    try:
        if not server.startup_done.wait(STARTUP_TIMEOUT) or not server.started:
            raise RuntimeError("the fake platforms did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        fakes.base_url = f"http://127.0.0.1:{port}"
        yield fakes
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
