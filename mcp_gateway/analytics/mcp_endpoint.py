"""The analytics as an MCP server: `/analytics/mcp` (Streamable HTTP), one tool per analytics `Question`.

Tools are made from the questions the app is created with: the name is the path (`/analytics/tools` ->
`analytics_tools`, `/stats` -> `stats`), the description its summary, the input schema its arguments' JSON
schema. A call validates the arguments with the same model as the REST route (a bad one is an `isError` result
naming the field, as the route's 400 would) and answers the same `answer(asked, args)`, as JSON text plus
structured content (a JSON object; an answer that is not one comes as `{"result": ...}`).

A read key or an account key (`Authorization: Bearer rk_…`/`ak_…` or `X-API-Key`) is checked before the SDK
sees a request: none, an unknown one or one of another kind is 401 with `WWW-Authenticate: Bearer` (the admin
token is not taken here: it manages, it is not an analytics client). The caller travels in the request's ASGI
scope to the tool handler, so one SDK server serves every gateway, and each call asks `accounts.access` which
project it reads, as the REST routes do: the tool's `project` argument (`gateway` too, and only `gateway` for
the leads' tools, whose `project` is the lead form's filter), else the request's `X-Project-ID` header, else the
key's obvious one (a read key's gateway; an account key's only project). A project the key may not read is an
`isError` result (a read key: "may not read"; an account key: "no project", as for one that does not exist).
The server is stateless (no session to hand over between keys or processes) and answers JSON.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic_core import to_jsonable_python
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .._version import __version__
from ..accounts.access import PROJECT_PARAMETER, READ_KINDS, Access, Caller
from ..accounts.service import is_account_key
from ..config import Settings
from ..openapi import Operation
from ..ratelimit import RateLimiter
from ..store import Store
from ..web import CLIENT_ERRORS, ApiError, JsonErrors, client_error, validated
from .api import GATEWAY_PARAMETER, Asked, Question, picked_by_gateway

logger = logging.getLogger(__name__)

ANALYTICS_MCP_PATH: Final = "/analytics/mcp"
CALLER_SCOPE_KEY: Final = "mcp_gateway.analytics_caller"
"""Where a request's ASGI scope carries its caller (`accounts.access.Caller`), for the tool handler."""
PROJECT_HEADER: Final = "X-Project-ID"
"""The project a request's tool calls read when their arguments name none."""
_PICKER_SCHEMA: Final = {"type": "string", "maxLength": 200}

INSTRUCTIONS: Final = (
    "Analytics of a project (a gateway): MCP tool calls, web traffic, sessions and leads. Each tool answers one "
    "question of the REST API under the same name; times are ms since the epoch or ISO 8601 (UTC). With an "
    "account key and several projects, name one with `project` (`gateway` on the leads' tools) or X-Project-ID."
)


def tool_name(path: str) -> str:
    """The tool name of a question's path: `/analytics/tools` -> `analytics_tools`, `/a/{id}` -> `a_id`."""
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def _key_of(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


@dataclass(frozen=True, slots=True)
class QuestionTool:
    question: Question[Any]
    tool: Tool

    @property
    def own_project(self) -> bool:
        """Whether the question's `project` is an argument of its own (the leads' form filter), not the picker."""
        return PROJECT_PARAMETER in self.question.args.model_fields


def question_tools(questions: Sequence[Question[Any]]) -> dict[str, QuestionTool]:
    """One tool per question, by name; a second question on the same path gets its method appended."""
    tools: dict[str, QuestionTool] = {}
    for question in questions:
        name = tool_name(question.path)
        if name in tools:
            name = f"{name}_{question.method.lower()}"
        schema = question.args.model_json_schema()
        properties = schema.setdefault("properties", {})
        own_project = PROJECT_PARAMETER in properties
        properties[GATEWAY_PARAMETER] = {
            **_PICKER_SCHEMA,
            "description": "The project (gateway id) to read, for a key that reads several"
            + ("; `project` filters by the lead form's project" if own_project else " (as `project`)"),
        }
        if not own_project:
            properties[PROJECT_PARAMETER] = {**_PICKER_SCHEMA, "description": "The project (gateway id) to read"}
        tool = Tool(
            name=name,
            description=question.summary,
            input_schema=schema,
            annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        )
        tools[name] = QuestionTool(question, tool)
    return tools


def _result(value: Any, *, error: bool = False) -> CallToolResult:
    structured = to_jsonable_python(value)
    if not isinstance(structured, dict):
        structured = {"result": structured}
    text = json.dumps(structured, separators=(",", ":"))
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured, is_error=error)


