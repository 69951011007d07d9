"""`track_event`: an agent records an analytics event of the gateway's business through MCP (seed 004's MCP example).

The arguments are `/v1/track`'s body (`event`, `anonymous_id`, `user_id`, `session_id`, `properties`, ...), checked
by the same model (`ingest.track.V1TrackEvent`: name 1–128 characters, properties at most 8 KB of JSON), filled in
the same way (a generated `anonymous_id`, a `${anonymous_id}-${30min_bucket}` session) and stored as a `server`
event of the gateway, enriched and redacted like every event. A bad argument or a client over its limit is an
`isError` result naming it, never a protocol error.

**Limit**: MCP requests carry no tracking key, so `/v1/track`'s per-key window has nothing to count on: each client
of the gateway (its IP and the name it gave in `initialize` or the request's `_meta`) gets its own window of
`limit` calls per minute (seed 004's burst of 200 by default), in memory, or in the database with PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from ..config import DEFAULT_V1_TRACK_RATE_LIMIT
from ..errors import LimitReachedError
from ..ingest.track import MAX_JSON_OBJECT_BYTES, RATE_WINDOW_SECONDS, V1TrackEvent, seed004_event
from ..ingest.web import Admission, WebIngestor
from ..privacy import IpHasher
from ..ratelimit import limiter_for
from ..store import Store
from ..tracking.sessions import describe
from ..web import field_errors

TOOL_NAME: Final = "track_event"

DESCRIPTION: Final = (
    "Record an analytics event for this business (a signup, a purchase, a step an agent completed on a user's "
    "behalf). `event` is its name; `anonymous_id` the visitor and `user_id` the known person, when you have them; "
    f"`properties` any JSON object up to {MAX_JSON_OBJECT_BYTES} bytes. Answers the stored event's id and the "
    "visitor and session it was stored under (a visitor id is generated when none is given: send it again with "
    "the next events of the same person)."
)

LIMITER_NAME: Final = "mcp_track_event"


class TrackEventResult(BaseModel):
    """What `track_event` answers: `/v1/track`'s answer."""

    ok: Literal[True] = True
    event_id: str = Field(description="The stored event's id")
    anonymous_id: str = Field(description="The visitor the event was stored under; reuse it for the same person")
    session_id: str = Field(description="The session the event was stored under")


def _client_key(gateway_id: str, ctx: Context) -> str:
    """The rate-limit window of the calling client: the gateway, the client's IP and its name."""
    try:
        facts = describe(ctx.request_context)
    except Exception:  # no request context (a direct call): one shared window
        return f"{gateway_id}|-|-"
    return f"{gateway_id}|{facts.ip or '-'}|{facts.client_name or '-'}"


def _invalid(exc: ValidationError) -> ToolError:
    first = field_errors(exc)[0]
    return ToolError(f"invalid_payload: {first['field']}: {first['message']}")


def register_track_event(
    server: MCPServer,
    gateway_id: str,
    store: Store,
    *,
    limit: int = DEFAULT_V1_TRACK_RATE_LIMIT,
    admit: Admission | None = None,
) -> None:
    """Add `track_event` for gateway `gateway_id` to `server`; events go to `store`, `limit` a minute per client,
    if `admit` (the account's event limit) lets them."""
    ingestor = WebIngestor(store, IpHasher(), admit=admit)  # MCP events carry no client IP: nothing is hashed
    limiter = limiter_for(store, limit, RATE_WINDOW_SECONDS, name=LIMITER_NAME)

    @server.tool(
        name=TOOL_NAME,
        title="Track an analytics event",
        description=DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def track_event(
        event: Annotated[str, Field(description="The event's name, 1-128 characters.", min_length=1, max_length=128)],
        ctx: Context,
        anonymous_id: Annotated[
            str | None, Field(description="The visitor's id, if known.", min_length=1, max_length=128)
        ] = None,
        user_id: Annotated[
            str | None, Field(description="The known person's id (stored hashed).", min_length=1, max_length=256)
        ] = None,
        properties: Annotated[
            dict[str, Any] | None, Field(description=f"Free-form JSON, at most {MAX_JSON_OBJECT_BYTES} bytes.")
        ] = None,
        session_id: Annotated[
            str | None, Field(description="A session of your own; default: the visitor's 30 minutes.", max_length=128)
        ] = None,
        event_id: Annotated[
            str | None, Field(description="Idempotency key: the same id twice stores one event.", max_length=128)
        ] = None,
        timestamp: Annotated[
            str | None, Field(description="When it happened (ISO 8601); default: now.", max_length=64)
        ] = None,
    ) -> TrackEventResult:
        arguments = {
            "event": event,
            "anonymous_id": anonymous_id,
            "user_id": user_id,
            "properties": properties,
            "session_id": session_id,
            "event_id": event_id,
            "timestamp": timestamp,
        }
        try:
            body = V1TrackEvent.model_validate({name: value for name, value in arguments.items() if value is not None})
        except ValidationError as exc:
            raise _invalid(exc) from None
        verdict = await limiter.hit(_client_key(gateway_id, ctx))
        if not verdict.allowed:
            wait = verdict.reset_seconds
            raise ToolError(f"rate_limited: at most {verdict.limit} events a minute; retry in {wait} s")
        web_event, visitor = seed004_event(body, "server")  # MCP events carry no client IP or User-Agent
        try:
            [(_, row)] = await ingestor.capture(gateway_id, [web_event])
        except LimitReachedError as exc:  # the account's event limit: the agent is told, as /v1/track says it
            raise ToolError(f"{exc.code}: {exc}") from None
        stored_visitor = (row.web.anonymous_id if row.web else None) or visitor  # a duplicate's, as stored
        return TrackEventResult(event_id=row.id, anonymous_id=stored_visitor, session_id=row.session_id or "")
