"""The OpenAPI 3.1 document of the REST surface, built from what each API declares about its routes.

Every API class lists its `Operation`s next to its routes: method, path, summary, who may call it,
the pydantic models of its query string and JSON body, and the types of its answers (models,
dataclasses, TypedDicts). Every schema comes from pydantic, in one pass over all operations (two
types of the same name in different modules get distinct component names), so the document
cannot drift from the validation the routes actually do. Parameters that no model holds (the
gateway id in `?gid=` or `X-Gateway-ID`, MCP's session headers) are `Param`s with a type.

`OpenApiDocument` serves it at `GET /openapi.json`, built once, at the first request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal, NotRequired

import anyio.to_thread
from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from pydantic.json_schema import JsonSchemaMode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict  # pydantic describes only this TypedDict before Python 3.12

from . import __version__
from .gateways import GATEWAY_ID_PATTERN

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Security = Literal["read", "account", "admin", "org", "track", "none"]

SECURITY_SCHEMES: Final[dict[str, dict[str, Any]]] = {
    "readBearer": {"type": "http", "scheme": "bearer", "description": "A key of kind `read` (rk_…)"},
    "readApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A key of kind `read`"},
    "readQuery": {"type": "apiKey", "in": "query", "name": "api_key", "description": "A key of kind `read`"},
    "readToken": {"type": "apiKey", "in": "query", "name": "token", "description": "A key of kind `read` (seed 002)"},
    "accountBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An account key (ak_…): its account's projects; or the admin token: every project",
    },
    "accountApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An account key (ak_…)"},
    "accountToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "An account key (ak_…) (seed 002)",
    },
    "admin": {"type": "http", "scheme": "bearer", "description": "The admin token"},
    "org": {"type": "apiKey", "in": "header", "name": "X-Org-Id", "description": "A key of kind `org` (org_…)"},
    "trackKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A tracking key: publishable (pk_…, browsers, checked against the gateway's allowed origins)"
        " or secret (sk_…, servers)",
    },
}
SECURITY_ALTERNATIVES: Final[dict[Security, tuple[str, ...]]] = {
    "read": ("readBearer", "readApiKey", "readQuery", "readToken", "accountBearer", "accountApiKey", "accountToken"),
    "account": ("accountBearer", "accountApiKey", "accountToken"),
    "admin": ("admin",),
    "org": ("org",),
    "track": ("trackKey",),
    "none": (),
}
"""The schemes that satisfy each kind of security: any one of them will do."""

_REF_PREFIX: Final = "#/components/schemas/"
_REF: Final = re.compile(r'"#/components/schemas/([^"]+)"')
_PATH_PARAM: Final = re.compile(r"{(\w+)(?::\w+)?}")


class FieldError(TypedDict):
    field: str
    message: str


class ErrorBody(TypedDict):
    """What every error of ours answers (`web.json_error`): the message, and the bad field when there is one."""

    error: str
    field: NotRequired[str]
    message: NotRequired[str]
    errors: NotRequired[list[FieldError]]
    retry_after: NotRequired[int]


class Empty:
    """As an `Operation.response` or a `Reply.type`: the answer has no body."""


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter no model of the route holds (a header, the gateway id), described by `type`."""

    name: str
    location: Literal["query", "header", "path"]
    description: str
    type: Any = str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer besides the main one and the errors: a 202 without body, a stream, a 304."""

    status: int
    description: str
    type: Any = Empty
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One route as the document describes it."""

    method: Method
    path: str
    summary: str
    tag: str
    security: Security = "none"
    query: type[BaseModel] | None = None
    body: Any = None
    """A type pydantic can describe (usually a model), validated from the JSON body; None: no body."""
    body_required: bool = True
    """False: a request without a body is read as `{}` (every field has a default)."""
    response: Any = None
    """A type pydantic can describe (dataclass, model, TypedDict, list[...]); None: any JSON object."""
    status: int = 200
    content_type: str = "application/json"
    params: tuple[Param, ...] = ()
    replies: tuple[Reply, ...] = ()
    errors: tuple[int, ...] = (400,)
    """Error statuses worth naming (401 is added for secured routes); `default` covers the rest."""
    error_type: Any = ErrorBody
    description: str = ""


GatewayId = Annotated[str, Field(pattern=GATEWAY_ID_PATTERN, description="A gateway's id")]

