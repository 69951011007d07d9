"""Schema migrations, applied in order; each runs once and is recorded in `schema_migrations`.

The SQL is kept portable (no SQLite-only types or syntax) so the PostgreSQL store can apply the
same list. Timestamps are integer milliseconds since the epoch.
"""

from __future__ import annotations

from typing import Final

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
)
