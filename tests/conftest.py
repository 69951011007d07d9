"""Fixtures: a temporary database, the app in-process (httpx ASGITransport) and the app on a real socket.

Every test that uses the database runs twice, as the `backend` parameter says: on a SQLite file and on a
database of a real PostgreSQL server the tests start (`tests/postgres.py`). Without PostgreSQL on the
machine the PostgreSQL runs are skipped, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app

from .postgres import PostgresServer, PostgresUnavailable, database_for, running_server
from .support import (
    ADMIN_TOKEN,
    BoundedASGITransport,
    LiveServer,
    lifespan_running,
    serve_in_thread,
)

BACKENDS = ("sqlite", "postgresql")


SDK_SOURCE = Path(__file__).resolve().parent.parent / "packages" / "mcp-gateway-tracking" / "src"
"""The tracking SDK of this checkout, which pytest imports (`pythonpath` in pyproject.toml)."""


@pytest.fixture(scope="session", autouse=True)
def sdk_on_pythonpath() -> Iterator[None]:
    """Subprocesses (a stdio server, an import-time probe) import the same SDK as the tests: this checkout's."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(part for part in (str(SDK_SOURCE), previous) if part)
    yield
    if previous is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = previous


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`XDG_DATA_HOME` for the whole run: a command or server started without a database path makes its default
    one here, never in the real home directory (subprocesses inherit it)."""
    folder = tmp_path_factory.mktemp("xdg-data-home")
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_server() as server:
            yield server
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """This test's database on its `backend`: None for SQLite (the file `db_path`), else a PostgreSQL URL."""
    with database_for(backend, request) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    """`backend` for what a whole module shares."""
    return str(request.param)


@pytest.fixture(scope="module")
def module_database_url(module_backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """`database_url` for a server a whole module shares."""
    with database_for(module_backend, request) as url:
        yield url


@pytest.fixture
def settings(db_path: Path, database_url: str | None) -> Settings:
    # retention off: the tests' data sets are dated 2026-01-01 on, which the default periods would prune
    return Settings(db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, retention_days=0)


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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_http(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    """`http` for a whole module, on one app per backend: for requests the gateway refuses before they change
    anything (a missing or wrong token, an unknown gateway, a foreign origin), which need not start an app each.
    Its tests run on the module's event loop: mark them `@pytest.mark.asyncio(loop_scope="module")`."""
    db_path = tmp_path_factory.mktemp("module-app") / "gateway.db"
    settings = Settings(db_path=db_path, database_url=module_database_url, admin_token=ADMIN_TOKEN, retention_days=0)
    app = create_app(settings)
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client
