"""Seed 002's projects: a project is a gateway of an account, its project token the gateway's publishable key.

Creating one is one transaction of the writer, which also takes the account's row lock (PostgreSQL; SQLite has
one writer), so two concurrent creates of one name cannot both create, nor two creates both take the last slot:

    a project of this account has the name (case and outer spaces aside)
        and the request's allowed_origins are absent or the same    -> that project, `existing: true` (200)
        and they differ                                             -> conflict (409) naming it
    the account holds `projects_limit` projects                     -> limit (403)
    otherwise                                                       -> a new gateway and its pk_ key (201)

A project being deleted (`deletion`) is left out of everything here: lists, counts, names.

The id is the name as a slug plus 6 random hex digits (`my-site-3fa9c1`): ids are global, so it never collides
with another account's project nor reuses a deleted one's.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..errors import NotFoundError
from ..gateways import DEFAULT_ALLOWED_ORIGINS, default_manifest
from ..keys import KEY_PREFIXES, hash_key
from ..store import Store
from ..store.base import Connection
from .deletion import LIVE_PROJECT

PROJECT_TOKEN_KIND: Final = "pk"
PROJECT_TOKEN_NAME: Final = "project token"
SECRET_KINDS: Final = ("sk", "read")
"""The keys `has_api_key` counts: secret ones (server tracking, analytics), not the public project token."""
DAY_MS: Final = 24 * 3600 * 1000
_SLUG: Final = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A project as stored, with what the API shows of its keys and usage."""

    id: str
    name: str
    allowed_origins: tuple[str, ...]
    account_id: str
    created_at_ms: int
    updated_at_ms: int
    project_token_prefix: str | None
    has_api_key: bool
    usage_today: int
    events_total: int


@dataclass(frozen=True, slots=True)
class Created:
    project_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Existing:
    project_id: str


@dataclass(frozen=True, slots=True)
class Conflict:
    project_id: str
    name: str


@dataclass(frozen=True, slots=True)
class AtLimit:
    count: int
    limit: int


CreateResult = Created | Existing | Conflict | AtLimit


def _now_ms() -> int:
    return int(time.time() * 1000)


def same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def project_id_for(name: str) -> str:
    slug = _SLUG.sub("-", name.casefold()).strip("-")[:40].strip("-") or "project"
    return f"{slug}-{secrets.token_hex(3)}"


_PROJECT_COLUMNS: Final = "g.id, g.name, g.allowed_origins, g.account_id, g.created_at_ms, g.updated_at_ms"


