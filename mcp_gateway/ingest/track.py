"""The tracking endpoints: seed 000's `/track` with signed receipts, seed 002's token bodies on the same
routes, and seed 004's `/v1/track` with keys.

    POST /track        seed 000: one event, gateway: `X-Gateway-ID` or `?gid=` -> 200 {"status": "confirmed", ...}
                       seed 002: {"token", "event", "properties"}              -> 202 {"queued": true}
    POST /track/batch  seed 000: {"events": [...]}, 1-100, each checked alone -> 200 {"results": [...]}
                       seed 002: {"token", "events": [{"event", ...}]}         -> 202 {"queued": true, "count"}
    POST /v1/track     `Authorization: Bearer pk_…|sk_…`                       -> 202 {"ok": true, "event_id", ...}
    POST /v1/identify  the same keys, {"anonymous_id", "user_id", "traits"?}   -> 202 {"ok": true, "event_id"}

Every route answers CORS preflights and carries CORS headers, errors included (`web.cors_route`).
Bodies are JSON: a declared Content-Type other than `application/json` (or `+json`) is 415; `/track`
and `/track/batch` also read `text/plain`, which is what `navigator.sendBeacon` sends a string as.

**Which body**: a `/track` body with a `token` and no `event_name` is seed 002's; a `/track/batch` body
is when it, or its first event, has a `token`. Everything else is seed 000's. A seed 002 token is one
of the gateway's tracking keys (`pk_` or `sk_`; unknown or revoked -> 401) and names the gateway; a
seed 002 batch is stored whole or not at all (400 naming `events.<i>.<field>`).

**Origins**: a request with an `Origin` (a browser's) that is not among its gateway's allowed origins
is 403 `{"error": "Origin Not Allowed"}` (seed 000's "check allowed origins"); requests without one
(servers) are not checked. `sk_` tokens skip the check.

`/track`: a missing gateway id -> 400 naming it, an unknown one -> 404 `{"error": "Gateway Not
Configured"}`, a bad body -> 400 naming the field (`custom_data` over 8 KB of JSON included).
`Settings.track_rate_limit` requests per gateway and client IP per 60 s (a batch counts its events) -> 429
with `retry_after` and `Retry-After`; `X-RateLimit-*` headers are on every answer that got that far. One
client over its limit is refused alone: the gateway's other visitors keep their own windows.
The same `event_id` twice stores one event and answers the same receipt and `tx_id`.

`/v1/track` generates a UUID `anonymous_id` when the body has none and derives a missing `session_id` as
`${anonymous_id}-${30min_bucket}` (seed 004), answering both. `/v1/identify` stores a `$identify` event that links
the visitor to the user (`vocabulary.IDENTITY_LINK`); it shares `/v1/track`'s keys, checks, limit and errors.

`/v1/track`: a missing, unknown, revoked or non-pk/sk key -> 401 `{"error": "unauthorized"}`; a
`pk_` key needs an `Origin` in its gateway's allowed origins -> else 403 `origin_not_allowed`
(`sk_` keys are for servers and skip that check); a bad body -> 400 `{"error": "invalid_payload",
"field", "message"}`; `Settings.v1_track_rate_limit` per 60 s -> 429 `rate_limited`, counted per `sk_` key
(a secret: only its holder sends with it) and per `pk_` key and client IP (a `pk_` key is public in every
page of its site, so one client alone must not use up what every visitor shares).

Receipts: `receipt.data` is `{"id", "ts", "owner"}` (event id, stored timestamp in ms, gateway id)
and `receipt.signature` is the hex HMAC-SHA256 of its canonical JSON (`canonical_json`) keyed with
the gateway's receipt secret (the secret's text, UTF-8 encoded), which the admin API shows at
`GET /v1/gateways/{id}/receipt-secret`. `verify_receipt` checks one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from ..config import Settings
from ..gateways import Gateway, GatewayDirectory, origin_allowed
from ..keys import KeyService
from ..openapi import GATEWAY_PARAMS, Operation, Reply
from ..ratelimit import Verdict, limiter_for
from ..store import EventRow, KeyKind, KeyRecord, Store
from ..vocabulary import IDENTITY_LINK
from ..web import ApiError, client_host, cors_route, field_errors, read_body, request_gateway, validated
from .web import MAX_TIMESTAMP, SECONDS_CUTOFF, WebEvent, WebIngestor, timestamp_ms

MAX_JSON_OBJECT_BYTES: Final = 8 * 1024
"""`custom_data` (seed 000) and `properties` (seed 004) are capped at this many bytes of JSON."""

MAX_BATCH_EVENTS: Final = 100
BATCH_BODY_FACTOR: Final = 8
"""A batch may be this many times the single-request body limit."""

RATE_WINDOW_SECONDS: Final = 60.0
SESSION_BUCKET_MS: Final = 30 * 60 * 1000
"""`/v1/track` derives a missing `session_id` from the visitor and this period of the event's time (seed 004)."""

