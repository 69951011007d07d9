"""The analytics REST routes: every question is a `Question`, behind a key that may read the project asked about.

A question names its path, its parameters (a pydantic model: the query string of a GET, the JSON
body of a POST, path parameters merged in; no body is `{}`, which the document says of a POST whose
parameters all have defaults) and an `answer(asked, args)` function returning
something pydantic can serialise (dataclasses, models, dicts). This module does the rest, the same
way for all of them: the key and the project (`accounts.access`: a read key `rk_…` reads its own gateway, so
seed 002's `project` naming it is the same as leaving it out and naming another is 403; an account key `ak_…`
reads its account's projects, `project` picking one, required when it has several; the admin token reads any;
keys go as `Authorization: Bearer`, `X-API-Key`, the `api_key` query parameter or seed 002's `token`, or the
dashboard's cookie; none, unknown or revoked -> 401 with `WWW-Authenticate: Bearer`; `gateway` names the
project too, and is the only way for a question whose `project` is a filter of its own, the leads'), the per-key limit
(`Settings.api_rate_limit` a minute, seed 000's dashboard API limit: 429 with the limits' body and headers), 400
naming the bad parameter, the JSON answer, CORS, and the OpenAPI description.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..accounts.access import PROJECT_PARAMETER, QUERY_KEY_PARAMETERS, Access, Caller, gateway_for
from ..openapi import Operation, Param
from ..ratelimit import RateLimiter
from ..store import Store
from ..web import ApiError, cors_route, counted, read_body, validated

MAX_QUESTION_BODY_BYTES: Final = 64 * 1024
API_LIMIT_WINDOW_SECONDS: Final = 60.0
"""The window of the analytics and admin APIs' per-key limit (`Settings.api_rate_limit` requests in it)."""

GATEWAY_PARAMETER: Final = "gateway"
"""The project a question is about, by another name: for the questions (the leads') whose `project` filters by the
lead form's project, and for any other as a synonym of `project`."""

A = TypeVar("A", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Asked:
    """Who asks and when: the gateway the key belongs to, the store, and the time the question came."""

    store: Store
    gateway_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class Question(Generic[A]):
    """One analytics route."""

    path: str
    summary: str
    args: type[A]
    answer: Callable[[Asked, A], Awaitable[Any]]
    response: Any = None
    """The answer's type, for the OpenAPI document (None: any JSON object)."""
    method: Literal["GET", "POST"] = "GET"
    tag: str = "analytics"

    def operation(self) -> Operation:
        post = self.method == "POST"
        optional = post and not any(field.is_required() for field in self.args.model_fields.values())
        own_project = PROJECT_PARAMETER in self.args.model_fields
        picker = Param(
            GATEWAY_PARAMETER,
            "query",
            "The project (gateway id) to read, where the key may read several (an account key, the admin token)"
            + (": this question's `project` filters by the lead form's project" if own_project else "; as `project`"),
        )
        return Operation(
            self.method,
            self.path,
            self.summary,
            self.tag,
            security="read",
            # 400: a bad parameter, or no `project` where an account key has several; 403: a `project` a read key
            # may not read; 404: a `project` not in the account key's account; 429: the per-key limit
            errors=(400, 403, 404, 429),
            params=(picker,),
            query=None if post else self.args,
            body=self.args if post else None,
            body_required=not optional,
            response=self.response,
            description="Without a body, every parameter takes its default (read as `{}`)." if optional else "",
        )


async def read_gateway(request: Request) -> str:
    """The gateway whose data the request's key may read (`accounts.access`), named by its `project` query
    parameter where the key may read several."""
    return await gateway_for(request, request.query_params.get(PROJECT_PARAMETER), write=False)


async def request_args(request: Request, model: type[A]) -> A:
    """The arguments of a question: the JSON body of a POST or the query string, plus path parameters."""
    return validated(model, await request_data(request))


async def request_data(request: Request) -> dict[str, Any]:
    """What `request_args` validates: the JSON body of a POST or the query string, plus path parameters."""
    data: dict[str, Any]
    if request.method == "POST":
        body = await read_body(request, MAX_QUESTION_BODY_BYTES)
        try:
            parsed = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError):
            raise ApiError(400, "Body is not valid JSON", field="body") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "Body must be a JSON object", field="body")
        data = parsed
    else:
        data = dict(request.query_params)
        for name in QUERY_KEY_PARAMETERS:
            data.pop(name, None)
    data.update(request.path_params)
    return data


def gateway_parameter(request: Request, data: dict[str, Any]) -> str | None:
    """The `gateway` of a request (taken out of `data`, the question's arguments): the query's, or a POST body's."""
    value = data.pop(GATEWAY_PARAMETER, None)
    value = request.query_params.get(GATEWAY_PARAMETER) if value is None else value
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "`gateway` must be a string (a project id)", field=GATEWAY_PARAMETER)
    return value


def picked_by_gateway(exc: ApiError) -> None:
    """`exc` (about the project a key may read) told as about `gateway`, where `project` is a question's own."""
    if exc.extra.get("field") == PROJECT_PARAMETER:
        exc.extra["field"] = GATEWAY_PARAMETER
        exc.message = exc.message.replace(f"`{PROJECT_PARAMETER}`", f"`{GATEWAY_PARAMETER}`")


def json_answer(value: Any) -> JSONResponse:
    return JSONResponse(to_jsonable_python(value))


class AnalyticsApi:
    """Serves `questions` to the callers `access` lets read, plus whatever routes the live and MCP parts add."""

    def __init__(
        self,
        access: Access,
        store: Store,
        questions: Sequence[Question[Any]],
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._access = access
        self._store = store
        self._questions = list(questions)
        self._limiter = limiter

    def routes(self) -> list[BaseRoute]:
        return [
            cors_route(question.path, self._endpoint(question), methods=[question.method])
            for question in self._questions
        ]

    def operations(self) -> list[Operation]:
        return [question.operation() for question in self._questions]

    def _endpoint(self, question: Question[Any]) -> Callable[[Request], Awaitable[Response]]:
        own_project = PROJECT_PARAMETER in question.args.model_fields  # a filter of its own (leads: the form's)

        async def endpoint(request: Request) -> Response:
            caller = await self._access.caller(request)
            return await counted(self._limiter, caller.limit_key, lambda: answer(request, caller))

        async def answer(request: Request, caller: Caller) -> Response:
            data = await request_data(request)
            project = gateway_parameter(request, data)
            if not own_project:  # a GET's `project` (in `data` too), a POST's in its body or query
                named = data.pop(PROJECT_PARAMETER, None) or request.query_params.get(PROJECT_PARAMETER)
                named = None if named is None or not str(named).strip() else named
                if named is not None and project and str(named).strip() != project.strip():
                    raise ApiError(400, "`project` and `gateway` name different projects", field=GATEWAY_PARAMETER)
                project = named if named is not None else project
            try:
                gateway_id = await self._access.project_of(caller, project, write=False)
            except ApiError as exc:
                if own_project:
                    picked_by_gateway(exc)
                raise
            args = validated(question.args, data)
            asked = Asked(self._store, gateway_id, int(time.time() * 1000))
            return json_answer(await question.answer(asked, args))

        return endpoint
