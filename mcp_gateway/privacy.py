"""The gateway's own privacy parts: client IPs as a daily-salted HMAC, and the MCP SDK's log lines redacted.

The redaction of tracked values (`Redactor`, the email and phone scan) is the tracking SDK's
(`mcp_gateway_tracking.privacy`, `mcp_gateway_tracking.pii`): one policy for the wrapper and the store.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
from typing import Final

from mcp_gateway_tracking.pii import hash_text, redact_text

__all__ = ["IpHasher", "SdkLogRedaction", "redact_sdk_logs"]


class IpHasher:
    """Client IPs as a daily-salted HMAC: stable within a UTC day (for unique counts), unlinkable across days.

    The secret is the server's own, loaded from the store at start (`use`); until then nothing is hashed.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret

    def use(self, secret: bytes) -> None:
        self._secret = secret

    def __call__(self, ip: str, day: datetime.date | None = None) -> str | None:
        if not ip:
            return None
        if self._secret is None:
            raise RuntimeError("IpHasher has no secret yet")
        day = day or datetime.datetime.now(datetime.UTC).date()
        return hmac.new(self._secret, f"{day.isoformat()}|{ip}".encode(), hashlib.sha256).hexdigest()[:32]


SDK_SERVER_LOGGER: Final = "mcp.server.mcpserver.server"
"""The SDK logger that writes a failed resource read's URI and a failed tool's message at INFO."""


class SdkLogRedaction(logging.Filter):
    """Keeps personal data out of the SDK's INFO lines: `Resource %r failed: %r` names the resource by the
    pseudonym of its URI (also where the error repeats it), and emails and phones in any other argument
    are hashed (`Tool %r failed: %r` carries the tool's error message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if isinstance(record.msg, str) and record.msg.startswith("Resource %r") and isinstance(args[0], str):
            uri, pseudonym = args[0], hash_text(args[0])
            args = (pseudonym, *(a.replace(uri, pseudonym) if isinstance(a, str) else a for a in args[1:]))
        record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in args)
        return True


def redact_sdk_logs() -> None:
    """Install `SdkLogRedaction` on the SDK's server logger (once)."""
    sdk_logger = logging.getLogger(SDK_SERVER_LOGGER)
    if not any(isinstance(f, SdkLogRedaction) for f in sdk_logger.filters):
        sdk_logger.addFilter(SdkLogRedaction())
