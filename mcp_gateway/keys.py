"""API keys: one concept with kinds, each key belonging to one gateway.

    org   the Agnost ingestion API (`X-Org-Id`)             org_…
    pk    publishable tracking key, origin-checked          pk_…
    sk    secret tracking key                               sk_…
    read  analytics read access                             rk_…

A key is shown once, when created; the store keeps its SHA-256 and a short prefix to recognise it
by. `KeyService.resolve` caches lookups briefly, so a revoked key stops working within
`cache_seconds` on every process (at once on the process that revoked it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Collection
from typing import Final, get_args

from .errors import InvalidInputError
from .store import KeyKind, KeyRecord, Store

KEY_PREFIXES: Final[dict[KeyKind, str]] = {"org": "org_", "pk": "pk_", "sk": "sk_", "read": "rk_"}
KEY_KINDS: Final[tuple[KeyKind, ...]] = get_args(KeyKind)
MAX_CACHED_KEYS: Final = 10_000
"""Lookups remembered per process; the oldest are forgotten past this."""


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeyService:
    def __init__(self, store: Store, *, cache_seconds: float) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def create(self, gateway_id: str, kind: str, name: str = "") -> tuple[KeyRecord, str]:
        """A new key for `gateway_id`: its record and the plaintext, which is never stored."""
        if kind not in KEY_PREFIXES:
            raise InvalidInputError(f"kind must be one of {', '.join(KEY_KINDS)}", field="kind")
        if len(name) > 200:
            raise InvalidInputError("name is at most 200 characters", field="name")
        key_kind: KeyKind = kind  # narrowed by the membership check above
        plaintext = KEY_PREFIXES[key_kind] + secrets.token_urlsafe(24)
        record = KeyRecord(
            id="key_" + uuid.uuid4().hex[:16],
            gateway_id=gateway_id,
            kind=key_kind,
            name=name,
            key_hash=hash_key(plaintext),
            prefix=plaintext[: len(KEY_PREFIXES[key_kind]) + 6],
            created_at_ms=_now_ms(),
            revoked_at_ms=None,
        )
        await self._store.create_key(record)
        return record, plaintext

    async def list(self, gateway_id: str) -> list[KeyRecord]:
        return await self._store.list_keys(gateway_id)

    async def revoke(self, gateway_id: str, key_id: str) -> KeyRecord:
        record = await self._store.revoke_key(gateway_id, key_id, now_ms=_now_ms())
        self._cache.pop(record.key_hash, None)
        return record

    async def resolve(self, plaintext: str, kinds: Collection[KeyKind]) -> KeyRecord | None:
        """The live key of one of `kinds` that `plaintext` is, or None."""
        record = await self.find(plaintext)
        if record is None or record.revoked_at_ms is not None or record.kind not in kinds:
            return None
        return record

    async def find(self, plaintext: str) -> KeyRecord | None:
        """The key `plaintext` is, of any kind, revoked or not; None for a key nobody created."""
        if not plaintext or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        record = await self._store.find_key(digest)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (now, record)
        return record
