"""Seed 002's experiments group:

    POST   /experiments           ExperimentCreate -> 201 Experiment (409 naming the name taken)     manage
    GET    /experiments           ?status=         -> 200 {"experiments": [...], "count"}            read
    GET    /experiments/{id}                       -> 200 the experiment, its live results and flags  read
    PATCH  /experiments/{id}      ExperimentPatch  -> 200 Experiment                                  manage
    DELETE /experiments/{id}                       -> 200 {"id", "deleted": true}                     manage
    GET    /experiments/config    ?token=pk_…      -> 200 the active experiments tracker.js assigns    project token

`/experiments/config` checks a browser's `Origin` as `/track` does: one not among the project's allowed origins is
403 `{"error": "Origin Not Allowed"}`; a request without one (a server) is not checked.

Who may read or manage which project is `accounts.access`'s to say (admin token: any; account key: its
account's; read key: its own gateway, reading only). The two reads are analytics `Question`s (`QUESTIONS`):
the same keys, `project` rule and per-key limit as every analytics route, and tools of the same names on
`/analytics/mcp`. A PATCH or DELETE finds the experiment's project itself (`?project=` narrows it), and an
experiment in a project the caller may not see is 404, as one that does not exist.
`/experiments/config` must be routed before `/experiments/{id}`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..accounts.access import Access, Caller
from ..analytics.api import Asked, Question, json_answer
from ..errors import ConflictError
from ..gateways import GatewayDirectory, origin_allowed
from ..openapi import Operation, Param
from ..ratelimit import RateLimiter
from ..store import KeyKind, Store
from ..web import ApiError, cors_route, counted, read_model, validated
from .assignment import assign
from .models import (
    ConfigArgs,
    ConfigExperiment,
    Deleted,
    Experiment,
    ExperimentArgs,
    ExperimentConfig,
    ExperimentCreate,
    ExperimentId,
    ExperimentList,
    ExperimentListArgs,
    ExperimentPatch,
    ExperimentResults,
    Project,
    ProjectArgs,
)
from .repository import (
    ExperimentRecord,
    create_experiment,
    delete_experiment,
    get_experiment,
    list_experiments,
    update_experiment,
)
from .results import compare, flags, variant_counts

MAX_EXPERIMENT_BODY_BYTES: Final = 16 * 1024
TRACKER_KEY_KINDS: Final[tuple[KeyKind, ...]] = ("pk",)
"""The project token of `/experiments/config`: the gateway's publishable key, the one tracker.js may show."""


def _now_ms() -> int:
    return int(time.time() * 1000)


async def experiment_results(store: Store, record: ExperimentRecord, *, now_ms: int) -> ExperimentResults:
    results = compare(record, await variant_counts(store, record))
    view = record.view()
    fields = {name: getattr(view, name) for name in Experiment.__dataclass_fields__}
    return ExperimentResults(**fields, results=results, flags=flags(record, results, now_ms=now_ms))


async def _list(asked: Asked, args: ExperimentListArgs) -> ExperimentList:
    records = await list_experiments(asked.store, asked.gateway_id, status=args.status)
    return ExperimentList([record.view() for record in records], len(records))


async def _one(asked: Asked, args: ExperimentArgs) -> ExperimentResults:
    rows = await asked.store.fetch(
        "SELECT id FROM experiments WHERE gateway_id = ? AND id = ?", (asked.gateway_id, args.id)
    )
    if not rows:  # 404 on the REST route and an isError result naming it on the MCP tool
        raise ApiError(404, f"No experiment {args.id} in project {asked.gateway_id}", field="id")
    record = await get_experiment(asked.store, asked.gateway_id, args.id)
    return await experiment_results(asked.store, record, now_ms=asked.now_ms)


QUESTIONS: Final[list[Question[Any]]] = [
    Question(
        "/experiments",
        "A/B experiments of the project, newest first",
        ExperimentListArgs,
        _list,
        ExperimentList,
        tag="experiments",
    ),
    Question(
        "/experiments/{id}",
        "An A/B experiment with live results per variant: exposures, users, conversions, rate, lift against the"
        " control with a confidence interval, p-value, probability to beat the control; sample-ratio mismatch and"
        " no-conversion flags",
        ExperimentArgs,
        _one,
        ExperimentResults,
        tag="experiments",
    ),
]


