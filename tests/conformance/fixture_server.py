"""The gateway app with the MCP conformance suite's fixture primitives on gateway `conformance`.

    python tests/conformance/fixture_server.py --port 8123

Serves OUR app (`create_app`: gateway resolution, transports, middleware) on 127.0.0.1 with a
throw-away SQLite database. The `conformance` gateway gets the normal gateway server plus the
`test_*` tools, `test://` resources, prompts and handlers that `@modelcontextprotocol/conformance`
server scenarios call (names and outputs from the suite's scenario descriptions); every other
gateway gets the normal server. Stops on SIGINT/SIGTERM. Used by `scripts/conformance.sh`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Any, Final

import uvicorn
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, UserMessage
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    PromptReference,
    RequestId,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from mcp_gateway.app import create_app
from mcp_gateway.config import Settings
from mcp_gateway.gateways import Gateway, GatewayCreate, GatewayDirectory
from mcp_gateway.server import build_gateway_server
from mcp_gateway.store import SQLiteStore, Store

GATEWAY_ID: Final = "conformance"
PNG_1X1: Final = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_SILENCE: Final = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
STEP_SECONDS: Final = 0.05

JSON_SCHEMA_2020_12_TOOL: Final = "json_schema_2020_12_tool"
JSON_SCHEMA_2020_12: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
USER_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}
DEFAULTS_SCHEMA: Final[dict[str, Any]] = {  # SEP-1034: a default for every primitive type
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}
TITLED: Final = [{"const": "value1", "title": "First"}, {"const": "value2", "title": "Second"}]
ENUMS_SCHEMA: Final[dict[str, Any]] = {  # SEP-1330: the five enum shapes
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": TITLED},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2"], "enumNames": ["Option One", "Option Two"]},
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "items": {"anyOf": TITLED}},
    },
}
COMPLETIONS: Final = ("paris", "park", "party", "test", "testing")


def _image() -> ImageContent:
    return ImageContent(type="image", data=PNG_1X1, mime_type="image/png")


def _text_resource(uri: str, text: str, mime_type: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=text))


def _related(ctx: Context) -> RequestId | None:
    """The id of the tool call, so server-to-client messages ride its own response stream."""
    return ctx.request_context.request_id


def register_tools(server: MCPServer) -> None:
    @server.tool()
    def test_simple_text() -> str:
        """Returns simple text."""
        return "This is a simple text response for testing."

    @server.tool()
    def test_image_content() -> ImageContent:
        """Returns a 1x1 PNG."""
        return _image()

    @server.tool()
    def test_audio_content() -> AudioContent:
        """Returns a tiny WAV."""
        return AudioContent(type="audio", data=WAV_SILENCE, mime_type="audio/wav")

    @server.tool()
    def test_embedded_resource() -> EmbeddedResource:
        """Returns an embedded text resource."""
        return _text_resource("test://embedded-resource", "This is an embedded resource content.")

    @server.tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Returns text, an image and an embedded resource."""
        resource = _text_resource("test://mixed-content-resource", '{"test":"data","value":123}', "application/json")
        return [TextContent(type="text", text="Multiple content types test:"), _image(), resource]

    @server.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three info log notifications while it runs."""
        for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await asyncio.sleep(STEP_SECONDS)
            await ctx.info(message)
        return "Tool with logging executed successfully"

    @server.tool()
    def test_error_handling() -> str:
        """Always fails."""
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50 and 100 of 100."""
        for progress in (0, 50, 100):
            if progress:
                await asyncio.sleep(STEP_SECONDS)
            await ctx.report_progress(progress, 100, f"Completed step {progress} of 100")
        return "Tool with progress executed successfully"

    @server.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's LLM to answer `prompt`."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=_related(ctx),
        )
        return f"LLM response: {result.content.text if isinstance(result.content, TextContent) else 'non-text'}"

    async def elicit(ctx: Context, message: str, schema: dict[str, Any], prefix: str) -> str:
        result = await ctx.session.elicit_form(message, schema, related_request_id=_related(ctx))
        return f"{prefix}: action={result.action}, content={json.dumps(result.content or {})}"

    @server.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user for a username and email."""
        return await elicit(ctx, message, USER_SCHEMA, "User response")

    @server.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Elicits with a default value for every primitive type (SEP-1034)."""
        return await elicit(ctx, "Please review your details", DEFAULTS_SCHEMA, "Elicitation completed")

    @server.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Elicits with every enum schema shape (SEP-1330)."""
        return await elicit(ctx, "Please pick some options", ENUMS_SCHEMA, "Elicitation completed")

    @server.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Closes its SSE stream mid-call so the client reconnects with Last-Event-ID (SEP-1699)."""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    @server.tool(name=JSON_SCHEMA_2020_12_TOOL, description="Tool with JSON Schema 2020-12 features")
    def json_schema_2020_12_tool(name: str | None = None, address: dict[str, str] | None = None) -> str:
        return f"name={name}, address={address}"

    # MCPServer derives input schemas from signatures; this scenario needs a hand-written one.
    tool = server._tool_manager.get_tool(JSON_SCHEMA_2020_12_TOOL)
    assert tool is not None
    tool.parameters = JSON_SCHEMA_2020_12


def register_resources(server: MCPServer) -> None:
    @server.resource("test://static-text", name="static-text", mime_type="text/plain")
    def static_text() -> str:
        """A static text resource."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A static binary resource (a PNG)."""
        return base64.b64decode(PNG_1X1)

    @server.resource("test://template/{id}/data", name="template-data", mime_type="application/json")
    def template_data(id: str) -> str:
        """Data for one id."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
    def watched() -> str:
        """A resource clients may subscribe to."""
        return "Watched resource content"

    # MCPServer has no decorators for these handshake-era methods; register them on its low-level server.
    lowlevel = server._lowlevel_server
    subscribed: set[str] = set()

    async def subscribe(_: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(_: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(str(params.uri))
        return EmptyResult()

    async def set_level(_: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()  # the fixture only logs at info; nothing to filter

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


def register_prompts(server: MCPServer) -> None:
    @server.prompt()
    def test_simple_prompt() -> str:
        """A prompt without arguments."""
        return "This is a simple prompt for testing."

    @server.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        """A prompt with two required arguments."""
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @server.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """A prompt that embeds a resource."""
        resource = _text_resource(resourceUri, "Embedded resource content for testing.")
        return [UserMessage(resource), UserMessage("Please process the embedded resource above.")]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt with an image."""
        return [UserMessage(_image()), UserMessage("Please analyze the image above.")]

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK leaves it unannotated
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        values = [value for value in COMPLETIONS if value.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)


def server_factory(gateway: Gateway, directory: GatewayDirectory, store: Store) -> MCPServer:
    server = build_gateway_server(gateway, directory, store)
    if gateway.id == GATEWAY_ID:
        register_tools(server)
        register_resources(server)
        register_prompts(server)
    return server


async def create_gateway(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    try:
        directory = GatewayDirectory(store, cache_seconds=0)
        await directory.create(GatewayCreate(id=GATEWAY_ID, name="MCP conformance fixture"))
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    # The suite exercises handshake-era features (logging, sampling) that the SDK marks deprecated.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as tmp:
        settings = Settings(db_path=Path(tmp) / "gateway.db", admin_token=secrets.token_urlsafe(24), port=args.port)
        asyncio.run(create_gateway(settings.db_path))
        app = create_app(settings, server_factory=server_factory)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
