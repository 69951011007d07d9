"""The server the tracking tests wrap: tools that succeed, fail and crash, a resource and a prompt."""

from __future__ import annotations

import json

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

SECRET_PASSWORD = "hunter2-do-not-log"
SECRET_EMAIL = "Jane.Doe@Example.com"


def build_demo_server() -> MCPServer:
    server = MCPServer("tracking-demo")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def sign_up(email: str, password: str) -> str:
        """Echo back an account, as JSON text holding a token."""
        return json.dumps({"email": email, "token": "tok-" + password, "plan": "free"})

    @server.tool()
    def refuse() -> str:
        """Always an expected failure."""
        raise ToolError("not today")

    @server.tool()
    def crash() -> str:
        """Always an unexpected failure."""
        raise RuntimeError("kaboom")

    @server.resource("docs://readme")
    def readme() -> str:
        return "Read me."

    @server.prompt()
    def greet(name: str) -> str:
        return f"Say hello to {name}."

    return server
