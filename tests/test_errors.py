"""Domain errors (`mcp_gateway.errors`) raised below the routes leave as the same JSON answers `ApiError` gave."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_gateway.errors import (
    ConflictError,
    GatewayError,
    InvalidInputError,
    LimitReachedError,
    NotFoundError,
    RateLimitedError,
    StorageError,
)
from mcp_gateway.web import CLIENT_ERRORS, EXCEPTION_HANDLERS, client_error, cors_route

RATE_HEADERS = {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7", "Retry-After": "7"}

ANSWERS: list[tuple[GatewayError, int, dict[str, Any]]] = [
    (InvalidInputError("since must be before until", field="since"), 400, {"field": "since"}),
    (InvalidInputError("Body is empty"), 400, {"field": None}),
    (NotFoundError("No such lead"), 404, {}),
    (ConflictError("Key exists"), 409, {}),
    (
        LimitReachedError("At most 3 projects", limit="max_projects", value=3, code="project_limit"),
        403,
        {"code": "project_limit", "limit": "max_projects", "limit_value": 3},
    ),
    (RateLimitedError("Rate limit exceeded", retry_after=7, headers=RATE_HEADERS), 429, {"retry_after": 7}),
]


def _raising(exc: Exception) -> Starlette:
    async def endpoint(_: Request) -> Response:
        raise exc

    return Starlette(
        routes=[Route("/plain", endpoint), cors_route("/cors", endpoint, ["GET"])],
        exception_handlers=EXCEPTION_HANDLERS,
    )


@pytest.mark.parametrize("path", ["/plain", "/cors"])
@pytest.mark.parametrize(("exc", "status", "extra"), ANSWERS, ids=lambda value: type(value).__name__)
async def test_a_domain_error_from_below_a_route_answers_its_status_and_json_body(
    path: str, exc: GatewayError, status: int, extra: dict[str, Any]
) -> None:
    transport = httpx.ASGITransport(app=_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(path)

    assert response.status_code == status
    assert response.json() == {"error": str(exc), **extra}
    if isinstance(exc, RateLimitedError):
        assert {name.lower(): value for name, value in RATE_HEADERS.items()}.items() <= response.headers.items()


async def test_a_storage_failure_is_503_and_no_client_error() -> None:
    transport = httpx.ASGITransport(app=_raising(StorageError("disk full")), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/plain")

    assert (response.status_code, response.json()) == (503, {"error": "Storage unavailable, try again"})
    assert not isinstance(StorageError("disk full"), CLIENT_ERRORS)
    with pytest.raises(TypeError):
        client_error(StorageError("disk full"))
