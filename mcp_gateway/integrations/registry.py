"""Each gateway's integrations: where its events are forwarded (Meta CAPI, GA4, TikTok, a signed webhook).

An integration is a platform `kind` (a key of `platforms.PLATFORMS`), a name, `enabled`, `sync` and a config: the
platform's fields plus the common `event_map` ({our name: theirs}), `events` (our event names to forward; null:
all) and `endpoint` (the platform's base URL, for a test server or a regional host). The platform validates it
all (`Platform.check_config`). Its secret fields (`Platform.secret_fields`) are stored encrypted
(`crypto.SecretBox`) and never shown again: a view says `has_<field>: true` instead. Updating an integration
merges the config given into the stored one, so a secret need not be sent again; a field set to null is removed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError, NotFoundError
from ..store import Store
from .crypto import SecretBox, SecretsKeyError
from .platforms import Platform

logger = logging.getLogger(__name__)

MAX_INTEGRATIONS_PER_GATEWAY: Final = 20


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32, description="The platform: meta, ga4, tiktok, webhook")
    name: str = Field(default="", max_length=200)
    enabled: bool = True
    sync: bool = Field(
        default=False,
        description="Send from the `/track` request itself (with the client's IP and user agent); when every"
        " synchronous integration fails, `/track` answers 502 All Providers Failed (the event is kept and retried)",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="The platform's fields, plus event_map, events and endpoint"
    )


class IntegrationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None
    sync: bool | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Merged into the stored config; a field set to null is removed"
    )


@dataclass(frozen=True, slots=True)
class Integration:
    """An integration with its config in clear (secrets included): in memory only, never answered."""

    id: str
    gateway_id: str
    kind: str
    name: str
    enabled: bool
    sync: bool
    config: dict[str, Any]
    created_at_ms: int
    updated_at_ms: int
    last_error: str | None = None
    last_error_at_ms: int | None = None

    @property
    def events(self) -> list[str] | None:
        names = self.config.get("events")
        return None if names is None else list(names)


_COLUMNS: Final = (
    "id, gateway_id, kind, name, enabled, sync, config, secrets, created_at_ms, updated_at_ms, last_error,"
    " last_error_at_ms"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


class IntegrationService:
    """Creates, reads, changes and deletes integrations; encrypts their secrets on the way in."""

    def __init__(
        self, store: Store, box: SecretBox, platforms: Mapping[str, Platform], *, cache_seconds: float = 1.0
    ) -> None:
        self._store = store
        self._box = box
        self.platforms = platforms
        self._cache_seconds = cache_seconds
        self._sync_ids: dict[str, tuple[float, tuple[str, ...]]] = {}

    def platform(self, kind: str) -> Platform:
        platform = self.platforms.get(kind)
        if platform is None:
            raise InvalidInputError(f"unknown kind {kind!r}; one of: {', '.join(sorted(self.platforms))}", field="kind")
        return platform

    def checked_config(self, kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """`config` validated and normalised by the platform (common fields included); `InvalidInputError` naming
        `config.<field>` otherwise."""
        platform = self.platform(kind)
        try:
            return platform.check_config(config)
        except InvalidInputError as exc:
            field = f"config.{exc.field}" if exc.field else "config"
            raise InvalidInputError(str(exc), field=field) from None

    def _row(self, row: Sequence[Any]) -> Integration:
        config: dict[str, Any] = json.loads(row[6])
        config.update(self._box.open(row[7]))
        return Integration(
            id=row[0],
            gateway_id=row[1],
            kind=row[2],
            name=row[3],
            enabled=bool(row[4]),
            sync=bool(row[5]),
            config=config,
            created_at_ms=int(row[8]),
            updated_at_ms=int(row[9]),
            last_error=row[10],
            last_error_at_ms=None if row[11] is None else int(row[11]),
        )

    def _split(self, kind: str, config: dict[str, Any]) -> tuple[str, str]:
        """(plain config JSON, sealed secrets) of a checked config."""
        secret_fields = self.platform(kind).secret_fields
        secrets = {name: str(value) for name, value in config.items() if name in secret_fields and value is not None}
        plain = {name: value for name, value in config.items() if name not in secret_fields}
        return json.dumps(plain, sort_keys=True), self._box.seal(secrets)

    async def list(self, gateway_id: str) -> list[Integration]:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM integrations WHERE gateway_id = ? ORDER BY created_at_ms, id", (gateway_id,)
        )
        return [self._row(row) for row in rows]

    async def get(self, gateway_id: str, integration_id: str) -> Integration:
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM integrations WHERE gateway_id = ? AND id = ?", (gateway_id, integration_id)
        )
        if not rows:
            raise NotFoundError(f"gateway {gateway_id!r} has no integration {integration_id!r}")
        return self._row(rows[0])

    async def load(self, integration_ids: Sequence[str]) -> dict[str, Integration | SecretsKeyError]:
        """These integrations by id (the ones that still exist); one whose secrets cannot be decrypted (another key)
        as the error, so the others are still delivered."""
        if not integration_ids:
            return {}
        marks = ", ".join("?" * len(integration_ids))
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM integrations WHERE id IN ({marks})", integration_ids)
        loaded: dict[str, Integration | SecretsKeyError] = {}
        for row in rows:
            try:
                loaded[row[0]] = self._row(row)
            except SecretsKeyError as exc:
                logger.error("integration %s: %s", row[0], exc)
                loaded[row[0]] = exc
        return loaded

    async def create(self, gateway_id: str, spec: IntegrationCreate) -> Integration:
        config = self.checked_config(spec.kind, spec.config)
        plain, sealed = self._split(spec.kind, config)
        now = _now_ms()
        integration_id = "int_" + uuid.uuid4().hex[:20]
        values = (integration_id, gateway_id, spec.kind, spec.name, int(spec.enabled), int(spec.sync))
        event_filter = None if config.get("events") is None else json.dumps(config["events"])

        def job(conn: Any) -> None:
            count = conn.execute("SELECT COUNT(*) FROM integrations WHERE gateway_id = ?", (gateway_id,)).fetchone()
            if int(count[0]) >= MAX_INTEGRATIONS_PER_GATEWAY:
                raise InvalidInputError(f"a gateway has at most {MAX_INTEGRATIONS_PER_GATEWAY} integrations")
            conn.execute(
                "INSERT INTO integrations (id, gateway_id, kind, name, enabled, sync, config, secrets, created_at_ms,"
                " updated_at_ms, event_filter) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, plain, sealed, now, now, event_filter),
            )

        await self._store.write(job)
        self._sync_ids.pop(gateway_id, None)
        return await self.get(gateway_id, integration_id)

    async def update(self, gateway_id: str, integration_id: str, patch: IntegrationUpdate) -> Integration:
        current = await self.get(gateway_id, integration_id)
        config = current.config
        if patch.config is not None:
            merged = {**current.config, **patch.config}
            config = self.checked_config(current.kind, {k: v for k, v in merged.items() if v is not None})
        plain, sealed = self._split(current.kind, config)
        event_filter = None if config.get("events") is None else json.dumps(config["events"])
        name = current.name if patch.name is None else patch.name
        enabled = current.enabled if patch.enabled is None else patch.enabled
        sync = current.sync if patch.sync is None else patch.sync
        await self._store.write(
            lambda conn: conn.execute(
                "UPDATE integrations SET name = ?, enabled = ?, sync = ?, config = ?, secrets = ?, event_filter = ?,"
                " updated_at_ms = ? WHERE gateway_id = ? AND id = ?",
                (name, int(enabled), int(sync), plain, sealed, event_filter, _now_ms(), gateway_id, integration_id),
            )
        )
        self._sync_ids.pop(gateway_id, None)
        return await self.get(gateway_id, integration_id)

    async def delete(self, gateway_id: str, integration_id: str) -> None:
        """Delete the integration and its deliveries (sent or not)."""
        await self.get(gateway_id, integration_id)

        def job(conn: Any) -> None:
            conn.execute("DELETE FROM deliveries WHERE integration_id = ?", (integration_id,))
            conn.execute("DELETE FROM integrations WHERE gateway_id = ? AND id = ?", (gateway_id, integration_id))

        await self._store.write(job)
        self._sync_ids.pop(gateway_id, None)

    async def sync_ids(self, gateway_id: str) -> tuple[str, ...]:
        """The gateway's enabled synchronous integrations, cached for `cache_seconds` (asked on every `/track`)."""
        cached = self._sync_ids.get(gateway_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        rows = await self._store.fetch(
            "SELECT id FROM integrations WHERE gateway_id = ? AND enabled = 1 AND sync = 1 ORDER BY id", (gateway_id,)
        )
        ids = tuple(row[0] for row in rows)
        self._sync_ids[gateway_id] = (now, ids)
        return ids

    def view(self, integration: Integration) -> dict[str, Any]:
        """The integration as the API shows it: secrets only as `has_<field>: true`."""
        secret_fields = self.platforms[integration.kind].secret_fields if integration.kind in self.platforms else ()
        config: dict[str, Any] = {k: v for k, v in integration.config.items() if k not in secret_fields}
        for name in sorted(secret_fields):
            config[f"has_{name}"] = bool(integration.config.get(name))
        return {
            "id": integration.id,
            "gateway_id": integration.gateway_id,
            "kind": integration.kind,
            "name": integration.name,
            "enabled": integration.enabled,
            "sync": integration.sync,
            "config": config,
            "created_at_ms": integration.created_at_ms,
            "updated_at_ms": integration.updated_at_ms,
        }
