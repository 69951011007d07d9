"""How the gateway logs: `text` (a line a human reads) or `json` (one object per line, for a log pipeline).

    {"ts": "2026-12-04T01:09:23.412Z", "level": "info", "logger": "uvicorn.access",
     "message": "9e704e3226b3f80510f1943c3cbe31ab - \"POST /track HTTP/1.1\" 200", "exception": "Traceback ..."}

`exception` is there only when the record carries one. With `json`, uvicorn's own loggers (startup,
access lines) go through the same handler instead of uvicorn's text format; with `text`, uvicorn keeps its
format, and its access lines go to stderr with the rest.

No secret and no raw client IP is written: in access lines the client is the same daily HMAC of its IP the
store keeps (`privacy.IpHasher`, `-` until the server's secret is loaded, and the address a trusted proxy
forwarded for, as the app sees it), and the values of query parameters that carry keys, tokens or personal
data (`api_key`, `token`, `admin_token`, `key`, `session_id`, `email`, ...; any whose value holds an `@`)
are `[redacted]`, as are path segments holding an `@`. The MCP SDK's lines (and our transports') show MCP
session ids (which let whoever holds one use the session) by their first 8 characters only, and any line break
a client put into them escaped.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus

from mcp_gateway_tracking.privacy import Redactor

from .config import LogFormat
from .privacy import IpHasher

TEXT_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, log_format: LogFormat) -> None:
    """Send every logger's records to stderr in `log_format`, from `level` up; access lines redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SessionIdRedaction())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessRedaction) for f in access.filters):
        access.addFilter(AccessRedaction())  # uvicorn's dictConfig adds handlers, it keeps a logger's filters


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """What `serve` gives uvicorn's `log_config`: its own text format with access lines on stderr, or, for
    `json`, None (uvicorn's loggers then reach the JSON handler `configure` installs)."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


# -- what access lines may show -------------------------------------------------------------------------------

ACCESS_LOGGER: Final = "uvicorn.access"
REDACTED: Final = "[redacted]"
NO_CLIENT: Final = "-"

SECRET_QUERY_KEYS: Final = frozenset({"key", "auth", "code", "sig", "signature", "session", "sessionid"})
"""Query parameter names (lower-cased, `_` and `-` removed) whose values are never logged, besides every name
`privacy.Redactor` calls sensitive (`api_key`, `token`, `admin_token`, `secret`, `password`, `email`, `phone`, ...,
also as a prefix or suffix)."""

MAX_LOGGED_TARGET: Final = 2048
"""Longest request target (path and query) an access line shows; the rest is cut."""

_redactor = Redactor()
_ip_hasher: IpHasher | None = None


def hash_client_ips_with(hasher: IpHasher) -> None:
    """Log client IPs as `hasher` hashes them (the app's own, so a log line joins the stored `ip_hash`)."""
    global _ip_hasher
    _ip_hasher = hasher


def client_label(host: str) -> str:
    """How a log line names the client at `host`: its daily HMAC, or `-` before the server's secret is loaded."""
    if _ip_hasher is None or not host:
        return NO_CLIENT
    try:
        return _ip_hasher(host) or NO_CLIENT
    except RuntimeError:  # no secret yet
        return NO_CLIENT


def _is_secret(name: str) -> bool:
    normalised = unquote_plus(name).lower().replace("_", "").replace("-", "")
    return normalised in SECRET_QUERY_KEYS or normalised.endswith("key") or _redactor.is_sensitive(normalised)


def _has_address(text: str) -> bool:
    return "@" in text or "%40" in text.lower()


def redact_target(target: str) -> str:
    """A request target as a log line may show it: secret query values and `@`-holding parts replaced."""
    path, mark, query = target[: MAX_LOGGED_TARGET + 1].partition("?")
    if _has_address(path):
        path = "/".join(REDACTED if _has_address(segment) else segment for segment in path.split("/"))
    if query:
        fields = []
        for field in query.split("&"):
            name, equals, value = field.partition("=")
            fields.append(f"{name}={REDACTED}" if equals and (_is_secret(name) or _has_address(value)) else field)
        query = "&".join(fields)
    shown = path + mark + query
    return shown if len(target) <= MAX_LOGGED_TARGET else shown + "…"


class AccessRedaction(logging.Filter):
    """Rewrites uvicorn's access records (`client_addr, method, target, http_version, status`) in place: the
    client as `client_label`, the target as `redact_target`; uvicorn's text format and ours read the same args."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and not getattr(record, "redacted", False):
            client, method, target, version, status = args
            host = str(client).rpartition(":")[0] if client else ""
            record.args = (client_label(host), method, redact_target(str(target)), version, status)
            record.redacted = True
        return True


SESSION_ID: Final = re.compile(
    r"\b([0-9a-fA-F]{8})(?:[0-9a-fA-F]{24}|-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\b"
)
"""An MCP session id as the SDK makes them: 32 hex digits, or a UUID with dashes."""

CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")

SESSION_LOGGERS: Final = ("mcp.server", "mcp_gateway.transports")
"""Loggers whose lines may name MCP sessions (the SDK writes some ids a client sent, in f-strings)."""


class SessionIdRedaction(logging.Filter):
    """Shortens session ids to their first 8 characters and escapes control characters in the message of the
    records of `SESSION_LOGGERS` (on the handler: it sees every logger's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(SESSION_LOGGERS) and not getattr(record, "redacted", False):
            message = SESSION_ID.sub(r"\1…", record.getMessage())
            record.msg = CONTROL_CHARACTER.sub(lambda found: repr(found.group())[1:-1], message)
            record.args = ()
            record.redacted = True
        return True
