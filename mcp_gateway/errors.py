"""The exceptions mcp-gateway raises, in one place.

    GatewayError                   base of everything below
    ├── StorageError               the database failed (driver errors are wrapped at the store boundary)
    │   └── ConflictError          a row with that id already exists
    ├── NotFoundError              no such gateway, lead, ...
    ├── LimitReachedError          an account limit the operator set refuses this (``limit`` names it)
    ├── RateLimitedError           too many requests in a rate-limit window; ``retry_after`` says when to retry
    ├── InvalidInputError          input failed validation; ``field`` names the culprit
    └── ConfigError                a setting (flag, variable, config file key) is bad; the message names it

Layers below HTTP (analytics questions, the store, rate limits) raise these and know no HTTP; the
route layer turns them into JSON error bodies (``mcp_gateway.web``: `EXCEPTION_HANDLERS`,
`client_error`); MCP tools turn expected failures into ``isError`` results.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class for mcp-gateway's own errors."""


class StorageError(GatewayError):
    """The store could not complete an operation."""


class ConflictError(StorageError):
    """The row to create already exists."""


class NotFoundError(GatewayError):
    """The thing asked for does not exist."""


class InvalidInputError(GatewayError):
    """Input was rejected; ``field`` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LimitReachedError(GatewayError):
    """An account limit (`Settings.max_projects`, `max_events_lifetime`) refuses the request: 403 naming it."""

    def __init__(self, message: str, *, limit: str, value: int, code: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.code = code


class RateLimitedError(GatewayError):
    """Past a rate limit (`mcp_gateway.ratelimit`): 429 with ``retry_after`` seconds and the window's ``headers``
    (`X-RateLimit-*`, `Retry-After`), which the limiter computes and the HTTP layer sends as they are."""

    def __init__(self, message: str, *, retry_after: int, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers


class ConfigError(GatewayError):
    """A setting is bad or its config file unreadable; the message names the flag, variable or key (the CLI
    prints it and exits 1)."""