GATEWAY_PARAMS: Final = (
    Param("gid", "query", "The gateway's id: this or the `X-Gateway-ID` header is required", GatewayId),
    Param("X-Gateway-ID", "header", "The gateway's id: this or `?gid=` is required", GatewayId),
)
"""How the routes without keys are told their gateway (`gateways.request_gateway`): one of the two."""

GATEWAY_RULE: Final = (
    "The gateway is named by `?gid=` or by the `X-Gateway-ID` header: one of them is required (400 without)."
)
"""OpenAPI 3.1 cannot make one of two parameters required: operations taking `GATEWAY_PARAMS` say it in their
description, in their 400 answer, and as `x-required-one-of` (an extension naming the alternatives)."""

_Schema = dict[str, Any]


def name_or_prefixed(names: Iterable[str], prefix: str, *, max_length: int, description: str) -> WithJsonSchema:
    """The schema of a name from an allow-list (`names`) or `prefix` and a key (`properties.plan`), for a field
    the route checks against that allow-list itself: the document names what the route accepts."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": sorted(set(names))},
                {"type": "string", "pattern": f"^{re.escape(prefix)}.", "maxLength": max_length},
            ],
            "description": description,
        }
    )


def document(operations: Iterable[Operation], *, title: str = "mcp-gateway") -> dict[str, Any]:
    """The OpenAPI document for `operations`."""
    operations = list(operations)
    # One schema per distinct (type, mode): many operations share a type (the error body, the gateway id).
    types: dict[tuple[int, JsonSchemaMode], Any] = {}
    roles: dict[tuple[int, str], tuple[int, JsonSchemaMode]] = {}
    for index, op in enumerate(operations):
        for role, mode, type_ in _types(op):
            roles[index, role] = (id(type_), mode)
            types.setdefault((id(type_), mode), type_)
    keyed, defs = TypeAdapter.json_schemas(
        [(key, key[1], TypeAdapter(type_)) for key, type_ in types.items()], ref_template=_REF_PREFIX + "{model}"
    )
    components: dict[str, _Schema] = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for index, op in enumerate(operations):

        def schema(role: str, index: int = index) -> _Schema | None:
            key = roles.get((index, role))
            return None if key is None else keyed[key, key[1]]

        paths.setdefault(_PATH_PARAM.sub(r"{\1}", op.path), {})[op.method.lower()] = _entry(op, schema, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in operations)],
        "paths": paths,
        "components": {"schemas": _referenced(paths, components), "securitySchemes": SECURITY_SCHEMES},
    }


class OpenApiDocument:
    """Serves `GET /openapi.json`: the document is built at the first request, in a worker thread.

    Building it is a few hundred milliseconds of pydantic work: not something every app (every
    test) should pay at creation, nor the event loop at the first request.
    """

    def __init__(self, operations: Iterable[Operation]) -> None:
        self._operations = tuple(operations)
        self._body: bytes | None = None

    async def serve(self, _: Request) -> Response:
        if self._body is None:
            built = await anyio.to_thread.run_sync(document, self._operations)
            self._body = bytes(JSONResponse(built).body)
        return Response(self._body, media_type="application/json")


def _referenced(paths: dict[str, Any], components: dict[str, _Schema]) -> dict[str, _Schema]:
    """The components the paths use, directly or not (a query model's own schema is spread into parameters)."""
    pending = set(_REF.findall(json.dumps(paths)))
    used: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in used:
            used.add(name)
            pending.update(_REF.findall(json.dumps(components[name])))
    return {name: schema for name, schema in sorted(components.items()) if name in used}


def _types(op: Operation) -> Iterable[tuple[str, JsonSchemaMode, Any]]:
    """Every type `op` needs a schema of, by role: what is read is validated, what is answered serialised."""
    if op.query is not None:
        yield "query", "validation", op.query
    if op.body is not None:
        yield "body", "validation", op.body
    if op.response is not None and op.response is not Empty:
        yield "response", "serialization", op.response
    for number, reply in enumerate(op.replies):
        if reply.type is not Empty:
            yield f"reply{number}", "serialization", reply.type
    for number, param in enumerate(op.params):
        yield f"param{number}", "validation", param.type
    yield "error", "serialization", op.error_type


def _entry(op: Operation, schema: Callable[[str], _Schema | None], components: dict[str, _Schema]) -> dict[str, Any]:
    path_names: list[str] = _PATH_PARAM.findall(op.path)
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", _PATH_PARAM.sub(r"{\1}", op.path)).strip("_")
    entry: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method.lower()}_{slug}",
        "parameters": _parameters(op, path_names, schema, components),
        "responses": _responses(op, schema),
    }
    gateway_rule = all(param in op.params for param in GATEWAY_PARAMS)
    description = " ".join(text for text in (GATEWAY_RULE if gateway_rule else "", op.description) if text)
    if description:
        entry["description"] = description
    if gateway_rule:
        entry["x-required-one-of"] = [[param.name for param in GATEWAY_PARAMS]]
        entry["responses"]["400"]["description"] = (
            "Bad Request: no gateway id (`?gid=` or `X-Gateway-ID`), or bad input"
        )
    if op.security != "none":
        entry["security"] = [{name: []} for name in SECURITY_ALTERNATIVES[op.security]]
    body = schema("body")
    if body is not None:
        entry["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _without(body, path_names, components)}},
        }
    return entry


