"""The analytics REST routes: every question is a `Question`, behind a key of kind `read` that sees only
its own gateway.

A question names its path, its parameters (a pydantic model: the query string of a GET, the JSON
body of a POST, path parameters merged in; no body is `{}`, which the document says of a POST whose
parameters all have defaults) and an `answer(asked, args)` function returning
something pydantic can serialise (dataclasses, models, dicts). This module does the rest, the same
way for all of them: the key (`Authorization: Bearer rk_…`, `X-API-Key`, the `api_key` query
parameter or seed 002's `token`, or the dashboard's cookie; none -> 401 "a read key is required", a key
nobody created or a revoked one -> 401 "unknown or revoked key", both with `WWW-Authenticate: Bearer`),
seed 002's `project` (the gateway to ask about: a read key reads its own gateway only, so naming it is
the same as leaving it out and naming another is 403), the per-key limit (`Settings.api_rate_limit` a
minute, seed 000's dashboard API limit: 429 with the limits' body and headers), 400 naming the bad
parameter, the JSON answer, CORS, and the OpenAPI description.
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

from ..keys import KeyService
from ..openapi import Operation
from ..ratelimit import RateLimiter
from ..store import KeyKind, KeyRecord, Store
from ..web import ApiError, cors_route, read_body, validated

READ_KINDS: Final[tuple[KeyKind, ...]] = ("read",)
READ_KEY_COOKIE: Final = "mcpg_read_key"
"""The cookie the dashboard's login sets: the read key itself, HttpOnly and SameSite=Strict."""
MAX_QUESTION_BODY_BYTES: Final = 64 * 1024
QUERY_KEY_PARAMETERS: Final = ("api_key", "token")
"""Query parameters that may carry the read key: ours, and seed 002's `token` ("ApiKey token in query")."""
PROJECT_PARAMETER: Final = "project"
"""Seed 002's parameter naming the project (here: gateway) a question is about."""
API_LIMIT_WINDOW_SECONDS: Final = 60.0
"""The window of the analytics and admin APIs' per-key limit (`Settings.api_rate_limit` requests in it)."""

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
    errors: tuple[int, ...] = ()
    """Error statuses of its own, beyond those of every question (a 404 of a path parameter)."""

    def operation(self) -> Operation:
        post = self.method == "POST"
        optional = post and not any(field.is_required() for field in self.args.model_fields.values())
        return Operation(
            self.method,
            self.path,
            self.summary,
            self.tag,
            security="read",
            errors=(400, 403, *self.errors, 429),  # 403: a `project` the key may not read; 429: the per-key limit
            query=None if post else self.args,
            body=self.args if post else None,
            body_required=not optional,
            response=self.response,
            description="Without a body, every parameter takes its default (read as `{}`)." if optional else "",
        )


def presented_key(request: Request) -> str:
    """The read key a request carries, in order: Authorization Bearer, X-API-Key, ?api_key=, ?token=, cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    queried = (request.query_params.get(name, "").strip() for name in QUERY_KEY_PARAMETERS)
    return (
        request.headers.get("x-api-key", "").strip()
        or next((value for value in queried if value), "")
        or request.cookies.get(READ_KEY_COOKIE, "").strip()
    )


async def read_key(request: Request, keys: KeyService) -> KeyRecord:
    """The live read key the request carries; 401 + WWW-Authenticate saying what is wrong otherwise."""
    presented = presented_key(request)
    if not presented:
        raise ApiError(
            401,
            "A read key is required: Authorization: Bearer rk_…, X-API-Key or ?token=",
            headers={"WWW-Authenticate": "Bearer"},
        )
    record = await keys.find(presented)
    if record is None or record.revoked_at_ms is not None:
        raise ApiError(401, "Unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
    if record.kind not in READ_KINDS:
        raise ApiError(
            401,
            f"Not a read key: this is a {record.kind} key; analytics need a key of kind read",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return record


def check_project(project: object, gateway_id: str) -> None:
    """Seed 002's `project` names the gateway to ask about, among those the key may read. A read key reads one
    gateway, its own: naming it (or nothing) asks about it, naming another is 403."""
    if project is None or project == "" or project == gateway_id:
        return
    raise ApiError(
        403, f"This key may not read project {project!s:.200}: it reads {gateway_id} only", field=PROJECT_PARAMETER
    )


async def read_gateway(request: Request, keys: KeyService) -> str:
    """The gateway whose data the request's read key may see (and its `project` query parameter names, if any);
    401 + WWW-Authenticate otherwise."""
    key = await read_key(request, keys)
    check_project(request.query_params.get(PROJECT_PARAMETER), key.gateway_id)
    return key.gateway_id


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


def json_answer(value: Any) -> JSONResponse:
    return JSONResponse(to_jsonable_python(value))


class AnalyticsApi:
    """Serves `questions` under read keys, plus whatever routes the live and MCP parts add."""

    def __init__(
        self,
        keys: KeyService,
        store: Store,
        questions: Sequence[Question[Any]],
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._keys = keys
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
            key = await read_key(request, self._keys)
            verdict = None if self._limiter is None else (await self._limiter.hit(key.id)).enforce()
            data = await request_data(request)
            if not own_project:
                check_project(data.pop(PROJECT_PARAMETER, None), key.gateway_id)
                check_project(request.query_params.get(PROJECT_PARAMETER), key.gateway_id)  # a POST's query
            args = validated(question.args, data)
            asked = Asked(self._store, key.gateway_id, int(time.time() * 1000))
            response = json_answer(await question.answer(asked, args))
            if verdict is not None:
                response.headers.update(verdict.headers())
            return response

        return endpoint
