"""Fixtures: a temporary database, the app in-process (httpx ASGITransport) and the app on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app

from .support import ADMIN_TOKEN, BoundedASGITransport, LiveServer, lifespan_running, serve_in_thread


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings(db_path=db_path, admin_token=ADMIN_TOKEN)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app with its lifespan running (ASGITransport runs none, so it is run here)."""
    app = create_app(settings)
    async with lifespan_running(app):
        yield app


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the in-process app, as a loopback client would."""
    transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The gateway under uvicorn on a free loopback port, in a background thread."""
    with serve_in_thread(create_app(settings), settings.db_path) as server:
        yield server


@pytest.fixture
async def live_http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for the live server, over a real socket."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        yield client
