"""Builds the gateway's Starlette app: routes, error handling and the lifespan that runs it all."""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import __version__
from .admin import AdminApi, AdminAuth
from .config import Settings
from .gateways import GatewayDirectory
from .ingest import AgnostApi, Ingestor
from .keys import KeyService
from .privacy import IpHasher
from .server import ServerFactory, build_gateway_server
from .store import SQLiteStore, Store
from .transports import GatewayRuntimes, McpRoutes
from .web import EXCEPTION_HANDLERS

logger = logging.getLogger(__name__)

HASH_SECRET_SETTING: Final = "hash_secret"
"""The server's secret for keyed hashes (client IPs), generated at first start."""


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    server_factory: ServerFactory = build_gateway_server,
) -> Starlette:
    """The whole gateway as one ASGI app. Its lifespan opens the store and creates `demo` if missing."""
    settings = settings or Settings()
    store = store or SQLiteStore(settings.db_path)
    directory = GatewayDirectory(store, cache_seconds=settings.gateway_cache_seconds)
    runtimes = GatewayRuntimes(settings, directory, store, server_factory)
    auth = AdminAuth(store, settings.admin_token)
    keys = KeyService(store, cache_seconds=settings.gateway_cache_seconds)
    hash_ip = IpHasher()
    ingestor = Ingestor(store, hash_ip)
    ready = False

    async def health(_: Request) -> JSONResponse:
        if not ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal ready
        await store.open()
        try:
            hash_ip.use(bytes.fromhex(await store.put_setting_if_absent(HASH_SECRET_SETTING, secrets.token_hex(32))))
            if await directory.ensure_demo():
                logger.info("created gateway 'demo' from the bundled default content")
            if (token := await auth.ensure_token()) is not None:
                sys.stderr.write(
                    f"\nAdmin token (shown once; set MCP_GATEWAY_ADMIN_TOKEN to choose your own):\n  {token}\n\n"
                )
            async with runtimes.run():
                ready = True
                yield
                ready = False
        finally:
            await store.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        *McpRoutes(settings, directory, runtimes).routes(),
        *AgnostApi(keys, ingestor, max_body_bytes=settings.max_body_bytes).routes(),
        *AdminApi(auth, directory, store, keys, max_body_bytes=settings.max_body_bytes).routes(),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.directory = directory
    return app