class Projects:
    """Reads and changes the projects of accounts (their gateways' rows and project tokens)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def of_account(self, account_id: str, *, now_ms: int | None = None) -> list[ProjectRow]:
        rows = await self._store.fetch(
            f"SELECT {_PROJECT_COLUMNS} FROM gateways g WHERE g.account_id = ? AND {LIVE_PROJECT}"
            " ORDER BY g.created_at_ms, g.id",
            (account_id,),
        )
        return await self._described(rows, now_ms)

    async def every(self, *, now_ms: int | None = None) -> list[ProjectRow]:
        """Every project of every account."""
        rows = await self._store.fetch(
            f"SELECT {_PROJECT_COLUMNS} FROM gateways g WHERE {LIVE_PROJECT} ORDER BY g.created_at_ms, g.id"
        )
        return await self._described(rows, now_ms)

    async def get(self, project_id: str, *, now_ms: int | None = None) -> ProjectRow | None:
        rows = await self._store.fetch(
            f"SELECT {_PROJECT_COLUMNS} FROM gateways g WHERE g.id = ? AND {LIVE_PROJECT}", (project_id,)
        )
        described = await self._described(rows, now_ms)
        return described[0] if described else None

    async def require(self, project_id: str) -> ProjectRow:
        project = await self.get(project_id)
        if project is None:
            raise NotFoundError(f"No project {project_id}")
        return project

    async def _described(self, rows: list[tuple[Any, ...]], now_ms: int | None) -> list[ProjectRow]:
        """Projects of `rows` with their token prefix, secret keys, events today (UTC) and ever."""
        if not rows:
            return []
        ids = [str(row[0]) for row in rows]
        marks = ", ".join("?" * len(ids))
        now = _now_ms() if now_ms is None else now_ms
        day_start = now - now % DAY_MS
        keys = await self._store.fetch(
            f"SELECT gateway_id, kind, prefix FROM api_keys WHERE gateway_id IN ({marks}) AND revoked_at_ms IS NULL"
            " ORDER BY created_at_ms",
            ids,
        )
        today = dict(
            await self._store.fetch(
                f"SELECT gateway_id, COUNT(*) FROM events WHERE gateway_id IN ({marks}) AND ts_ms >= ? AND ts_ms < ?"
                " GROUP BY gateway_id",
                (*ids, day_start, day_start + DAY_MS),
            )
        )
        totals = dict(
            await self._store.fetch(
                f"SELECT gateway_id, events_total FROM project_usage WHERE gateway_id IN ({marks})", ids
            )
        )
        tokens: dict[str, str] = {}
        secret: set[str] = set()
        for gateway_id, kind, prefix in keys:
            if kind == PROJECT_TOKEN_KIND:
                tokens.setdefault(gateway_id, prefix)
            elif kind in SECRET_KINDS:
                secret.add(gateway_id)
        return [
            ProjectRow(
                id=row[0],
                name=row[1],
                allowed_origins=tuple(json.loads(row[2])),
                account_id=row[3],
                created_at_ms=row[4],
                updated_at_ms=row[5],
                project_token_prefix=tokens.get(row[0]),
                has_api_key=row[0] in secret,
                usage_today=int(today.get(row[0], 0)),
                events_total=int(totals.get(row[0], 0)),
            )
            for row in rows
        ]

    async def create(
        self, account_id: str, name: str, allowed_origins: tuple[str, ...] | None, *, limit: int | None
    ) -> CreateResult:
        """Create a project unless the account has one of that name (see the module's table)."""
        name = name.strip()
        now = _now_ms()
        origins = DEFAULT_ALLOWED_ORIGINS if allowed_origins is None else allowed_origins
        manifest = json.dumps(json.loads(default_manifest().model_dump_json()))
        token = KEY_PREFIXES[PROJECT_TOKEN_KIND] + secrets.token_urlsafe(24)

        def job(conn: Connection) -> CreateResult:
            if conn.execute("UPDATE accounts SET name = name WHERE id = ?", (account_id,)).rowcount == 0:
                raise NotFoundError(f"account {account_id!r} does not exist")
            owned = conn.execute(
                f"SELECT g.id, g.name, g.allowed_origins FROM gateways g WHERE g.account_id = ? AND {LIVE_PROJECT}"
                " ORDER BY g.created_at_ms, g.id",
                (account_id,),
            ).fetchall()
            for project_id, project_name, stored_origins in owned:
                if same_name(project_name, name):
                    if allowed_origins is None or tuple(json.loads(stored_origins)) == allowed_origins:
                        return Existing(project_id)
                    return Conflict(project_id, project_name)
            if limit is not None and len(owned) >= limit:
                return AtLimit(len(owned), limit)
            while True:
                project_id = project_id_for(name)
                inserted = conn.execute(
                    "INSERT INTO gateways (id, name, allowed_origins, manifest, created_at_ms, updated_at_ms,"
                    " account_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (project_id, name, json.dumps(list(origins)), manifest, now, now, account_id),
                )
                if inserted.rowcount:
                    break
            conn.execute(
                "INSERT INTO api_keys (id, gateway_id, kind, name, key_hash, prefix, created_at_ms, revoked_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    "key_" + secrets.token_hex(8),
                    project_id,
                    PROJECT_TOKEN_KIND,
                    PROJECT_TOKEN_NAME,
                    hash_key(token),
                    token[: len(KEY_PREFIXES[PROJECT_TOKEN_KIND]) + 6],
                    now,
                ),
            )
            return Created(project_id, token)

        return await self._store.write(job)

    async def update(
        self, project_id: str, *, name: str | None, allowed_origins: tuple[str, ...] | None
    ) -> Literal["updated"] | Conflict:
        """Rename and/or change origins; a conflict if another project of the account has the new name."""
        now = _now_ms()

        def job(conn: Connection) -> Literal["updated"] | Conflict:
            row = conn.execute("SELECT account_id FROM gateways WHERE id = ?", (project_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"No project {project_id}")
            if name is not None:
                conn.execute("UPDATE accounts SET name = name WHERE id = ?", (row[0],))
                others = conn.execute(
                    f"SELECT g.id, g.name FROM gateways g WHERE g.account_id = ? AND g.id <> ? AND {LIVE_PROJECT}",
                    (row[0], project_id),
                ).fetchall()
                for other_id, other_name in others:
                    if same_name(other_name, name):
                        return Conflict(other_id, other_name)
            changes: dict[str, object] = {"updated_at_ms": now}
            if name is not None:
                changes["name"] = name.strip()
            if allowed_origins is not None:
                changes["allowed_origins"] = json.dumps(list(allowed_origins))
            assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours, not input
            conn.execute(f"UPDATE gateways SET {assignments} WHERE id = ?", (*changes.values(), project_id))
            return "updated"

        return await self._store.write(job)

    async def events_total(self, account_id: str) -> int:
        """Events the account's projects ever stored (`project_usage`)."""
        rows = await self._store.fetch(
            "SELECT COALESCE(SUM(u.events_total), 0) FROM project_usage u JOIN gateways g ON g.id = u.gateway_id"
            " WHERE g.account_id = ?",
            (account_id,),
        )
        return int(rows[0][0]) if rows else 0

    async def count(self, account_id: str) -> int:
        rows = await self._store.fetch(
            f"SELECT COUNT(*) FROM gateways g WHERE g.account_id = ? AND {LIVE_PROJECT}", (account_id,)
        )
        return int(rows[0][0])
