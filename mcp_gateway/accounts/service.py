"""Accounts (seed 002): an account owns projects (gateways) and holds one account key.

    ak_…   the account key: manages its account's projects and reads all of them

Like every key here, the account key is shown once, when issued; the store keeps its SHA-256 and a short prefix.
An account has at most one live key: issuing a new one (`POST /account/revoke-key`, the admin API, `mcp-gateway
accounts key`) replaces the old, which stops working at once on the process that replaced it and within
`cache_seconds` on the others. Every gateway belongs to one account; those made before accounts existed, and
those the admin API and the CLI create, belong to `default`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ConflictError, NotFoundError
from ..keys import MAX_CACHED_KEYS, hash_key
from ..store import Store
from ..store.base import Connection
from .deletion import LIVE_PROJECT

ACCOUNT_KEY_PREFIX: Final = "ak_"
DEFAULT_ACCOUNT_ID: Final = "default"
"""The account every gateway made outside `POST /projects` belongs to (migration 21)."""
DEFAULT_ACCOUNT_NAME: Final = "Default account"
ACCOUNT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"

_COLUMNS: Final = "id, name, key_prefix, key_created_at_ms, created_at_ms"


@dataclass(frozen=True, slots=True)
class Account:
    """An account as stored, without its key's hash."""

    id: str
    name: str
    key_prefix: str | None
    """The first characters of the live account key (`ak_` and 6 more), None while no key was issued."""
    key_created_at_ms: int | None
    created_at_ms: int


def _account(row: tuple[Any, ...] | Any) -> Account:
    return Account(row[0], row[1], row[2], row[3], row[4])


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_account_key() -> str:
    return ACCOUNT_KEY_PREFIX + secrets.token_urlsafe(24)


def is_account_key(presented: str) -> bool:
    return presented.startswith(ACCOUNT_KEY_PREFIX)


class AccountService:
    """Reads and changes accounts and their keys; remembers key lookups for `cache_seconds`."""

    def __init__(self, store: Store, *, cache_seconds: float) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Account | None]] = {}

    async def get(self, account_id: str) -> Account | None:
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        return _account(rows[0]) if rows else None

    async def require(self, account_id: str) -> Account:
        account = await self.get(account_id)
        if account is None:
            raise NotFoundError(f"account {account_id!r} does not exist")
        return account

    async def all(self) -> list[Account]:
        return [_account(row) for row in await self._store.fetch(f"SELECT {_COLUMNS} FROM accounts ORDER BY id")]

    async def create(self, account_id: str, name: str) -> tuple[Account, str]:
        """A new account and its first key (plaintext, shown once); `ConflictError` if the id is taken."""
        plaintext = new_account_key()
        now = _now_ms()
        account = Account(account_id, name, plaintext[:9], now, now)

        def job(conn: Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO accounts (id, name, key_hash, key_prefix, key_created_at_ms, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (account_id, name, hash_key(plaintext), account.key_prefix, now, now),
            )
            if cursor.rowcount == 0:
                raise ConflictError(f"account {account_id!r} already exists")

        await self._store.write(job)
        return account, plaintext

    async def ensure_default(self) -> None:
        """Make sure the `default` account exists (migration 21 made it; a database emptied since has none)."""
        await self._store.execute_now(
            "INSERT INTO accounts (id, name, created_at_ms) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (DEFAULT_ACCOUNT_ID, DEFAULT_ACCOUNT_NAME, _now_ms()),
        )

    async def issue_key(self, account_id: str) -> tuple[Account, str]:
        """Replace the account's key with a new one (plaintext, shown once); the old one stops working."""
        plaintext = new_account_key()
        now = _now_ms()

        def job(conn: Connection) -> tuple[str | None, Account]:
            old = conn.execute("SELECT key_hash FROM accounts WHERE id = ?", (account_id,)).fetchone()
            if old is None:
                raise NotFoundError(f"account {account_id!r} does not exist")
            row = conn.execute(
                f"UPDATE accounts SET key_hash = ?, key_prefix = ?, key_created_at_ms = ? WHERE id = ?"
                f" RETURNING {_COLUMNS}",
                (hash_key(plaintext), plaintext[:9], now, account_id),
            ).fetchone()
            return old[0], _account(row)

        old_hash, account = await self._store.write(job)
        if old_hash is not None:
            self._cache.pop(old_hash, None)
        return account, plaintext

    async def resolve(self, plaintext: str) -> Account | None:
        """The account whose live key `plaintext` is, or None."""
        if not is_account_key(plaintext) or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM accounts WHERE key_hash = ?", (digest,))
        account = _account(rows[0]) if rows else None
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (now, account)
        return account

    async def owner(self, gateway_id: str) -> str | None:
        """The account `gateway_id` belongs to, None if there is no such gateway (or it is being deleted)."""
        rows = await self._store.fetch(
            f"SELECT g.account_id FROM gateways g WHERE g.id = ? AND {LIVE_PROJECT}", (gateway_id,)
        )
        return str(rows[0][0]) if rows else None

    async def project_ids(self, account_id: str) -> list[str]:
        rows = await self._store.fetch(
            f"SELECT g.id FROM gateways g WHERE g.account_id = ? AND {LIVE_PROJECT} ORDER BY g.id", (account_id,)
        )
        return [str(row[0]) for row in rows]

    async def project_names(self, account_id: str) -> list[tuple[str, str]]:
        """The account's projects (not those being deleted) as (id, name), by name."""
        rows = await self._store.fetch(
            f"SELECT g.id, g.name FROM gateways g WHERE g.account_id = ? AND {LIVE_PROJECT} ORDER BY g.name, g.id",
            (account_id,),
        )
        return [(str(row[0]), str(row[1])) for row in rows]
