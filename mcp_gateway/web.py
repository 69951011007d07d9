"""HTTP plumbing every route shares: errors leave as JSON (`{"error": message, ...}`, never HTML or
a traceback), and bodies are read with a size limit and parsed into pydantic models with errors
that name the bad field.

A client that goes away before its request is read (`ClientDisconnect`) is no error of ours: it is
logged at DEBUG in one line, answered 499 (nginx's "client closed request"; nobody is left to read
it) and so counted in `/metrics`; the SDK's transports log it as an error with a traceback, which
`quiet_client_disconnects` turns into the same DEBUG line."""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import (
    ConflictError,
    GatewayError,
    InvalidInputError,
    LimitReachedError,
    NotFoundError,
    RateLimitedError,
    StorageError,
)

if TYPE_CHECKING:
    from .gateways import Gateway, GatewayDirectory
    from .ratelimit import RateLimiter

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


async def counted(limiter: RateLimiter | None, key: str, answer: Callable[[], Awaitable[Response]]) -> Response:
    """`answer()` counted against `limiter` under `key` (a key's id, or the admin's): `RateLimitedError` (429) past
    the limit, before any work; else the answer with the limit's `X-RateLimit-*` headers."""
    if limiter is None:
        return await answer()
    verdict = (await limiter.hit(key)).enforce()
    response = await answer()
    response.headers.update(verdict.headers())
    return response


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


CLIENT_ERRORS: Final = (ApiError, NotFoundError, ConflictError, InvalidInputError, LimitReachedError, RateLimitedError)
"""The errors a client's request caused (each has its HTTP answer, `client_error`): a route that answers errors
itself (an HTML page, an MCP tool result, an SSE refusal) catches these and lets every other error through."""


def client_error(exc: ApiError | GatewayError) -> ApiError:
    """The HTTP answer of a client's error: `exc` itself if it is one already, else the domain error's status and
    body (`{"error": message, ...}`). A `GatewayError` no client caused (a `StorageError`) is a `TypeError`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, str(exc))
    if isinstance(exc, InvalidInputError):
        return ApiError(400, str(exc), field=exc.field)
    if isinstance(exc, LimitReachedError):  # not 429: waiting does not help, the operator's limit must change
        return ApiError(403, str(exc), code=exc.code, limit=exc.limit, limit_value=exc.value)
    if isinstance(exc, RateLimitedError):  # seed 000's body: {"error", "retry_after"}
        return ApiError(429, str(exc), headers=exc.headers, retry_after=exc.retry_after)
    raise TypeError(f"{type(exc).__name__} is no client's error")


async def _gateway_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, CLIENT_ERRORS):
        return client_error(exc).response()
    if isinstance(exc, StorageError):
        logger.error("storage failure: %s", exc)
        return json_error(503, "Storage unavailable, try again")
    return await _unexpected(request, exc)


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
    RateLimitedError: _gateway_error,
    StorageError: _gateway_error,
    ClientDisconnect: _client_disconnect,
    Exception: _unexpected,
}
"""Starlette `exception_handlers` for the app."""


# -- which gateway a request is for -----------------------------------------------------------------

GATEWAY_HEADER: Final = "x-gateway-id"
"""The header naming the gateway a request without a key is for (or `?gid=`)."""
GATEWAY_QUERY: Final = "gid"
"""The query parameter naming the gateway a request without a key is for (or `X-Gateway-ID`)."""


async def request_gateway(request: Request, directory: GatewayDirectory, gateway_id: str | None = None) -> Gateway:
    """The gateway a request names (`gateway_id`, else `?gid=`, else `X-Gateway-ID`): 400 if none, 404 if unknown."""
    gateway_id = (
        gateway_id or request.query_params.get(GATEWAY_QUERY) or request.headers.get(GATEWAY_HEADER) or ""
    ).strip()
    if not gateway_id:
        raise ApiError(400, "Missing gateway id: pass ?gid= or the X-Gateway-ID header", field="X-Gateway-ID")
    gateway = await directory.find(gateway_id)
    if gateway is None:
        raise ApiError(404, "Gateway Not Configured")
    return gateway


# -- ASGI pieces the streaming routes share (MCP transports, the live stream, the analytics MCP endpoint) -----


class ConnectionLimiter:
    """Counts open connections per key (client IP) and refuses past a maximum."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._open: collections.Counter[str] = collections.Counter()

    def acquire(self, key: str) -> bool:
        if self._open[key] >= self.maximum:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]


class AsgiEndpoint:
    """Marks a bound method as a raw ASGI endpoint (Starlette would treat it as request -> response)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class JsonErrors:
    """Wraps an ASGI `send` so an SDK error answered as plain text (or with no body) leaves as JSON.

    The SDK's transports answer some HTTP-level errors (unknown SSE session, bad Accept header, …)
    as `text/plain`; every error of ours is `{"error": message}`. JSON and SSE responses pass as they are.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._held: Message | None = None
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400:  # the headers are read only for an error: not on every answer
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if not content_type.startswith(("application/json", "text/event-stream")):
                    self._held = message
                    return
        elif message["type"] == "http.response.body" and self._held is not None:
            self._body += message.get("body", b"")
            if message.get("more_body", False):
                return
            status = self._held["status"]
            text = self._body.decode(errors="replace").strip() or HTTPStatus(status).phrase
            body = json.dumps({"error": text}).encode()
            headers = [(k, v) for k, v in self._held.get("headers", []) if k.lower() not in _REPLACED_HEADERS]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({**self._held, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
            return
        await self._send(message)


_REPLACED_HEADERS: Final = (b"content-type", b"content-length")
