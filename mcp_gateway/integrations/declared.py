"""A gateway's integrations declared in a file, kept in version control beside its agent manifest, and applied
with `mcp-gateway integrations apply --gateway ID FILE [--prune]`.

    {"integrations": [
        {"kind": "meta", "name": "Meta ads", "sync": false, "enabled": true,
         "config": {"pixel_id": "1234567890", "access_token": {"env": "META_CAPI_TOKEN"}, "events": ["Purchase"]}}
    ]}

Secrets never sit in the file in clear: each of a platform's secret fields (`access_token`, `api_secret`,
`secret`) must be `{"env": "NAME"}`, read from the environment of the command that applies the file (and then
stored encrypted, as the admin API stores them). Any other value may be such a reference too.

An integration is known by its kind and name (unique in the file, never empty): one already stored under that
kind and name is updated to exactly what the file says (a config key the file leaves out goes back to its
default), any other is created. With `prune`, the gateway's integrations the file does not name are deleted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError
from .registry import Integration, IntegrationCreate, IntegrationService, IntegrationUpdate

MAX_DECLARED: Final = 100
"""Most integrations one file declares."""

Action = Literal["created", "updated", "deleted"]


class DeclaredIntegration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    sync: bool = False
    config: dict[str, Any]


class DeclaredIntegrations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    integrations: list[DeclaredIntegration] = Field(max_length=MAX_DECLARED)


@dataclass(frozen=True, slots=True)
class Applied:
    action: Action
    integration_id: str
    kind: str
    name: str


def resolve(config: Mapping[str, Any], secret_fields: frozenset[str], env: Mapping[str, str]) -> dict[str, Any]:
    """`config` with each `{"env": NAME}` replaced by that variable's value; a secret given in clear, or a variable
    that is not set, is refused naming the field."""
    resolved: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
            if value["env"] not in env:
                raise InvalidInputError(
                    f"config.{key}: environment variable {value['env']} is not set", field=f"config.{key}"
                )
            resolved[key] = env[value["env"]]
        elif key in secret_fields and value is not None:
            raise InvalidInputError(
                f'config.{key} is a secret: give it as {{"env": "VARIABLE"}}, never in the file', field=f"config.{key}"
            )
        else:
            resolved[key] = value
    return resolved


async def apply(
    service: IntegrationService,
    gateway_id: str,
    declared: DeclaredIntegrations,
    *,
    prune: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[Applied]:
    """Make the gateway's integrations what `declared` says (module docstring); what was done, in file order, then
    the deletions. Every entry is checked (kind, secrets, each platform's config rules) before anything is written."""
    environment = os.environ if env is None else env
    seen: set[tuple[str, str]] = set()
    wanted: list[tuple[DeclaredIntegration, dict[str, Any]]] = []
    for entry in declared.integrations:
        if (entry.kind, entry.name) in seen:
            raise InvalidInputError(f"name: {entry.kind} integration {entry.name!r} is declared twice", field="name")
        seen.add((entry.kind, entry.name))
        platform = service.platform(entry.kind)
        config = resolve(entry.config, platform.secret_fields, environment)
        service.checked_config(entry.kind, config)
        wanted.append((entry, config))
    current: dict[tuple[str, str], Integration] = {}
    for integration in await service.list(gateway_id):
        current.setdefault((integration.kind, integration.name), integration)
    done: list[Applied] = []
    for entry, config in wanted:
        existing = current.get((entry.kind, entry.name))
        if existing is None:
            spec = IntegrationCreate(
                kind=entry.kind, name=entry.name, enabled=entry.enabled, sync=entry.sync, config=config
            )
            created = await service.create(gateway_id, spec)
            done.append(Applied("created", created.id, created.kind, created.name))
            continue
        replaced = {key: None for key in existing.config} | config  # what the file leaves out goes to its default
        patch = IntegrationUpdate(enabled=entry.enabled, sync=entry.sync, config=replaced)
        await service.update(gateway_id, existing.id, patch)
        done.append(Applied("updated", existing.id, existing.kind, existing.name))
    if prune:
        for key, integration in current.items():
            if key not in seen:
                await service.delete(gateway_id, integration.id)
                done.append(Applied("deleted", integration.id, integration.kind, integration.name))
    return done