class AnalyticsMcp:
    """The MCP server at `/analytics/mcp` and its SDK session manager; `run()` it in the app's lifespan."""

    def __init__(
        self,
        settings: Settings,
        access: Access,
        store: Store,
        questions: Sequence[Question[Any]],
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._access = access
        self._limiter = limiter
        self._store = store
        self._tools = question_tools(questions)
        self.server: Server[Any] = Server(
            "mcp-gateway-analytics",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=self._input_schema,
        )
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=list(settings.allowed_hosts), allowed_origins=[]
        )
        self._sessions = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            json_response=True,
            security_settings=security,
            max_request_body_size=settings.max_body_bytes,
        )

    def run(self) -> AbstractAsyncContextManager[None]:
        return self._sessions.run()

    def routes(self) -> list[BaseRoute]:
        """POST only: the server is stateless, so there is no standalone GET stream and no session to DELETE."""
        return [Route(ANALYTICS_MCP_PATH, self, methods=["POST"])]

    def operation(self) -> Operation:
        return Operation(
            "POST",
            ANALYTICS_MCP_PATH,
            "MCP (Streamable HTTP): every analytics question as a tool of the same name",
            "analytics",
            security="read",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        caller = await self._caller(_key_of(request))
        if self._limiter is not None:  # the REST questions' per-key limit, counted together
            (await self._limiter.hit(caller.limit_key)).enforce()
        scope[CALLER_SCOPE_KEY] = caller
        await self._sessions.handle_request(scope, receive, JsonErrors(send))

    async def _caller(self, presented: str) -> Caller:
        """The read key's or account key's caller; 401 for none, an unknown one or one of another kind."""
        www = {"WWW-Authenticate": "Bearer"}
        if not presented:
            raise ApiError(
                401,
                "A read key or an account key is required: Authorization: Bearer rk_…/ak_… or X-API-Key",
                headers=www,
            )
        if is_account_key(presented):
            account = await self._access.accounts.resolve(presented)
            if account is None:
                raise ApiError(401, "Unknown or revoked key", headers=www)
            return Caller("account", account.id, None, "account:" + account.id)
        key = await self._access.keys.resolve(presented, READ_KINDS)
        if key is None:
            raise ApiError(401, "Unknown or revoked key (or not a read key nor an account key)", headers=www)
        return Caller("read", None, key.gateway_id, key.id)

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self._tools.get(name)
        return entry.tool.input_schema if entry else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=[entry.tool for entry in self._tools.values()])

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> CallToolResult:
        entry = self._tools.get(params.name)
        if entry is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        request = ctx.request
        caller = request.scope.get(CALLER_SCOPE_KEY) if isinstance(request, Request) else None
        if not isinstance(caller, Caller) or not isinstance(request, Request):
            raise MCPError(code=INVALID_REQUEST, message="A read key or an account key is required")
        question = entry.question
        arguments = dict(params.arguments or {})
        try:
            project = arguments.pop(GATEWAY_PARAMETER, None)
            if not entry.own_project:
                named = arguments.pop(PROJECT_PARAMETER, None)
                if named is not None and project is not None and named != project:
                    raise ApiError(400, "`project` and `gateway` name different projects", field=GATEWAY_PARAMETER)
                project = project if named is None else named
            if project is None:
                project = request.headers.get(PROJECT_HEADER)
            if project is not None and not isinstance(project, str):
                raise ApiError(400, "The project must be a string (a project id)", field=GATEWAY_PARAMETER)
            try:
                gateway_id = await self._access.project_of(caller, project, write=False)
            except ApiError as exc:
                if entry.own_project:
                    picked_by_gateway(exc)
                raise
            args = validated(question.args, arguments)
            answer = await question.answer(Asked(self._store, gateway_id, int(time.time() * 1000)), args)
        except CLIENT_ERRORS as caught:
            refused = client_error(caught)
            return _result({"error": refused.message, **refused.extra}, error=True)
        except Exception:
            logger.exception("analytics tool %s failed", params.name)
            return _result({"error": "Internal error"}, error=True)
        return _result(answer)