def _resolve(schema: _Schema, components: dict[str, _Schema]) -> _Schema:
    ref = schema.get("$ref")
    return components[ref.removeprefix(_REF_PREFIX)] if isinstance(ref, str) else schema


def _parameters(
    op: Operation, path_names: list[str], schema: Callable[[str], _Schema | None], components: dict[str, _Schema]
) -> list[dict[str, Any]]:
    query = schema("query")
    model = {} if query is None else _resolve(query, components)
    properties: dict[str, _Schema] = model.get("properties", {})
    required = set(model.get("required", ()))
    declared = {param.name: (param, schema(f"param{number}")) for number, param in enumerate(op.params)}
    params: list[dict[str, Any]] = []
    for name in path_names:  # a path parameter's schema: its Param's, else its query model field's
        param, param_schema = declared.get(name, (None, None))
        path_schema = param_schema or properties.get(name) or {"type": "string"}
        params.append(_parameter(name, "path", True, path_schema, param.description if param else None))
    for name, prop in properties.items():
        if name not in path_names:
            params.append(_parameter(name, "query", name in required, prop))
    for number, param in enumerate(op.params):
        if param.location != "path":
            param_schema = schema(f"param{number}") or {}
            params.append(_parameter(param.name, param.location, param.required, param_schema, param.description))
    return params


def _parameter(name: str, location: str, required: bool, schema: _Schema, description: str | None = None) -> _Schema:
    schema = _not_null(schema)
    param: _Schema = {"name": name, "in": location, "required": required, "schema": schema}
    if description or "description" in schema:
        param["description"] = description or schema["description"]
    return param


def _not_null(schema: _Schema) -> _Schema:
    """A parameter's schema without pydantic's `null` choice: a query string or header cannot say null;
    leaving the parameter out is how a client asks for the default."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list) or {"type": "null"} not in choices:
        return schema
    rest = [choice for choice in choices if choice != {"type": "null"}]
    trimmed = {
        key: value for key, value in schema.items() if key != "anyOf" and not (key == "default" and value is None)
    }
    return {**trimmed, **rest[0]} if len(rest) == 1 else {**trimmed, "anyOf": rest}


def _without(body: _Schema, names: list[str], components: dict[str, _Schema]) -> _Schema:
    """`body` without the fields its path fills in (a POST question's path parameters are merged into its args)."""
    resolved = _resolve(body, components)
    properties = resolved.get("properties", {})
    if not set(names) & set(properties):
        return body
    return {
        **resolved,
        "properties": {name: prop for name, prop in properties.items() if name not in names},
        "required": [name for name in resolved.get("required", ()) if name not in names],
    }


def _responses(op: Operation, schema: Callable[[str], _Schema | None]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    main = {"type": "object"} if op.response is None else schema("response")
    _add_response(responses, op.status, HTTPStatus(op.status).phrase, op.content_type, main)
    for number, reply in enumerate(op.replies):
        _add_response(responses, reply.status, reply.description, reply.content_type, schema(f"reply{number}"))
    error = schema("error")
    for status in sorted({*op.errors, *((401,) if op.security != "none" else ())}):
        _add_response(responses, status, HTTPStatus(status).phrase, "application/json", error)
    _add_response(responses, "default", "Error", "application/json", error)
    return responses


def _add_response(
    responses: dict[str, Any], status: int | str, description: str, content_type: str, schema: _Schema | None
) -> None:
    """Adds one answer; answers sharing a status are one entry with several media types."""
    entry = responses.setdefault(str(status), {"description": description})
    if schema is not None:
        entry.setdefault("content", {})[content_type] = {"schema": schema}
