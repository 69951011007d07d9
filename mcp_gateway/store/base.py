"""The `Store` protocol: everything the gateway persists, independent of the database behind it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

if TYPE_CHECKING:  # outbox imports this module
    from .outbox import ForwardHints


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A tenant as stored: the manifest is the JSON object the gateways layer validates."""

    id: str
    name: str
    allowed_origins: tuple[str, ...]
    manifest: dict[str, Any]
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A demo request captured by `book_demo`: business data, stored as given."""

    id: str
    gateway_id: str
    name: str
    email: str
    company: str | None
    message: str | None
    source: str
    created_at_ms: int
    crm_lead_id: str | None = None
    """The lead's id in the business's CRM, once the CRM reported it (`/lead.capture/crm-callback`)."""


T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]

KeyKind = Literal["org", "pk", "sk", "read"]
"""`org`: the Agnost ingestion API (`X-Org-Id`); `pk`/`sk`: publishable/secret tracking keys; `read`: analytics."""

CaptureStatus = Literal["stored", "duplicate", "unknown_session"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: only its SHA-256 and a short prefix to recognise it by."""

    id: str
    gateway_id: str
    kind: KeyKind
    name: str
    key_hash: str
    prefix: str
    created_at_ms: int
    revoked_at_ms: int | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """An MCP client session (one connection, or one sessionless client identity)."""

    gateway_id: str
    id: str
    client_config: str
    connection_type: str
    transport: str | None
    ip_hash: str | None
    tools: tuple[str, ...]
    user_data: dict[str, Any] | None
    started_at_ms: int
    received_at_ms: int
    country: str | None = None
    """ISO 3166 alpha-2 code of the client's IP (geo-IP at ingest), or None."""
    ip_kind: str | None = None
    """The cloud provider whose ranges hold the client's IP ("aws", "gcp", ...; `ingest.ipkind`), or None."""
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class WebFields:
    """What a web or server event carries beyond the common fields, enriched and hashed by the server."""

    anonymous_id: str | None = None
    user_id_hash: str | None = None
    url: str | None = None
    path: str | None = None
    referrer: str | None = None
    traffic_source: str | None = None
    traffic_medium: str | None = None
    traffic_campaign: str | None = None
    traffic_rule: str | None = None
    device_type: str | None = None
    browser: str | None = None
    os: str | None = None
    ip_hash: str | None = None
    email_hash: str | None = None
    phone_hash: str | None = None
    external_id_hash: str | None = None
    emq: float | None = None
    country: str | None = None
    """ISO 3166 alpha-2 code from geo-IP at ingest (`ingest.geo`), or None when unknown."""
    traffic_confidence: str | None = None
    """How sure the attribution (`traffic_rule`) is: high, medium or low (seed 004's `source_confidence`)."""
    ip_kind: str | None = None
    """The cloud provider whose ranges hold the client's IP ("aws", "gcp", ...; `ingest.ipkind`), or None."""


