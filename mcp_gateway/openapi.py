"""The OpenAPI 3.1 document of the REST surface, built from what each API declares about its routes.

Every API class lists its `Operation`s: method, path, summary, and the pydantic models of its query
string and JSON body, plus the type of its answer. Schemas come from pydantic, so the document
cannot drift from the validation the routes actually do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from . import __version__

Security = Literal["read", "admin", "org", "none"]

SECURITY_SCHEMES: Final[dict[str, dict[str, Any]]] = {
    "read": {"type": "http", "scheme": "bearer", "description": "A key of kind `read` (rk_…); X-API-Key works too"},
    "admin": {"type": "http", "scheme": "bearer", "description": "The admin token"},
    "org": {"type": "apiKey", "in": "header", "name": "X-Org-Id", "description": "A key of kind `org` (org_…)"},
}

ERROR_SCHEMA: Final = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
ERROR_REF: Final = "#/components/schemas/Error"


@dataclass(frozen=True, slots=True)
class Operation:
    """One route as the document describes it."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    summary: str
    tag: str
    security: Security = "none"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: Any = None
    """A type pydantic can describe (dataclass, model, TypedDict, list[...]); None: any JSON object."""
    status: int = 200
    content_type: str = "application/json"


_PATH_PARAM: Final = re.compile(r"{(\w+)(?::\w+)?}")


def _openapi_path(path: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", path)


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    names = _PATH_PARAM.findall(op.path)
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            if name in names:
                continue
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _response_schema(response: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    if response is None:
        return {"type": "object"}
    schema = TypeAdapter(response).json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    return schema


def document(operations: Iterable[Operation], *, title: str = "mcp-gateway") -> dict[str, Any]:
    """The OpenAPI document for `operations`."""
    operations = list(operations)
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    bodies = [op.body for op in operations if op.body is not None]
    if bodies:
        _, defs = models_json_schema(
            [(model, "validation") for model in bodies], ref_template="#/components/schemas/{model}"
        )
        schemas.update(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        errors = {"description": "Error", "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{op.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', _openapi_path(op.path)).strip('_')}",
            "parameters": _parameters(op, schemas),
            "responses": {
                str(op.status): {
                    "description": "OK",
                    "content": {op.content_type: {"schema": _response_schema(op.response, schemas)}},
                },
                "400": errors,
                "default": errors,
            },
        }
        if op.security != "none":
            entry["security"] = [{op.security: []}]
            entry["responses"]["401"] = errors
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}},
            }
        paths.setdefault(_openapi_path(op.path), {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
