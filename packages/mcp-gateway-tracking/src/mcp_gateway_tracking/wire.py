"""The Agnost wire format: what `POST /api/v1/capture-session` and `/capture-event` carry.

One set of models serves both ends: the tracking wrapper's HTTP sink sends them and the
gateway's ingestion API parses them, so the two cannot drift. Field for field as the seed
documents, plus optional extras existing backends ignore: `event_id` and `timestamp` (so a
backend can deduplicate retried events), `error_type`, `operation` (`call` or `list`) and
`transport`. Parsing is lenient where existing SDKs differ (integer latency, an extra `org_id`,
no timestamp, `args` as an object instead of a JSON string) and strict where data would be wrong.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_BATCH_SESSIONS: Final = 100
MAX_BATCH_EVENTS: Final = 1000
MAX_TIMESTAMP: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z in ms: a later (or infinite) timestamp is refused, not a 500 at the store."""

PrimitiveType = Literal["tool", "resource", "prompt"]
Operation = Literal["call", "list"]


def _json_text(value: Any) -> Any:
    """`args`/`result` arrive as JSON strings (the seed) or, from some SDKs, as objects: keep text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 store can keep it
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


JsonText = Annotated[str | None, BeforeValidator(_json_text)]


def _check_uuid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError("must be a UUID") from None
    return value


SessionId = Annotated[str, AfterValidator(_check_uuid)]


class CaptureSession(BaseModel):
    """Body of `POST /api/v1/capture-session`: one client connection to an MCP server."""

    model_config = ConfigDict(extra="ignore")

    session_id: SessionId
    client_config: str = Field(max_length=256)
    connection_type: str = Field(default="", max_length=64)
    ip: str = Field(default="", max_length=64)
    tools: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=1000)
    user_data: dict[str, Any] | None = None
    # extras
    timestamp: float | None = Field(
        default=None, ge=0, le=MAX_TIMESTAMP, description="When the session started, ms since epoch."
    )
    transport: str | None = Field(default=None, max_length=32)


class CaptureEvent(BaseModel):
    """Body of `POST /api/v1/capture-event`: one tool, resource or prompt invocation."""

    model_config = ConfigDict(extra="ignore")

    session_id: SessionId
    primitive_type: PrimitiveType
    primitive_name: str = Field(min_length=1, max_length=512)
    latency: float = Field(ge=0, allow_inf_nan=False, description="Milliseconds.")
    success: bool
    args: JsonText = None
    result: JsonText = None
    # extras
    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: float | None = Field(
        default=None, ge=0, le=MAX_TIMESTAMP, description="When the call started, ms since epoch."
    )
    error_type: str | None = Field(default=None, max_length=128)
    operation: Operation = "call"


class CaptureBatch(BaseModel):
    """Body of `POST /api/v1/capture-batch`: sessions first, then events, in one request."""

    model_config = ConfigDict(extra="ignore")

    sessions: list[CaptureSession] = Field(default_factory=list, max_length=MAX_BATCH_SESSIONS)
    events: list[CaptureEvent] = Field(default_factory=list, max_length=MAX_BATCH_EVENTS)