WEB_FIELD_NAMES: tuple[str, ...] = tuple(WebFields.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event: an MCP invocation (`source="mcp"`) or, later, a web or server event."""

    gateway_id: str
    id: str
    source: str
    session_id: str | None
    name: str
    primitive_type: str | None
    operation: str | None
    latency_ms: float | None
    success: bool | None
    error_type: str | None
    args: str | None
    result: str | None
    properties: dict[str, Any] | None
    ts_ms: int
    received_at_ms: int
    web: WebFields | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One hour of one MCP primitive on one gateway, as the writer keeps it."""

    gateway_id: str
    hour_ms: int
    primitive_type: str
    name: str
    operation: str
    calls: int
    errors: int
    latency_sum_ms: float
    latency_max_ms: float
    histogram: dict[int, int]


HOUR_MS = 3600 * 1000

SESSION_INACTIVITY_MS = 30 * 60 * 1000
"""A web visitor's events more than this apart start a new derived session."""


BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Upper bounds of the writer's jobs-per-transaction histogram (`WriterStats.batch_sizes`)."""


class WriterListener(Protocol):
    """Hears of each write transaction and of the events stored, as they happen (`metrics.Metrics` is one)."""

    def batch(self, jobs: int, seconds: float, *, failed: bool, queue_depth: int) -> None: ...

    def stored(self, source: str, count: int) -> None: ...


@dataclass(slots=True)
class WriterStats:
    """What a store's writer has done since the store opened, for `/metrics` and the benchmarks: its
    transactions, counted by the writer, and the events they stored, counted by the capture calls once
    committed. `listeners` hear of each as it happens."""

    transactions: int = 0
    failed_transactions: int = 0
    jobs: int = 0
    batch_sizes: list[int] = field(default_factory=lambda: [0] * (len(BATCH_SIZE_BUCKETS) + 1))
    """Transactions per bucket of jobs in them (`BATCH_SIZE_BUCKETS`, then above them all); not cumulative."""
    events_stored: Counter[str] = field(default_factory=Counter)
    """New events committed, by source."""
    busy_seconds: float = 0.0
    """Time the writer spent in transactions (its commits' waits included)."""
    max_jobs: int = 0
    """The most jobs one transaction held."""
    listeners: list[WriterListener] = field(default_factory=list)

    def record_batch(self, jobs: int, seconds: float, *, failed: bool = False, queue_depth: int = 0) -> None:
        """A transaction of `jobs` jobs took `seconds`; `queue_depth` jobs were waiting when it ended."""
        self.transactions += 1
        self.failed_transactions += failed
        self.jobs += jobs
        self.busy_seconds += seconds
        self.max_jobs = max(self.max_jobs, jobs)
        self.batch_sizes[sum(1 for bound in BATCH_SIZE_BUCKETS if jobs > bound)] += 1
        for listener in self.listeners:
            listener.batch(jobs, seconds, failed=failed, queue_depth=queue_depth)

    def record_stored(self, sources: Iterable[str]) -> None:
        """New events of these sources (one item each) were committed."""
        counts = Counter(sources)
        self.events_stored.update(counts)
        for listener in self.listeners:
            for source, count in counts.items():
                listener.stored(source, count)


class Cursor(Protocol):
    """What a statement run on a `Connection` gives back (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A database connection as the writer's jobs use it: SQL with `?` placeholders, portable between SQLite and
    PostgreSQL (whose store rewrites the placeholders). `sqlite3.Connection` is one as it is."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...


class Store(Protocol):
    """Persistence for gateways, leads and settings. Every write is committed before it returns."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release connections."""
        ...

    async def get_gateway(self, gateway_id: str) -> GatewayRecord | None: ...

    async def list_gateways(self) -> list[GatewayRecord]: ...

    async def create_gateway(self, record: GatewayRecord) -> None:
        """Insert a gateway; `ConflictError` if the id is taken."""
        ...

    async def update_gateway(
        self,
        gateway_id: str,
        *,
        name: str | None = None,
        allowed_origins: tuple[str, ...] | None = None,
        manifest: dict[str, Any] | None = None,
        now_ms: int,
    ) -> GatewayRecord:
        """Change the given fields; `NotFoundError` if there is no such gateway."""
        ...

    async def book_lead(self, lead: LeadRecord, *, dedupe_window_ms: int) -> tuple[LeadRecord, bool]:
        """Store `lead` unless the same gateway got a lead from the same email within the window.

        Returns the stored lead and True, or the earlier lead and False. Check and insert are one
        transaction, so two concurrent bookings cannot both win.
        """
        ...

    async def get_lead(self, lead_id: str) -> LeadRecord | None: ...

    async def set_lead_crm_id(self, gateway_id: str, lead_id: str, crm_lead_id: str) -> LeadRecord | None:
        """Record the CRM's id of one of `gateway_id`'s leads; the lead as now stored, None if there is no such lead."""
        ...

    async def list_leads(self, gateway_id: str, *, limit: int = 100) -> list[LeadRecord]: ...

    async def get_setting(self, key: str) -> str | None: ...

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value exists; return the value that is stored."""
        ...

    async def create_key(self, record: KeyRecord) -> None: ...

    async def list_keys(self, gateway_id: str) -> list[KeyRecord]: ...

    async def find_key(self, key_hash: str) -> KeyRecord | None: ...

    async def revoke_key(self, gateway_id: str, key_id: str, *, now_ms: int) -> KeyRecord:
        """Mark a key revoked (idempotent); `NotFoundError` if the gateway has no such key."""
        ...

    async def capture(
        self, sessions: Sequence[SessionRow], events: Sequence[EventRow], *, background: bool = False
    ) -> tuple[list[CaptureStatus], list[CaptureStatus]]:
        """Store sessions, then events, in one transaction; a status for each, in order. `background` (self-tracking:
        no client waits for it) lets other writes commit first (`writer.py`).

        Every row is redacted first (`redaction.py`: the one privacy policy for whatever enters the
        store). A session or event whose (gateway, id) is stored already is a `duplicate` and changes
        nothing; an MCP event whose session is unknown (neither stored nor in `sessions`) is
        `unknown_session` and is not stored.
        """
        ...

    async def sessions_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[SessionRow]:
        """Sessions stored after insertion position `seq`, oldest first."""
        ...

    async def capture_web(
        self, events: Sequence[EventRow], hints: Sequence[ForwardHints | None] = ()
    ) -> list[tuple[CaptureStatus, EventRow]]:
        """Store web or server events in one transaction, redacted (`redaction.py`); each one's status and the row as
        stored. In the same transaction, each new event's deliveries to its gateway's integrations go into the
        outbox (`outbox.py`), with `hints[i]` (fbp, fbc) for `events[i]`.

        A duplicate (same gateway and id) answers the row stored first. An event with an
        `anonymous_id` but no `session_id` gets the session of that visitor's previous event when
        it is less than `SESSION_INACTIVITY_MS` older, else a new one.
        """
        ...

    async def get_event(self, gateway_id: str, event_id: str) -> EventRow | None: ...

    async def mcp_rollups(
        self, gateway_id: str, *, since_ms: int, until_ms: int, primitive_type: str | None = None, daily: bool = False
    ) -> list[RollupRow]:
        """The hourly (or `daily`) MCP rollups of `gateway_id` whose period starts in [since_ms, until_ms);
        a daily row's `hour_ms` is its day's start."""
        ...

    async def events_after(self, seq: int, *, gateway_id: str | None = None, limit: int = 500) -> list[EventRow]:
        """Events stored after insertion position `seq`, oldest first."""
        ...

    async def last_seq(self) -> tuple[int, int]:
        """The newest (session seq, event seq), 0 when empty: where a live tail starts."""
        ...

    writer_stats: WriterStats
    """Counters of the writer's transactions and the events they stored."""

    def writer_queue_depth(self) -> int:
        """Write jobs waiting for the writer's next transaction."""
        ...

    dialect: Dialect
    """Which SQL dialect `fetch` speaks, for the few expressions that differ (`analytics.sql`)."""

    async def write(self, job: Callable[[Connection], T], *, background: bool = False) -> T:
        """Run `job` (SQL with `?` placeholders) in the writer's next transaction; return once it committed. A
        `background` job lets foreground ones commit first (`writer.py`)."""
        ...

    async def execute_now(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`?` placeholders) committed on its own, outside the writer's batches where the
        database allows: small state processes share (`ratelimit`, `transports.forwarding`). Its rows, if any."""
        ...

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query (`?` placeholders) and return its rows: the analytics' way in.

        The SQL must be portable between SQLite and PostgreSQL; `analytics.sql` holds the
        expressions that are not.
        """
        ...