TRACK_KEY_KINDS: Final[tuple[KeyKind, ...]] = ("pk", "sk")
JSON_MEDIA_TYPE: Final = "application/json"
BEACON_MEDIA_TYPE: Final = "text/plain"
"""What `navigator.sendBeacon` declares a string body as (seed 002's tracker sends its JSON so)."""
MAX_PAGE_TEXT: Final = 1024
"""Longest page title or page name accepted."""
MAX_URL_INPUT: Final = 8192
"""Longest `url`, `path` or `referrer` accepted; `WebIngestor` keeps the first 2048 characters."""
RECEIPT_ALGORITHM: Final = "HMAC-SHA256 of the canonical JSON of receipt.data, keyed with the secret's UTF-8 text"
RECEIPT_SECRET_SETTING: Final = "receipt_secret:{gateway_id}"
TX_NAMESPACE: Final = uuid.UUID("6f1d4a52-8f0e-5b8e-9a55-3c2f3b0e7a11")
"""Namespace of the uuid5 `tx_id`s, derived from (gateway id, event id)."""


# -- receipts ------------------------------------------------------------------------------------------


class ReceiptData(TypedDict):
    id: str
    ts: int
    owner: str


class Receipt(TypedDict):
    data: ReceiptData
    signature: str


class Confirmation(TypedDict):
    """What `/track` answers for a stored event."""

    status: Literal["confirmed"]
    receipt: Receipt
    tx_id: str


def canonical_json(data: dict[str, Any]) -> bytes:
    """The bytes a receipt signature covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign_receipt(data: dict[str, Any], secret: str) -> str:
    return hmac.new(secret.encode(), canonical_json(data), hashlib.sha256).hexdigest()


def verify_receipt(receipt: Any, secret: str) -> bool:
    """Whether `receipt` (`{"data": {...}, "signature": hex}`, as `/track` answers it) was signed with `secret`.

    Any language can do the same: HMAC-SHA256 keyed with the secret's UTF-8 text over
    `json.dumps(receipt["data"], sort_keys=True, separators=(",", ":"))`, compared (in constant
    time) with `receipt["signature"]`.
    """
    if not isinstance(receipt, dict):
        return False
    data, signature = receipt.get("data"), receipt.get("signature")
    if not isinstance(data, dict) or not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign_receipt(data, secret), signature.lower())


async def receipt_secret(store: Store, gateway_id: str) -> str:
    """The gateway's receipt-signing secret, generated and stored the first time it is asked for."""
    return await store.put_setting_if_absent(
        RECEIPT_SECRET_SETTING.format(gateway_id=gateway_id), secrets.token_hex(32)
    )


def tx_id(gateway_id: str, event_id: str) -> str:
    return str(uuid.uuid5(TX_NAMESPACE, f"{gateway_id}\x00{event_id}"))


class ReceiptSigner:
    """Signs receipts with each gateway's secret, kept in memory once loaded (secrets never change)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._secrets: dict[str, str] = {}

    async def confirmation(self, row: EventRow) -> Confirmation:
        secret = self._secrets.get(row.gateway_id)
        if secret is None:
            secret = self._secrets[row.gateway_id] = await receipt_secret(self._store, row.gateway_id)
        data = ReceiptData(id=row.id, ts=row.ts_ms, owner=row.gateway_id)
        return Confirmation(
            status="confirmed",
            receipt=Receipt(data=data, signature=sign_receipt(dict(data), secret)),
            tx_id=tx_id(row.gateway_id, row.id),
        )


# -- bodies --------------------------------------------------------------------------------------------


def _check_json_size(value: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, separators=(",", ":")).encode()) > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"{name} is larger than {MAX_JSON_OBJECT_BYTES} bytes as JSON")
    return value


class TrackUser(BaseModel):
    """Seed 000's user object: identifiers for matching. Raw email, phone and external id are only hashed."""

    model_config = ConfigDict(extra="ignore")

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    external_id: str | None = Field(default=None, max_length=256)
    fbp: str | None = Field(default=None, max_length=512)
    fbc: str | None = Field(default=None, max_length=512)
    client_ip_address: str | None = Field(default=None, max_length=64)
    client_user_agent: str | None = Field(default=None, max_length=1024)