class ExperimentsApi:
    """The experiments' write routes and tracker.js's config (the reads are `QUESTIONS`)."""

    def __init__(
        self,
        access: Access,
        store: Store,
        directory: GatewayDirectory,
        *,
        max_body_bytes: int = MAX_EXPERIMENT_BODY_BYTES,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._access = access
        self._store = store
        self._directory = directory
        self._max_body_bytes = min(max_body_bytes, MAX_EXPERIMENT_BODY_BYTES)
        self._limiter = limiter

    def routes(self) -> list[BaseRoute]:
        return [
            cors_route("/experiments/config", self.config, ["GET"]),
            Route("/experiments", self._guarded(self.create), methods=["POST"]),
            Route("/experiments/{id}", self._guarded(self.patch), methods=["PATCH"]),
            Route("/experiments/{id}", self._guarded(self.delete), methods=["DELETE"]),
        ]

    def _guarded(
        self, handler: Callable[[Request, Caller], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for the caller `access` finds (before the body is read: 401 before a bad body's 400), behind
        the per-key limit the analytics and projects count (429), its answer with the limit's headers."""

        async def guarded(request: Request) -> Response:
            caller = await self._access.caller(request)
            return await counted(self._limiter, caller.limit_key, lambda: handler(request, caller))

        return guarded

    async def create(self, request: Request, caller: Caller) -> Response:
        body = await read_model(request, ExperimentCreate, limit=self._max_body_bytes, strict_content_type=False)
        gateway_id = await self._access.project_of(caller, body.project, write=True)
        try:
            record = await create_experiment(self._store, gateway_id, body, now_ms=_now_ms())
        except ConflictError as exc:
            raise ApiError(409, str(exc), field="name", conflicting_name=body.name) from None
        response = json_answer(record.view())
        response.status_code = 201
        return response

    async def _target(self, request: Request, caller: Caller) -> ExperimentRecord:
        """The experiment of the path, once the caller may change it (`?project=` narrows the search)."""
        if caller.kind == "read":
            raise ApiError(403, "A read key may only read: changing an experiment needs an account key")
        experiment_id = validated(ExperimentArgs, {"id": request.path_params["id"]}).id
        project = request.query_params.get("project")
        if project is not None:
            validated(ProjectArgs, {"project": project})
        rows = await self._store.fetch(
            "SELECT gateway_id FROM experiments WHERE id = ?" + (" AND gateway_id = ?" if project else ""),
            (experiment_id, project) if project else (experiment_id,),
        )
        missing = ApiError(404, f"No experiment {experiment_id}", field="id")
        if not rows:
            raise missing
        try:
            gateway_id = await self._access.project_of(caller, rows[0][0], write=True)
        except ApiError as exc:  # another account's project: as if there were no such experiment
            raise missing from exc
        return await get_experiment(self._store, gateway_id, experiment_id)

    async def patch(self, request: Request, caller: Caller) -> Response:
        record = await self._target(request, caller)
        body = await read_model(request, ExperimentPatch, limit=self._max_body_bytes, strict_content_type=False)
        if body.winner is not None and body.winner not in record.variants:
            raise ApiError(
                400,
                f"Invalid winner: {body.winner!r} is not one of the variants {list(record.variants)}",
                field="winner",
            )
        updated = await update_experiment(
            self._store, record.gateway_id, record.id, status=body.status, winner=body.winner, now_ms=_now_ms()
        )
        return json_answer(updated.view())

    async def delete(self, request: Request, caller: Caller) -> Response:
        record = await self._target(request, caller)
        await delete_experiment(self._store, record.gateway_id, record.id)
        return json_answer(Deleted(record.id, True))

    async def config(self, request: Request) -> Response:
        args = validated(ConfigArgs, dict(request.query_params))
        key = await self._access.keys.resolve(args.token, TRACKER_KEY_KINDS)
        if key is None:
            raise ApiError(
                401, "Unknown or revoked project token (the project's pk_ key)", headers={"WWW-Authenticate": "Bearer"}
            )
        origin = request.headers.get("origin")
        gateway = await self._directory.get(key.gateway_id)
        if origin is not None and (
            gateway is None or not origin_allowed(origin.strip() or "null", gateway.allowed_origins)
        ):
            raise ApiError(403, "Origin Not Allowed")
        records = await list_experiments(self._store, key.gateway_id, status="active")
        experiments = [
            ConfigExperiment(
                id=record.id,
                name=record.name,
                variants=list(record.variants),
                weights=list(record.weights),
                goal_event=record.goal_event,
                variant=None
                if args.visitor_id is None
                else assign(record.id, args.visitor_id, record.variants, record.weights),
            )
            for record in records
        ]
        response = json_answer(ExperimentConfig(key.gateway_id, experiments))
        response.headers["Cache-Control"] = "no-store"
        return response

    def operations(self) -> list[Operation]:
        id_param = (Param("id", "path", "The experiment's id", ExperimentId, required=True),)
        project = (Param("project", "query", "The experiment's project (optional: the admin token sees all)", Project),)
        return [
            Operation(
                "GET",
                "/experiments/config",
                "The active experiments of the project token's gateway, for tracker.js to assign variants",
                "experiments",
                query=ConfigArgs,
                response=ExperimentConfig,
                errors=(400, 401, 403),
                description="A browser's `Origin` must be among the project's allowed origins (403 "
                "`Origin Not Allowed` otherwise, as on `/track`); a request without one is not checked.",
            ),
            Operation(
                "POST",
                "/experiments",
                "Create an A/B experiment (the first variant is the control)",
                "experiments",
                security="account",
                body=ExperimentCreate,
                response=Experiment,
                status=201,
                errors=(400, 403, 404, 409, 413, 429),
            ),
            Operation(
                "PATCH",
                "/experiments/{id}",
                "Set an experiment's status (required) and, when completed, its winner",
                "experiments",
                security="account",
                params=(*id_param, *project),
                body=ExperimentPatch,
                response=Experiment,
                errors=(400, 403, 404, 413, 429),
            ),
            Operation(
                "DELETE",
                "/experiments/{id}",
                "Delete an experiment (its events stay)",
                "experiments",
                security="account",
                params=(*id_param, *project),
                response=Deleted,
                errors=(400, 403, 404, 429),
            ),
        ]
