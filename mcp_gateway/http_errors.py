"""Every HTTP error leaves as JSON: `{"error": message, ...}`, never HTML or a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ConflictError, InvalidInputError, NotFoundError, StorageError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a route to answer `status` with `{"error": message, **extra}`."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        return json_error(self.status, self.message, headers=self.headers, **self.extra)


def json_error(status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=dict(headers or {}))


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return json_error(exc.status_code, exc.detail, headers=exc.headers)


async def _gateway_error(_: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFoundError):
        return json_error(404, str(exc))
    if isinstance(exc, ConflictError):
        return json_error(409, str(exc))
    if isinstance(exc, InvalidInputError):
        return json_error(400, str(exc), field=exc.field)
    if isinstance(exc, StorageError):
        logger.error("storage failure: %s", exc)
        return json_error(503, "Storage unavailable, try again")
    return await _unexpected(_, exc)


async def _unexpected(_: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return json_error(500, "Internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    NotFoundError: _gateway_error,
    ConflictError: _gateway_error,
    InvalidInputError: _gateway_error,
    StorageError: _gateway_error,
    Exception: _unexpected,
}
"""Starlette `exception_handlers` for the app."""