class TrackEvent(BaseModel):
    """The body of `POST /track` (seed 000), plus the optional page context the tracker may send."""

    model_config = ConfigDict(extra="ignore")

    event_name: str = Field(min_length=1, max_length=128)
    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: float | None = Field(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP,
        allow_inf_nan=False,
        strict=True,
        description=f"Seconds since the epoch; from {SECONDS_CUTOFF} on, milliseconds",
    )
    """Unix seconds; values too big to be seconds are taken as milliseconds."""
    user: TrackUser = Field(default_factory=TrackUser)
    custom_data: dict[str, Any] | None = None
    url: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    path: str | None = Field(default=None, max_length=MAX_URL_INPUT, description="Default: the path of `url`")
    referrer: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    title: str | None = Field(default=None, max_length=MAX_PAGE_TEXT, description="The page's title")
    page: str | None = Field(default=None, max_length=MAX_PAGE_TEXT, description="The page's name")
    anonymous_id: str | None = Field(default=None, min_length=1, max_length=128)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("custom_data")
    @classmethod
    def _small_custom_data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_json_size(value, "custom_data")


class TrackBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        description="`/track` bodies, each checked alone: a bad one gets its own error, the others are stored",
    )


Timestamp = Annotated[
    Annotated[float, Field(strict=True, allow_inf_nan=False)] | Annotated[str, Field(max_length=64)],
    Field(
        description=f"Seconds since the epoch (from {SECONDS_CUTOFF} on, milliseconds), or an ISO 8601 date-time",
    ),
]


def _timestamp_ms(value: float | str | None) -> int | None:
    if isinstance(value, str):
        return iso_ms(value)
    return timestamp_ms(value)


class _TokenEventFields(BaseModel):
    """Seed 002's event: a name and free-form properties, plus the page context and ids the other seeds send."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1, max_length=128)
    properties: dict[str, Any] | None = None
    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: Timestamp | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    anonymous_id: str | None = Field(default=None, min_length=1, max_length=128)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    path: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    referrer: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    title: str | None = Field(default=None, max_length=MAX_PAGE_TEXT)
    page: str | None = Field(default=None, max_length=MAX_PAGE_TEXT)
    project: str | None = Field(default=None, max_length=200, description="Ignored: the token names the project")

    @field_validator("timestamp")
    @classmethod
    def _valid_timestamp(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            iso_ms(value)
        elif value is not None and not 0 <= value <= MAX_TIMESTAMP:
            raise ValueError(f"timestamp must be between 0 and {MAX_TIMESTAMP}")
        return value

    @field_validator("properties")
    @classmethod
    def _small_properties(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_json_size(value, "properties")


class TokenTrackEvent(_TokenEventFields):
    """Seed 002's body of `POST /track`: `token` is one of the gateway's tracking keys (`pk_` or `sk_`)."""

    token: str = Field(min_length=1, max_length=200)


class TokenBatchItem(_TokenEventFields):
    token: str | None = Field(default=None, min_length=1, max_length=200)


class TokenTrackBatch(BaseModel):
    """Seed 002's body of `POST /track/batch`: the batch's `token`, else its first event's, names the project."""

    model_config = ConfigDict(extra="ignore")

    token: str | None = Field(default=None, min_length=1, max_length=200)
    events: list[TokenBatchItem] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


def _valid_iso_time(value: str) -> str:
    iso_ms(value)  # raises ValueError (a 400 naming the field) for what is not an ISO 8601 time
    return value


