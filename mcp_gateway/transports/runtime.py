"""One running MCP server per gateway, built on first use, with its SDK transports kept alive.

A gateway's runtime owns its `MCPServer`, the SDK's Streamable HTTP session manager and SSE
transport for it, and the server's lifespan state (which the plain JSON-RPC path needs). They run
in a task of the app's lifespan, so sessions outlive the request that created them and all stop
together at shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp.server import MCPServer, Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings

from ..config import Settings
from ..gateways import Gateway, GatewayDirectory
from ..server import ServerFactory
from ..store import Store
from .streamable import InlineSseSessionManager

MCP_PATH = "/mcp"

Track = Callable[[MCPServer, str], object]
"""Instruments a gateway's server (`Services.track`): records its sessions and events under the gateway's id."""


def sse_message_path(gateway_id: str) -> str:
    """Where SSE clients POST their messages; the endpoint event tells them."""
    return f"/v1/mcp/{gateway_id}/messages"


@dataclass
class GatewayRuntime:
    """The live MCP machinery of one gateway."""

    gateway_id: str
    server: MCPServer
    security: TransportSecuritySettings
    guard: TransportSecurityMiddleware
    session_manager: StreamableHTTPSessionManager
    sse: SseServerTransport
    lifespan_state: Any = None
    origins_of: Gateway | None = None
    """The gateway object whose allowed origins `security` holds."""
    header_params: dict[str, tuple[object, bool]] = field(default_factory=dict)
    """Per tool: its input schema as last looked up, and whether it declares `x-mcp-header` parameters
    (`modern.py`)."""

    @property
    def lowlevel(self) -> Server[Any]:
        """The low-level SDK server under `server`, which the SDK's single-request entry point takes."""
        lowlevel: Server[Any] = self.session_manager.app
        return lowlevel


class GatewayRuntimes:
    """Builds and keeps a `GatewayRuntime` per gateway for the life of the app: each server built by `factory` over
    `directory` and `store`, and instrumented by `track`."""

    def __init__(
        self, settings: Settings, factory: ServerFactory, directory: GatewayDirectory, store: Store, *, track: Track
    ) -> None:
        self._settings = settings
        self._factory = factory
        self._directory = directory
        self._store = store
        self._track = track
        self._runtimes: dict[str, GatewayRuntime] = {}
        self._lock = anyio.Lock()
        self._task_group: anyio.abc.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield
            finally:
                self._task_group = None
                self._runtimes.clear()
                tg.cancel_scope.cancel()

    async def get(self, gateway: Gateway) -> GatewayRuntime:
        """The runtime of `gateway`, built on first use; its origin list follows the gateway's."""
        runtime = self._runtimes.get(gateway.id)
        if runtime is None:
            async with self._lock:
                runtime = self._runtimes.get(gateway.id)
                if runtime is None:
                    runtime = await self._start(gateway)
                    self._runtimes[gateway.id] = runtime
        if runtime.origins_of is not gateway:  # the directory hands out one object until the gateway changes
            runtime.origins_of = gateway
            if runtime.security.allowed_origins != list(gateway.allowed_origins):
                runtime.security.allowed_origins = list(gateway.allowed_origins)
        return runtime

    async def _start(self, gateway: Gateway) -> GatewayRuntime:
        if self._task_group is None:
            raise RuntimeError("GatewayRuntimes.run() is not active")
        server = self._factory(gateway, self._directory, self._store)
        self._track(server, gateway.id)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(self._settings.allowed_hosts),
            allowed_origins=list(gateway.allowed_origins),
        )
        session_manager = InlineSseSessionManager(
            app=server._lowlevel_server,  # what `streamable_http_app` would hand its manager (no public accessor)
            security_settings=security,
            max_request_body_size=self._settings.max_body_bytes,
            session_idle_timeout=self._settings.mcp_session_idle_seconds,
            max_sessions=self._settings.max_mcp_sessions,  # the SDK's own cap stays, behind McpRoutes.sessions
            json_response=self._settings.mcp_json_response,
        )
        runtime = GatewayRuntime(
            gateway_id=gateway.id,
            server=server,
            security=security,
            guard=TransportSecurityMiddleware(security),
            session_manager=session_manager,
            sse=SseServerTransport(
                sse_message_path(gateway.id),
                security_settings=security,
                max_request_body_size=self._settings.max_body_bytes,
            ),
        )
        await self._task_group.start(self._serve, runtime)
        return runtime

    @staticmethod
    async def _serve(runtime: GatewayRuntime, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        lowlevel = runtime.lowlevel
        async with runtime.session_manager.run(), lowlevel.lifespan(lowlevel) as state:
            runtime.lifespan_state = state
            task_status.started()
            await anyio.sleep_forever()
