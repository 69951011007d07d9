"""HTTP plumbing every route shares: errors leave as JSON (`{"error": message, ...}`, never HTML or
a traceback), and bodies are read with a size limit and parsed into pydantic models with errors
that name the bad field.

A client that goes away before its request is read (`ClientDisconnect`) is no error of ours: it is
logged at DEBUG in one line, answered 499 (nginx's "client closed request"; nobody is left to read
it) and so counted in `/metrics`; the SDK's transports log it as an error with a traceback, which
`quiet_client_disconnects` turns into the same DEBUG line."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .errors import ConflictError, InvalidInputError, LimitReachedError, NotFoundError, StorageError

logger = logging.getLogger(__name__)


_ModelT = TypeVar("_ModelT", bound=BaseModel)


class ApiError(Exception):
    """Raise from a route to answer `status` with `{"error": message, **extra}`."""

    def __init__(self, status: int, message: str, /, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        return json_error(self.status, self.message, headers=self.headers, **self.extra)


def json_error(status: int, message: str, /, *, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """`{"error": message, **extra}`; `message` is positional-only, so `extra` may carry a "message" key."""
    return JSONResponse({"error": message, **extra}, status_code=status, headers=dict(headers or {}))


CLIENT_CLOSED_REQUEST: Final = 499
"""The status of a request whose client closed the connection before it was answered (as nginx logs it)."""

UNKNOWN_CLIENT: Final = "unknown"
"""The client address of a request whose server named none (a Unix socket, some test transports)."""


def client_host(request: Request) -> str:
    """The client's IP address as the server reports it (forwarded headers are the server's to trust or not)."""
    return request.client.host if request.client else UNKNOWN_CLIENT


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and (len(declared) > 18 or int(declared) > limit):
        raise ApiError(413, f"Request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"Request body larger than {limit} bytes")
    return bytes(body)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as `[{"field": "a.b", "message": ...}]`, without echoing the input."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "message": err["msg"]} for err in exc.errors()
    ]


async def read_model(
    request: Request, model: type[_ModelT], *, limit: int, status: int = 400, strict_content_type: bool = True
) -> _ModelT:
    """Parse the JSON body into `model`; a bad body is `status` naming the first bad field.

    With `strict_content_type`, a body not declared `application/json` is 415.
    """
    content_type = request.headers.get("content-type", "application/json").lower()
    if strict_content_type and not content_type.startswith("application/json"):
        raise ApiError(415, "Content-Type must be application/json")
    body = await read_body(request, limit)
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder's stack
        raise ApiError(status, "Body is not valid JSON", field="body") from None
    return validated(model, data, status=status)


def validated(model: type[_ModelT], data: Any, *, status: int = 400) -> _ModelT:
    """`data` as `model`; `status` naming the first bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        first = errors[0]
        raise ApiError(
            status, f"Invalid {first['field']}: {first['message']}", field=first["field"], errors=errors
        ) from None


CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Content-Type, Authorization, X-API-Key, X-Gateway-ID, X-Visitor-ID, X-Fingerprint-ID"
    ),
    "Access-Control-Max-Age": "86400",
}
"""What every tracking route answers (seed 001), so browsers on any site may send events."""


class _CorsEndpoint:
    """A route endpoint that answers `OPTIONS` preflights and puts CORS headers on every answer, errors included."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "OPTIONS":
            response: Response = Response(status_code=204)
        else:
            try:
                response = await self._endpoint(request)
            except Exception as exc:  # rendered here, as the app would, so that the error carries CORS too
                response = await _handled(request, exc)
        response.headers.update(CORS_HEADERS)
        await response(scope, receive, send)


def cors_route(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> Route:
    """A route open to browsers on any origin: `methods` plus `OPTIONS`, CORS headers on every response."""
    return Route(path, _CorsEndpoint(endpoint), methods=[*methods, "OPTIONS"])


async def _handled(request: Request, exc: Exception) -> Response:
    """`exc` answered by its handler in `EXCEPTION_HANDLERS` (the nearest class of its MRO)."""
    handler = next(EXCEPTION_HANDLERS[cls] for cls in type(exc).__mro__ if cls in EXCEPTION_HANDLERS)
    response: Response = await handler(request, exc)
    return response


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
    if isinstance(exc, LimitReachedError):  # not 429: waiting does not help, the operator's limit must change
        return json_error(403, str(exc), code=exc.code, limit=exc.limit, limit_value=exc.value)
    if isinstance(exc, StorageError):
        logger.error("storage failure: %s", exc)
        return json_error(503, "Storage unavailable, try again")
    return await _unexpected(_, exc)


async def _client_disconnect(request: Request, _: Exception) -> Response:
    logger.debug("client closed the connection before its request was read: %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


class ClientDisconnectFilter(logging.Filter):
    """Drops a record whose exception is a `ClientDisconnect`, logging one DEBUG line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None or not isinstance(record.exc_info[1], ClientDisconnect):
            return True
        logger.debug("client closed the connection before its request was read (%s)", record.name)
        return False


DISCONNECT_LOGGING_LOGGERS: Final = ("mcp.server.streamable_http", "mcp.server.sse")
"""The SDK's transport loggers, which log a client's disconnect mid-body as an error with a traceback."""


def quiet_client_disconnects() -> None:
    """Install `ClientDisconnectFilter` on the SDK's transport loggers, once per process."""
    for name in DISCONNECT_LOGGING_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if not any(isinstance(existing, ClientDisconnectFilter) for existing in sdk_logger.filters):
            sdk_logger.addFilter(ClientDisconnectFilter())


async def _unexpected(_: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return json_error(500, "Internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    NotFoundError: _gateway_error,
    ConflictError: _gateway_error,
    InvalidInputError: _gateway_error,
    LimitReachedError: _gateway_error,
    StorageError: _gateway_error,
    ClientDisconnect: _client_disconnect,
    Exception: _unexpected,
}
"""Starlette `exception_handlers` for the app."""