IsoTime = Annotated[
    str, Field(max_length=64, json_schema_extra={"format": "date-time"}), AfterValidator(_valid_iso_time)
]
"""An ISO 8601 time as seed 004's bodies send it (without a zone it is UTC), checked when the body is read."""


class V1TrackEvent(BaseModel):
    """The body of `POST /v1/track` (seed 004). Fields the server computes (source, geo, device) are ignored."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1, max_length=128)
    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: IsoTime | None = Field(
        default=None,
        description="An RFC 3339 date-time (`2026-05-16T19:00:00.000Z`); any ISO 8601 time, UTC without a zone",
    )
    """ISO 8601; without a zone it is UTC."""
    anonymous_id: str | None = Field(default=None, min_length=1, max_length=128)
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    path: str | None = Field(default=None, max_length=MAX_URL_INPUT, description="Default: the path of `url`")
    referrer: str | None = Field(default=None, max_length=MAX_URL_INPUT)
    title: str | None = Field(default=None, max_length=MAX_PAGE_TEXT, description="The page's title")
    page: str | None = Field(default=None, max_length=MAX_PAGE_TEXT, description="The page's name")
    properties: dict[str, Any] | None = None

    @field_validator("properties")
    @classmethod
    def _small_properties(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_json_size(value, "properties")


class V1Identify(BaseModel):
    """The body of `POST /v1/identify` (seed 004): the visitor `anonymous_id` is the user `user_id` from now on, and
    was before. `traits` are stored as the `$identify` event's properties, redacted like any properties."""

    model_config = ConfigDict(extra="ignore")

    anonymous_id: str = Field(min_length=1, max_length=128, description="The visitor id `/v1/track` events carry")
    user_id: str = Field(min_length=1, max_length=256, description="Your id of the person; stored hashed")
    traits: dict[str, Any] | None = Field(default=None, description="What you know of the person, at most 8 KB")
    event_id: str | None = Field(default=None, min_length=1, max_length=128, description="Idempotency key")
    timestamp: IsoTime | None = Field(
        default=None, description="When the person identified (ISO 8601); default: when the request lands"
    )

    @field_validator("traits")
    @classmethod
    def _small_traits(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_json_size(value, "traits")


_V1Body = TypeVar("_V1Body", V1TrackEvent, V1Identify)


# -- answers -------------------------------------------------------------------------------------------


class BatchItemConfirmed(Confirmation):
    index: int


class BatchItemError(TypedDict):
    index: int
    status: Literal["error"]
    error: str
    field: str


class BatchResults(TypedDict):
    """What `/track/batch` answers: one result per event, in order."""

    results: list[BatchItemConfirmed | BatchItemError]


class V1Accepted(TypedDict):
    """What `/v1/track` answers: the event's id, and the visitor and session it was stored under (generated or
    derived when the body had none), for the caller to send again."""

    ok: Literal[True]
    event_id: str
    anonymous_id: str
    session_id: str


class V1Identified(TypedDict):
    """What `/v1/identify` answers: the id of the `$identify` event that links the visitor to the user."""

    ok: Literal[True]
    event_id: str


class Queued(TypedDict):
    """What `/track` answers seed 002's body: 202, the event is committed."""

    queued: Literal[True]


class QueuedBatch(Queued):
    count: int


def iso_ms(value: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 timestamp (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(value.strip().upper())  # RFC 3339 allows a lower-case t and z
    except ValueError:
        raise ValueError("timestamp must be an ISO 8601 date-time, e.g. 2026-05-16T19:00:00.000Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return int(moment.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp is out of range") from None


# -- the routes ----------------------------------------------------------------------------------------


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _limit_key(owner: str, request: Request) -> str:
    """The window of one client (by IP) of `owner` (a gateway, a publishable key): an IP holds no `|`."""
    return f"{owner}|{client_host(request)}"


def _media_type(request: Request) -> str | None:
    declared = request.headers.get("content-type")
    return None if declared is None else declared.partition(";")[0].strip().lower()


def is_json_media_type(media_type: str | None, *, beacon: bool = False) -> bool:
    """Whether a body declared `media_type` is read as JSON: none declared, `application/json`, `*/*+json`, and
    with `beacon` `text/plain` (a `navigator.sendBeacon` string)."""
    return (
        media_type is None
        or media_type == JSON_MEDIA_TYPE
        or (media_type.startswith("application/") and media_type.endswith("+json"))
        or (beacon and media_type == BEACON_MEDIA_TYPE)
    )


UNSUPPORTED_MEDIA_TYPE: Final = "Content-Type must be application/json"


async def _json_body(request: Request, limit: int) -> Any:
    """The request's JSON body (415 for a body declared neither JSON nor a beacon's text, 413, 400)."""
    if not is_json_media_type(_media_type(request), beacon=True):
        raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, field="Content-Type")
    body = await read_body(request, limit)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder's stack
        raise ApiError(400, "Body is not valid JSON", field="body") from None


def is_token_event(body: Any) -> bool:
    """Whether a `/track` body is seed 002's: it has a `token` and no `event_name`."""
    return isinstance(body, dict) and "token" in body and "event_name" not in body


def is_token_batch(body: Any) -> bool:
    """Whether a `/track/batch` body is seed 002's: it, or its first event, has a `token`."""
    if not isinstance(body, dict):
        return False
    events = body.get("events")
    first = events[0] if isinstance(events, list) and events else None
    return "token" in body or is_token_event(first)


def _check_origin(request: Request, gateway: Gateway) -> None:
    """403 for a browser (it sends `Origin`) on a site the gateway does not allow; servers send none."""
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(origin.strip() or "null", gateway.allowed_origins):
        raise ApiError(403, "Origin Not Allowed")


ALL_PROVIDERS_FAILED: Final = "All Providers Failed"
"""Seed 000's 502: every synchronous integration failed (the event is stored all the same)."""


class SyncForwarding(Protocol):
    """Synchronous forwarding of a just-stored event (`integrations.sync.SyncForwarder`): None when no synchronous
    integration wanted it, True when one took it, False when all failed."""

    async def forward(
        self, gateway_id: str, event_id: str, *, client_ip: str | None, user_agent: str | None
    ) -> bool | None: ...


class TrackApi:
    sync_forwarding: SyncForwarding | None = None
    """Set when the app forwards events (`integrations`): `/track` then sends to synchronous integrations."""

    def __init__(
        self, settings: Settings, directory: GatewayDirectory, keys: KeyService, ingestor: WebIngestor, store: Store
    ) -> None:
        self._directory = directory
        self._keys = keys
        self._ingestor = ingestor
        self._signer = ReceiptSigner(store)
        self._max_body_bytes = settings.max_body_bytes
        self._track_limit = limiter_for(store, settings.track_rate_limit, RATE_WINDOW_SECONDS, name="track")
        self._v1_limit = limiter_for(store, settings.v1_track_rate_limit, RATE_WINDOW_SECONDS, name="v1")

    def routes(self) -> list[BaseRoute]:
        return [
            cors_route("/track", self.track, methods=["POST"]),
            cors_route("/track/batch", self.track_batch, methods=["POST"]),
            cors_route("/v1/track", self.v1_track, methods=["POST"]),
            cors_route("/v1/identify", self.v1_identify, methods=["POST"]),
        ]

    def operations(self) -> list[Operation]:
        token_rule = (
            " A body with a `token` (one of the gateway's `pk_`/`sk_` tracking keys) is seed 002's: it needs no"
            " gateway id and is answered 202. A browser's `Origin` must be among the gateway's allowed origins"
            " (403 otherwise). Bodies are JSON, `text/plain` too (navigator.sendBeacon); other types are 415."
        )
        return [
            Operation(
                "POST",
                "/track",
                "Record one event and get a signed receipt (seed 000), or queue one (seed 002)",
                "tracking",
                body=TrackEvent | TokenTrackEvent,
                response=Confirmation,
                params=GATEWAY_PARAMS,
                replies=(Reply(202, "Seed 002's body: the event is stored", Queued),),
                errors=(400, 401, 403, 404, 413, 415, 429, 502),
                description=token_rule
                + " 502 `All Providers Failed` (with the receipt: the event is stored) when the gateway has"
                " synchronous integrations and every one of them failed.",
            ),
            Operation(
                "POST",
                "/track/batch",
                "Record up to 100 events, each confirmed or refused on its own (seed 000), or queue them (seed 002)",
                "tracking",
                body=TrackBatch | TokenTrackBatch,
                response=BatchResults,
                params=GATEWAY_PARAMS,
                replies=(Reply(202, "Seed 002's body: every event is stored", QueuedBatch),),
                errors=(400, 401, 403, 404, 413, 415, 429),
                description=token_rule + " A seed 002 batch is stored whole or refused whole.",
            ),
            Operation(
                "POST",
                "/v1/track",
                "Record one event with a publishable or secret tracking key",
                "tracking",
                security="track",
                body=V1TrackEvent,
                response=V1Accepted,
                status=202,
                errors=(400, 403, 413, 415, 429),
                description=(
                    "A `pk_` key needs an `Origin` among its gateway's allowed origins (403 otherwise). Without"
                    " `anonymous_id` a UUID is generated, without `session_id` it is `${anonymous_id}-${30min_bucket}`"
                    " of the event's time; the answer says both."
                ),
            ),
            Operation(
                "POST",
                "/v1/identify",
                "Link a visitor (`anonymous_id`) to a user (`user_id`): the visitor's events count for that user",
                "tracking",
                security="track",
                body=V1Identify,
                response=V1Identified,
                status=202,
                errors=(400, 403, 413, 415, 429),
                description=(
                    "Stored as a `$identify` event (its properties are the `traits`, redacted like any properties);"
                    " a later identification of the same visitor replaces the link. Keys, origins, limits and errors"
                    " as `/v1/track`."
                ),
            ),
        ]

    # -- /track and /track/batch

    async def _gateway(self, request: Request) -> Gateway:
        gateway = await request_gateway(request, self._directory)
        _check_origin(request, gateway)
        return gateway

    async def _hit_track(self, request: Request, gateway_id: str, cost: int) -> Verdict:
        return (await self._track_limit.hit(_limit_key(gateway_id, request), cost)).enforce()

    def _web_event(self, request: Request, body: TrackEvent) -> WebEvent:
        user = body.user
        fbp = user.fbp or request.cookies.get("_fbp")
        fbc = user.fbc or request.cookies.get("_fbc")
        return WebEvent(
            name=body.event_name,
            source="web",
            event_id=body.event_id or str(uuid.uuid4()),
            ts_ms=timestamp_ms(body.timestamp),
            anonymous_id=body.anonymous_id,
            session_id=body.session_id,
            url=body.url or request.headers.get("referer") or None,
            path=body.path,
            referrer=body.referrer,
            title=body.title,
            page=body.page,
            properties=body.custom_data,
            email=user.email,
            phone=user.phone,
            external_id=user.external_id,
            identifiers={name for name, value in (("fbp", fbp), ("fbc", fbc)) if value},
            client_ip=user.client_ip_address or _client_ip(request),
            user_agent=user.client_user_agent or request.headers.get("user-agent") or None,
            fbp=fbp,
            fbc=fbc,
        )

    async def track(self, request: Request) -> JSONResponse:
        data = await _json_body(request, self._max_body_bytes)
        if is_token_event(data):
            body = validated(TokenTrackEvent, data)
            key, gateway = await self._token_gateway(request, body.token)
            verdict = await self._hit_track(request, gateway.id, 1)
            await self._ingestor.capture(gateway.id, [self._token_event(request, key, body)])
            return JSONResponse(Queued(queued=True), status_code=202, headers=verdict.headers())
        gateway = await self._gateway(request)
        verdict = await self._hit_track(request, gateway.id, 1)
        try:
            event = validated(TrackEvent, data)
        except ApiError as exc:
            exc.headers.update(verdict.headers())
            raise
        web_event = self._web_event(request, event)
        [(status, row)] = await self._ingestor.capture(gateway.id, [web_event])
        confirmation = await self._signer.confirmation(row)
        if status == "stored" and self.sync_forwarding is not None:
            delivered = await self.sync_forwarding.forward(
                gateway.id, row.id, client_ip=web_event.client_ip, user_agent=web_event.user_agent
            )
            if delivered is False:  # the event is stored; the worker retries what can be retried
                failed = {"error": ALL_PROVIDERS_FAILED, "message": "check integrations config", **confirmation}
                return JSONResponse(failed, status_code=502, headers=verdict.headers())
        return JSONResponse(confirmation, headers=verdict.headers())

    async def track_batch(self, request: Request) -> JSONResponse:
        data = await _json_body(request, self._max_body_bytes * BATCH_BODY_FACTOR)
        if is_token_batch(data):
            return await self._token_batch(request, validated(TokenTrackBatch, data))
        gateway = await self._gateway(request)
        batch = validated(TrackBatch, data)
        verdict = await self._hit_track(request, gateway.id, len(batch.events))
        results: list[BatchItemConfirmed | BatchItemError | None] = []
        valid: list[tuple[int, WebEvent]] = []
        for index, item in enumerate(batch.events):
            try:
                event = TrackEvent.model_validate(item)
            except ValidationError as exc:
                first = field_errors(exc)[0]
                message = f"Invalid {first['field']}: {first['message']}"
                results.append(BatchItemError(index=index, status="error", error=message, field=first["field"]))
                continue
            results.append(None)
            valid.append((index, self._web_event(request, event)))
        if valid:
            stored = await self._ingestor.capture(gateway.id, [event for _, event in valid])
            for (index, _), (_, row) in zip(valid, stored, strict=True):
                results[index] = BatchItemConfirmed(index=index, **await self._signer.confirmation(row))
        answered = [result for result in results if result is not None]
        return JSONResponse(BatchResults(results=answered), headers=verdict.headers())

    # -- seed 002's bodies on /track and /track/batch

    async def _token_gateway(self, request: Request, token: str | None) -> tuple[KeyRecord, Gateway]:
        """The tracking key a seed 002 `token` is and its gateway: 401 unless live, 403 for a browser not allowed."""
        key = await self._keys.resolve((token or "").strip(), TRACK_KEY_KINDS)
        gateway = None if key is None else await self._directory.get(key.gateway_id)
        if key is None or gateway is None:
            raise ApiError(401, "unknown or revoked token", field="token")
        if key.kind == "pk":
            _check_origin(request, gateway)
        return key, gateway

    def _token_event(self, request: Request, key: KeyRecord, body: _TokenEventFields) -> WebEvent:
        source: Literal["web", "server"] = "web" if key.kind == "pk" else "server"
        return _named_event(body, source, _timestamp_ms(body.timestamp), *_client_of(request))

    async def _token_batch(self, request: Request, batch: TokenTrackBatch) -> JSONResponse:
        key, gateway = await self._token_gateway(request, batch.token or batch.events[0].token)
        verdict = await self._hit_track(request, gateway.id, len(batch.events))
        await self._ingestor.capture(gateway.id, [self._token_event(request, key, event) for event in batch.events])
        answer = QueuedBatch(queued=True, count=len(batch.events))
        return JSONResponse(answer, status_code=202, headers=verdict.headers())

    # -- /v1/track and /v1/identify

    async def _v1_key(self, request: Request) -> tuple[KeyRecord, Gateway, Verdict]:
        """The request's live tracking key, its gateway and the key's rate-limit verdict (401, 403, 429 otherwise)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = await self._keys.resolve(token.strip(), TRACK_KEY_KINDS) if scheme.lower() == "bearer" else None
        gateway = None if key is None else await self._directory.get(key.gateway_id)
        if key is None or gateway is None:
            raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if key.kind == "pk":
            origin = request.headers.get("origin", "").strip()
            if not origin or not origin_allowed(origin, gateway.allowed_origins):
                raise ApiError(403, "origin_not_allowed")
        verdict = await self._v1_limit.hit(_limit_key(key.id, request) if key.kind == "pk" else key.id)
        if not verdict.allowed:
            raise ApiError(429, "rate_limited", headers=verdict.headers(), retry_after=verdict.reset_seconds)
        return key, gateway, verdict

    async def v1_track(self, request: Request) -> JSONResponse:
        key, gateway, verdict = await self._v1_key(request)
        body = await self._v1_body(request, verdict, V1TrackEvent)
        event, anonymous_id = seed004_event(body, "web" if key.kind == "pk" else "server", *_client_of(request))
        [(_, row)] = await self._ingestor.capture(gateway.id, [event])
        stored_visitor = (row.web.anonymous_id if row.web else None) or anonymous_id  # a duplicate's, as stored
        answer = V1Accepted(ok=True, event_id=row.id, anonymous_id=stored_visitor, session_id=row.session_id or "")
        return JSONResponse(answer, status_code=202, headers=verdict.headers())

    async def v1_identify(self, request: Request) -> JSONResponse:
        key, gateway, verdict = await self._v1_key(request)
        body = await self._v1_body(request, verdict, V1Identify)
        event = WebEvent(
            name=IDENTITY_LINK,
            source="web" if key.kind == "pk" else "server",
            event_id=body.event_id,
            ts_ms=iso_ms(body.timestamp) if body.timestamp is not None else None,
            anonymous_id=body.anonymous_id,
            user_id=body.user_id,
            properties=body.traits,
            client_ip=_client_ip(request),
            user_agent=request.headers.get("user-agent") or None,
        )
        [(_, row)] = await self._ingestor.capture(gateway.id, [event])
        return JSONResponse(V1Identified(ok=True, event_id=row.id), status_code=202, headers=verdict.headers())

    async def _v1_body(self, request: Request, verdict: Verdict, model: type[_V1Body]) -> _V1Body:
        if not is_json_media_type(_media_type(request)):
            raise _v1_error(415, "unsupported_media_type", "Content-Type", UNSUPPORTED_MEDIA_TYPE, verdict)
        try:
            raw = await read_body(request, self._max_body_bytes)
        except ApiError as exc:
            raise _v1_error(exc.status, "payload_too_large", "body", exc.message, verdict) from None
        try:
            return model.model_validate_json(raw or b"null")
        except ValidationError as exc:
            first = field_errors(exc)[0]
            raise _v1_error(400, "invalid_payload", first["field"], first["message"], verdict) from None


def derived_session_id(anonymous_id: str, ts_ms: int) -> str:
    """Seed 004's session of an event sent without one: `${anonymous_id}-${30min_bucket}`, the bucket being the
    number of whole 30-minute periods since the epoch at the event's time."""
    return f"{anonymous_id}-{ts_ms // SESSION_BUCKET_MS}"


def _v1_error(status: int, code: str, field: str, message: str, verdict: Verdict) -> ApiError:
    """Seed 004's error shape: `{"error": code, "field", "message"}`."""
    return ApiError(status, code, headers=verdict.headers(), field=field, message=message)


class _NamedEventBody(Protocol):
    """What seed 002's and seed 004's bodies share: an event name, its ids and page context, its properties."""

    @property
    def event(self) -> str: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def anonymous_id(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def referrer(self) -> str | None: ...
    @property
    def title(self) -> str | None: ...
    @property
    def page(self) -> str | None: ...
    @property
    def properties(self) -> dict[str, Any] | None: ...


def seed004_event(
    body: V1TrackEvent, source: Literal["web", "server"], client_ip: str | None = None, user_agent: str | None = None
) -> tuple[WebEvent, str]:
    """Seed 004's event (`/v1/track`, the `track_event` tool) and its visitor: at the time it names or now, its
    visitor or a new one, its session or `${anonymous_id}-${30min_bucket}`."""
    ts_ms = iso_ms(body.timestamp) if body.timestamp is not None else int(time.time() * 1000)
    anonymous_id = body.anonymous_id or str(uuid.uuid4())
    session_id = body.session_id or derived_session_id(anonymous_id, ts_ms)
    filled = body.model_copy(update={"anonymous_id": anonymous_id, "session_id": session_id})
    return _named_event(filled, source, ts_ms, client_ip, user_agent), anonymous_id


def _client_of(request: Request) -> tuple[str | None, str | None]:
    """The client's IP and User-Agent, as an event records them."""
    return _client_ip(request), request.headers.get("user-agent") or None


def _named_event(
    body: _NamedEventBody,
    source: Literal["web", "server"],
    ts_ms: int | None,
    client_ip: str | None,
    user_agent: str | None,
) -> WebEvent:
    return WebEvent(
        name=body.event,
        source=source,
        event_id=body.event_id,
        ts_ms=ts_ms,
        anonymous_id=body.anonymous_id,
        user_id=body.user_id,
        session_id=body.session_id,
        url=body.url,
        path=body.path,
        referrer=body.referrer,
        title=body.title,
        page=body.page,
        properties=body.properties,
        client_ip=client_ip,
        user_agent=user_agent,
    )
