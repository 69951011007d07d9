"""The analytics REST routes: every question is a `Question`, behind a key of kind `read` that sees only
its own gateway.

A question names its path, its parameters (a pydantic model: the query string of a GET, the JSON
body of a POST, path parameters merged in; no body is `{}`, which the document says of a POST whose
parameters all have defaults) and an `answer(asked, args)` function returning
something pydantic can serialise (dataclasses, models, dicts). This module does the rest, the same
way for all of them: the key (`Authorization: Bearer rk_…`, `X-API-Key`, the `api_key` query
parameter, or the dashboard's cookie; none or an unknown key -> 401 with `WWW-Authenticate:
Bearer`), 400 naming the bad parameter, the JSON answer, CORS, and the OpenAPI description.
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
from ..store import KeyKind, Store
from ..web import ApiError, cors_route, read_body, validated

READ_KINDS: Final[tuple[KeyKind, ...]] = ("read",)
READ_KEY_COOKIE: Final = "mcpg_read_key"
"""The cookie the dashboard's login sets: the read key itself, HttpOnly and SameSite=Strict."""
MAX_QUESTION_BODY_BYTES: Final = 64 * 1024

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
        return Operation(
            self.method,
            self.path,
            self.summary,
            self.tag,
            security="read",
            query=None if post else self.args,
            body=self.args if post else None,
            body_required=not optional,
            response=self.response,
            description="Without a body, every parameter takes its default (read as `{}`)." if optional else "",
        )


def presented_key(request: Request) -> str:
    """The read key a request carries, in order: Authorization Bearer, X-API-Key, ?api_key=, cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (
        request.headers.get("x-api-key", "").strip()
        or request.query_params.get("api_key", "").strip()
        or request.cookies.get(READ_KEY_COOKIE, "").strip()
    )


async def read_gateway(request: Request, keys: KeyService) -> str:
    """The gateway whose data the request's read key may see; 401 + WWW-Authenticate otherwise."""
    presented = presented_key(request)
    key = await keys.resolve(presented, READ_KINDS) if presented else None
    if key is None:
        raise ApiError(
            401,
            "A read key is required: Authorization: Bearer rk_… or X-API-Key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key.gateway_id


async def request_args(request: Request, model: type[A]) -> A:
    """The arguments of a question: the JSON body of a POST or the query string, plus path parameters."""
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
        data.pop("api_key", None)
    data.update(request.path_params)
    return validated(model, data)


def json_answer(value: Any) -> JSONResponse:
    return JSONResponse(to_jsonable_python(value))


class AnalyticsApi:
    """Serves `questions` under read keys, plus whatever routes the live and MCP parts add."""

    def __init__(self, keys: KeyService, store: Store, questions: Sequence[Question[Any]]) -> None:
        self._keys = keys
        self._store = store
        self._questions = list(questions)

    def routes(self) -> list[BaseRoute]:
        return [
            cors_route(question.path, self._endpoint(question), methods=[question.method])
            for question in self._questions
        ]

    def operations(self) -> list[Operation]:
        return [question.operation() for question in self._questions]

    def _endpoint(self, question: Question[Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            gateway_id = await read_gateway(request, self._keys)
            args = await request_args(request, question.args)
            asked = Asked(self._store, gateway_id, int(time.time() * 1000))
            return json_answer(await question.answer(asked, args))

        return endpoint
