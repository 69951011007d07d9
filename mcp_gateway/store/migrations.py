"""Schema migrations, applied in order; each runs once and is recorded in `schema_migrations`.

The SQL is kept portable (no SQLite-only types or syntax) so the PostgreSQL store can apply the
same list. Timestamps are integer milliseconds since the epoch. `seq` columns are insertion
order (SQLite's rowid), which `events tail` and the live stream follow. The `*_rollups` tables
hold, per gateway and hour, what the analytics read instead of scanning events: the writer
updates them in the same transaction as the events (`store.rollups`), and opening a database
whose rollups are missing rebuilds them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, TypeVar

from .base import Connection
from .writer import transaction

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=Connection)

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1,
        """
        CREATE TABLE gateways (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            allowed_origins TEXT NOT NULL,
            manifest TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL
        );
        CREATE TABLE leads (
            id TEXT PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            company TEXT,
            message TEXT,
            source TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL
        );
        CREATE INDEX leads_by_gateway_email ON leads (gateway_id, email, created_at_ms);
        CREATE INDEX leads_by_gateway_time ON leads (gateway_id, created_at_ms);
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            revoked_at_ms BIGINT
        );
        CREATE INDEX api_keys_by_gateway ON api_keys (gateway_id, kind);
        CREATE TABLE mcp_sessions (
            seq INTEGER PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            id TEXT NOT NULL,
            client_config TEXT NOT NULL,
            connection_type TEXT NOT NULL,
            transport TEXT,
            ip_hash TEXT,
            tools TEXT NOT NULL,
            user_data TEXT,
            started_at_ms BIGINT NOT NULL,
            received_at_ms BIGINT NOT NULL,
            UNIQUE (gateway_id, id)
        );
        CREATE INDEX mcp_sessions_by_time ON mcp_sessions (gateway_id, started_at_ms);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            id TEXT NOT NULL,
            source TEXT NOT NULL,
            session_id TEXT,
            name TEXT NOT NULL,
            primitive_type TEXT,
            operation TEXT,
            latency_ms DOUBLE PRECISION,
            success INTEGER,
            error_type TEXT,
            args TEXT,
            result TEXT,
            properties TEXT,
            ts_ms BIGINT NOT NULL,
            received_at_ms BIGINT NOT NULL,
            UNIQUE (gateway_id, id)
        );
        CREATE INDEX events_by_time ON events (gateway_id, ts_ms);
        CREATE INDEX events_by_session ON events (gateway_id, session_id, ts_ms);
        CREATE INDEX events_by_name ON events (gateway_id, source, primitive_type, name, ts_ms)
        """,
    ),
    (
        3,
        """
        ALTER TABLE events ADD COLUMN anonymous_id TEXT;
        ALTER TABLE events ADD COLUMN user_id_hash TEXT;
        ALTER TABLE events ADD COLUMN url TEXT;
        ALTER TABLE events ADD COLUMN path TEXT;
        ALTER TABLE events ADD COLUMN referrer TEXT;
        ALTER TABLE events ADD COLUMN traffic_source TEXT;
        ALTER TABLE events ADD COLUMN traffic_medium TEXT;
        ALTER TABLE events ADD COLUMN traffic_campaign TEXT;
        ALTER TABLE events ADD COLUMN traffic_rule TEXT;
        ALTER TABLE events ADD COLUMN device_type TEXT;
        ALTER TABLE events ADD COLUMN browser TEXT;
        ALTER TABLE events ADD COLUMN os TEXT;
        ALTER TABLE events ADD COLUMN ip_hash TEXT;
        ALTER TABLE events ADD COLUMN email_hash TEXT;
        ALTER TABLE events ADD COLUMN phone_hash TEXT;
        ALTER TABLE events ADD COLUMN external_id_hash TEXT;
        ALTER TABLE events ADD COLUMN emq DOUBLE PRECISION;
        CREATE INDEX events_by_visitor ON events (gateway_id, anonymous_id, ts_ms)
        """,
    ),
    (
        4,
        """
        CREATE TABLE mcp_rollups (
            gateway_id TEXT NOT NULL,
            hour_ms BIGINT NOT NULL,
            primitive_type TEXT NOT NULL,
            name TEXT NOT NULL,
            operation TEXT NOT NULL,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            latency_sum_ms DOUBLE PRECISION NOT NULL,
            latency_max_ms DOUBLE PRECISION NOT NULL,
            histogram TEXT NOT NULL,
            PRIMARY KEY (gateway_id, hour_ms, primitive_type, name, operation)
        )
        """,
    ),
    (
        5,
        """
        ALTER TABLE events ADD COLUMN country TEXT;
        ALTER TABLE mcp_sessions ADD COLUMN country TEXT
        """,
    ),
    (
        6,
        """
        CREATE TABLE event_rollups (
            gateway_id TEXT NOT NULL,
            dimension TEXT NOT NULL,
            hour_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, dimension, hour_ms, source, name, value)
        );
        CREATE TABLE activity_rollups (
            gateway_id TEXT NOT NULL,
            hour_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            actor TEXT NOT NULL,
            session_id TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, hour_ms, source, actor, session_id)
        )
        """,
    ),
    (
        7,
        # Funnels and retention ask "who did event X when": with the actor columns in the index,
        # SQLite answers from the index alone instead of looking up every matching row.
        """
        DROP INDEX events_by_name;
        CREATE INDEX events_by_name ON events
            (gateway_id, source, primitive_type, name, ts_ms, anonymous_id, session_id)
        """,
    ),
    (
        8,
        # Daily copies of the hourly rollups (a month is 30 rows, not 720), and one row per session.
        """
        CREATE TABLE mcp_rollups_daily (
            gateway_id TEXT NOT NULL,
            day_ms BIGINT NOT NULL,
            primitive_type TEXT NOT NULL,
            name TEXT NOT NULL,
            operation TEXT NOT NULL,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            latency_sum_ms DOUBLE PRECISION NOT NULL,
            latency_max_ms DOUBLE PRECISION NOT NULL,
            histogram TEXT NOT NULL,
            PRIMARY KEY (gateway_id, day_ms, primitive_type, name, operation)
        );
        CREATE TABLE event_rollups_daily (
            gateway_id TEXT NOT NULL,
            dimension TEXT NOT NULL,
            day_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, dimension, day_ms, source, name, value)
        );
        CREATE TABLE sessions (
            gateway_id TEXT NOT NULL,
            id TEXT NOT NULL,
            source TEXT NOT NULL,
            actor TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            last_ms BIGINT NOT NULL,
            events BIGINT NOT NULL,
            page_views BIGINT NOT NULL,
            entry_ms BIGINT,
            entry_path TEXT,
            exit_ms BIGINT,
            exit_path TEXT,
            attr_ms BIGINT,
            traffic_source TEXT,
            traffic_medium TEXT,
            referrer_host TEXT,
            country TEXT,
            device_type TEXT,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            booked_ms BIGINT,
            client TEXT,
            PRIMARY KEY (gateway_id, id)
        );
        CREATE INDEX sessions_by_start ON sessions (gateway_id, started_ms);
        CREATE INDEX sessions_by_last ON sessions (gateway_id, last_ms)
        """,
    ),
    (
        9,
        # HyperLogLog registers (store/sketch.py) of the users and sessions active per hour and day.
        """
        CREATE TABLE distinct_sketches (
            gateway_id TEXT NOT NULL,
            grain TEXT NOT NULL,
            bucket_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            registers BYTEA NOT NULL,
            PRIMARY KEY (gateway_id, grain, bucket_ms, source, kind)
        )
        """,
    ),
    (
        10,
        # Per session: MCP call latency, and the seed 001 visit's end with its engagement score.
        """
        ALTER TABLE sessions ADD COLUMN latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN ended_ms BIGINT;
        ALTER TABLE sessions ADD COLUMN engagement_score DOUBLE PRECISION;
        CREATE INDEX sessions_by_end ON sessions (gateway_id, ended_ms);
        CREATE INDEX mcp_sessions_by_client ON mcp_sessions (gateway_id, started_at_ms, client_config)
        """,
    ),
    (
        11,
        # Unique visitors of a page: the index alone answers "who viewed this path when".
        """
        CREATE INDEX events_by_path ON events (gateway_id, path, name, ts_ms, anonymous_id) WHERE path IS NOT NULL
        """,
    ),
    (
        12,
        # The sessions in a window, their bounces, lengths, MCP calls and engagement, from the indexes
        # alone: at 1M events /insights went from 310 to 50 ms, /analytics/clients from 120 to 65.
        """
        DROP INDEX sessions_by_start;
        DROP INDEX sessions_by_last;
        DROP INDEX sessions_by_end;
        CREATE INDEX sessions_by_start ON sessions (gateway_id, started_ms, last_ms, source, page_views);
        CREATE INDEX sessions_by_last ON sessions
            (gateway_id, last_ms, started_ms, source, page_views, client, calls, errors, latency_ms);
        CREATE INDEX sessions_by_end ON sessions (gateway_id, ended_ms, engagement_score)
        """,
    ),
    (
        13,
        # Sessions per day of their start and per country, landing, entry and exit page, length, MCP
        # client (store/session_counts.py): a month is a few thousand rows instead of every session.
        """
        CREATE TABLE session_counts (
            gateway_id TEXT NOT NULL,
            dimension TEXT NOT NULL,
            day_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            value TEXT NOT NULL,
            sessions BIGINT NOT NULL,
            bounces BIGINT NOT NULL,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            visitors BYTEA,
            PRIMARY KEY (gateway_id, dimension, day_ms, source, value)
        )
        """,
    ),
    (
        14,
        # Sketches of every source together (source '*') and each sketch's estimate beside it: a day or an
        # hour of all sources is one row, and a per-hour series reads numbers instead of merging registers.
        """
        ALTER TABLE distinct_sketches ADD COLUMN estimate BIGINT NOT NULL DEFAULT 0
        """,
    ),
    (
        15,
        # The MCP sessions that booked a demo since a time, from an index of the few that did: at 1M events
        # /analytics/mcp/conversions went from about 120 to 30 ms.
        """
        CREATE INDEX sessions_by_booking ON sessions (gateway_id, booked_ms, id) WHERE booked_ms IS NOT NULL
        """,
    ),
    (
        16,
        # Users per day and page viewed, and per day and traffic source, as sketches with their estimates:
        # unique visitors per page and per source over a month without reading every page view.
        """
        CREATE TABLE visitor_sketches (
            gateway_id TEXT NOT NULL,
            dimension TEXT NOT NULL,
            day_ms BIGINT NOT NULL,
            value TEXT NOT NULL,
            registers BYTEA NOT NULL,
            estimate BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, dimension, day_ms, value)
        )
        """,
    ),
    (
        17,
        # What several gateway processes on one PostgreSQL database share: rate-limit windows, and which process
        # holds each live MCP session (its private address), so a request landing elsewhere is forwarded there.
        """
        CREATE TABLE rate_limit_windows (
            key TEXT PRIMARY KEY,
            started_ms BIGINT NOT NULL,
            hits BIGINT NOT NULL
        );
        CREATE TABLE mcp_session_owners (
            session_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL
        );
        CREATE INDEX mcp_session_owners_by_owner ON mcp_session_owners (owner)
        """,
    ),
    (
        18,
        # The id a CRM gave a lead once it created it there (`POST /lead.capture/crm-callback`, seed 001).
        """
        ALTER TABLE leads ADD COLUMN crm_lead_id TEXT
        """,
    ),
    (
        19,
        # Seed 004: how sure each event's attribution is (its rule is `traffic_rule`), and which user each visitor
        # (`anonymous_id`) identified as (`POST /v1/identify`), so the visitor's events count for that user.
        """
        ALTER TABLE events ADD COLUMN traffic_confidence TEXT;
        CREATE TABLE identities (
            gateway_id TEXT NOT NULL,
            anonymous_id TEXT NOT NULL,
            user_id_hash TEXT NOT NULL,
            identified_at_ms BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, anonymous_id)
        );
        CREATE INDEX identities_by_user ON identities (gateway_id, user_id_hash)
        """,
    ),
    (
        20,
        # The cloud provider whose published ranges hold the client's IP ("aws", "gcp", ...; null for any other
        # address), classified at ingest before the IP is hashed: seed 001's VPN/datacenter-ratio anomaly. A web
        # session's row takes the first provider any of its events had.
        """
        ALTER TABLE events ADD COLUMN ip_kind TEXT;
        ALTER TABLE mcp_sessions ADD COLUMN ip_kind TEXT;
        ALTER TABLE sessions ADD COLUMN ip_kind TEXT
        """,
    ),
    (
        21,
        # Seed 002's account: it owns projects (gateways) and holds one account key (`ak_`, only its SHA-256 and a
        # prefix stored; null until an operator issues one). Every gateway so far belongs to the `default` account.
        # `project_usage` counts the events each gateway ever stored (the writer adds each transaction's, so
        # retention does not lower it): the account's `max_events_lifetime` is checked against its sum.
        """
        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT UNIQUE,
            key_prefix TEXT,
            key_created_at_ms BIGINT,
            created_at_ms BIGINT NOT NULL
        );
        INSERT INTO accounts (id, name, created_at_ms) VALUES ('default', 'Default account', 0);
        ALTER TABLE gateways ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
        CREATE INDEX gateways_by_account ON gateways (account_id, name);
        CREATE TABLE project_usage (
            gateway_id TEXT PRIMARY KEY,
            events_total BIGINT NOT NULL
        );
        INSERT INTO project_usage (gateway_id, events_total) SELECT gateway_id, COUNT(*) FROM events GROUP BY gateway_id
        """,
    ),
    (
        22,
        # A/B experiments (seed 002's /experiments): variants and weights are JSON arrays in the same order, the
        # first variant the control. `experiment_users` is their write-time rollup (`store.experiment_users`): per
        # experiment, visitor and variant, the exposure, tagged and goal events; `experiment_variants` their sums per
        # variant, which the results read.
        """
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            name TEXT NOT NULL,
            variants TEXT NOT NULL,
            weights TEXT NOT NULL,
            goal_event TEXT NOT NULL,
            status TEXT NOT NULL,
            winner TEXT,
            created_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL,
            UNIQUE (gateway_id, name)
        );
        CREATE TABLE experiment_users (
            gateway_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            user_key TEXT NOT NULL,
            variant TEXT NOT NULL,
            exposures BIGINT NOT NULL,
            events BIGINT NOT NULL,
            conversions BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, experiment_id, user_key, variant)
        );
        CREATE TABLE experiment_variants (
            gateway_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            users BIGINT NOT NULL,
            exposures BIGINT NOT NULL,
            converted_users BIGINT NOT NULL,
            conversions BIGINT NOT NULL,
            PRIMARY KEY (gateway_id, experiment_id, variant)
        )
        """,
    ),
    (
        23,
        # Integrations (issue 17): each gateway's destinations (Meta CAPI, GA4, ...; their secrets encrypted in
        # `secrets`), and the outbox of deliveries, inserted in the same transaction as the event they carry
        # (`store.outbox`) and sent by the delivery worker (`integrations.worker`). A pending delivery is due at
        # `due_at_ms`; claiming it moves that forward by a lease, so one that a crashed process held is due again.
        """
        CREATE TABLE integrations (
            id TEXT PRIMARY KEY,
            gateway_id TEXT NOT NULL REFERENCES gateways(id),
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            sync INTEGER NOT NULL,
            event_filter TEXT,
            config TEXT NOT NULL,
            secrets TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL,
            last_error TEXT,
            last_error_at_ms BIGINT
        );
        CREATE INDEX integrations_by_gateway ON integrations (gateway_id);
        CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY,
            integration_id TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_ts_ms BIGINT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            due_at_ms BIGINT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL,
            latency_ms BIGINT,
            last_error TEXT
        );
        CREATE INDEX deliveries_due ON deliveries (status, due_at_ms);
        CREATE INDEX deliveries_by_integration ON deliveries (integration_id, status, updated_at_ms);
        CREATE INDEX deliveries_by_event ON deliveries (gateway_id, event_id);
        CREATE INDEX deliveries_by_time ON deliveries (gateway_id, event_ts_ms)
        """,
    ),
)


POSTGRES_MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1001,
        # The first and last event of a web event name in a window (/properties, /properties/received): PostgreSQL
        # does not read `events_by_name` in ts_ms order past its `primitive_type IS NULL` and scanned the window
        # by time instead (9 s at 1M events); with the NULL in the predicate it reads the name's range (~30 ms).
        """
        CREATE INDEX events_by_web_name ON events (gateway_id, source, name, ts_ms) WHERE primitive_type IS NULL
        """,
    ),
)
"""Migrations of the PostgreSQL store only (versions from 1001): what its planner needs and SQLite's does not."""


def apply_migrations(
    conn: C,
    begin: Callable[[C], None],
    translate: Callable[[str], str] = lambda sql: sql,
    extra: tuple[tuple[int, str], ...] = (),
) -> set[int]:
    """Apply pending migrations in one transaction (`begin` starts it and takes whatever lock keeps two processes
    from migrating at once); the versions this call applied. `translate` adapts a statement to the database;
    `extra` are the database's own migrations, after the shared ones."""
    with transaction(conn, begin):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT)")
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        pending = {version for version, _ in (*MIGRATIONS, *extra)} - applied
        for version, script in (*MIGRATIONS, *extra):
            if version in applied:
                continue
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                conn.execute(translate(statement))
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, int(time.time() * 1000)))
            logger.info("applied schema migration %d", version)
    return pending
