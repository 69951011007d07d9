"""Experiments as stored (migration 22's `experiments` table): create, read, list, update, delete, each one
statement on the store's writer or read path, every value a bound parameter."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from ..errors import ConflictError, NotFoundError
from ..store import Store
from ..store.base import Connection
from .models import Experiment, ExperimentCreate, Status

_COLUMNS: Final = "id, gateway_id, name, variants, weights, goal_event, status, winner, created_at_ms, updated_at_ms"


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    id: str
    gateway_id: str
    name: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    goal_event: str
    status: Status
    winner: str | None
    created_at_ms: int
    updated_at_ms: int

    def view(self) -> Experiment:
        total = sum(self.weights)
        return Experiment(
            id=self.id,
            project=self.gateway_id,
            name=self.name,
            variants=list(self.variants),
            traffic_split={
                variant: weight / total for variant, weight in zip(self.variants, self.weights, strict=True)
            },
            goal_event=self.goal_event,
            status=self.status,
            winner=self.winner,
            control=self.variants[0],
            created_at=self.created_at_ms,
            updated_at=self.updated_at_ms,
        )


def _record(row: Sequence[Any]) -> ExperimentRecord:
    return ExperimentRecord(
        id=row[0],
        gateway_id=row[1],
        name=row[2],
        variants=tuple(json.loads(row[3])),
        weights=tuple(float(weight) for weight in json.loads(row[4])),
        goal_event=row[5],
        status=cast(Status, row[6]),
        winner=row[7],
        created_at_ms=int(row[8]),
        updated_at_ms=int(row[9]),
    )


def new_experiment_id() -> str:
    return f"exp_{secrets.token_hex(8)}"


async def create_experiment(store: Store, gateway_id: str, body: ExperimentCreate, *, now_ms: int) -> ExperimentRecord:
    """Store a new experiment; `ConflictError` naming the name when the gateway has one of that name."""
    record = ExperimentRecord(
        id=new_experiment_id(),
        gateway_id=gateway_id,
        name=body.name,
        variants=tuple(body.variants),
        weights=tuple(body.weights()),
        goal_event=body.goal_event,
        status="active",
        winner=None,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
    )

    def insert(conn: Connection) -> int:
        cursor = conn.execute(
            f"INSERT INTO experiments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (gateway_id, name) DO NOTHING",
            (
                record.id,
                record.gateway_id,
                record.name,
                json.dumps(list(record.variants)),
                json.dumps(list(record.weights)),
                record.goal_event,
                record.status,
                record.winner,
                record.created_at_ms,
                record.updated_at_ms,
            ),
        )
        return cursor.rowcount

    if await store.write(insert) != 1:
        raise ConflictError(f"An experiment named {body.name!r} exists in project {gateway_id} already")
    return record


async def get_experiment(store: Store, gateway_id: str, experiment_id: str) -> ExperimentRecord:
    """The gateway's experiment; `NotFoundError` when it has none of that id (another gateway's included)."""
    rows = await store.fetch(
        f"SELECT {_COLUMNS} FROM experiments WHERE gateway_id = ? AND id = ?", (gateway_id, experiment_id)
    )
    if not rows:
        raise NotFoundError(f"No experiment {experiment_id} in project {gateway_id}")
    return _record(rows[0])


async def list_experiments(store: Store, gateway_id: str, *, status: Status | None = None) -> list[ExperimentRecord]:
    """The gateway's experiments, newest first."""
    sql = f"SELECT {_COLUMNS} FROM experiments WHERE gateway_id = ?"
    params: list[object] = [gateway_id]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    rows = await store.fetch(sql + " ORDER BY created_at_ms DESC, id", params)
    return [_record(row) for row in rows]


async def update_experiment(
    store: Store, gateway_id: str, experiment_id: str, *, status: Status, winner: str | None, now_ms: int
) -> ExperimentRecord:
    """Set the status and winner (the caller checked the winner is a variant); `NotFoundError` if there is none."""

    def update(conn: Connection) -> int:
        cursor = conn.execute(
            "UPDATE experiments SET status = ?, winner = ?, updated_at_ms = ? WHERE gateway_id = ? AND id = ?",
            (status, winner, now_ms, gateway_id, experiment_id),
        )
        return cursor.rowcount

    if await store.write(update) != 1:
        raise NotFoundError(f"No experiment {experiment_id} in project {gateway_id}")
    return await get_experiment(store, gateway_id, experiment_id)


async def delete_experiment(store: Store, gateway_id: str, experiment_id: str) -> None:
    """Delete the experiment and its rollup (its events stay: they are the site's); `NotFoundError` if there is
    none."""

    def delete(conn: Connection) -> int:
        cursor = conn.execute("DELETE FROM experiments WHERE gateway_id = ? AND id = ?", (gateway_id, experiment_id))
        for rollup in ("experiment_users", "experiment_variants"):
            conn.execute(
                f"DELETE FROM {rollup} WHERE gateway_id = ? AND experiment_id = ?", (gateway_id, experiment_id)
            )
        return cursor.rowcount

    if await store.write(delete) != 1:
        raise NotFoundError(f"No experiment {experiment_id} in project {gateway_id}")
