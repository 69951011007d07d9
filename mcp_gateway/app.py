"""Builds the gateway's Starlette app: routes, error handling and the lifespan that runs it all."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._version import __version__
from .accounts.access import Access
from .accounts.deletion import ProjectPurger
from .accounts.routes import ProjectsApi
from .admin import AdminApi, AdminAuth
from .analytics import QUESTIONS, AnalyticsApi
from .analytics.api import API_LIMIT_WINDOW_SECONDS
from .analytics.live import LiveFeed, LiveStream
from .analytics.mcp_endpoint import AnalyticsMcp
from .config import Settings
from .dashboard import Dashboard
from .experiments import QUESTIONS as EXPERIMENT_QUESTIONS
from .experiments import ExperimentsApi
from .frontdoor import ApiDocs, FrontDoor
from .ingest import AgnostApi
from .ingest.crm import CrmCallbackRoutes
from .ingest.track import TrackApi
from .ingest.visits import VisitRoutes
from .integrations.forwarding import Forwarding
from .integrations.platforms import PLATFORMS, Platform
from .metrics import Metrics, RequestMetrics
from .openapi import OpenApiDocument, Operation
from .privacy import redact_sdk_logs
from .ratelimit import limiter_for
from .server import ServerFactory, build_gateway_server
from .services import Services
from .store import Store
from .store.retention import RetentionPeriods, keep_pruning
from .telemetry import HttpTracingMiddleware
from .transports import GatewayRuntimes, McpRoutes
from .transports.forwarding import Forwarder, SessionOwners, private_listener, this_host
from .web import EXCEPTION_HANDLERS, cors_route, quiet_client_disconnects

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    server_factory: ServerFactory = build_gateway_server,
    platforms: Mapping[str, Platform] = PLATFORMS,
) -> Starlette:
    """The whole gateway as one ASGI app. Its lifespan opens the store and creates `demo` if missing."""
    settings = settings or Settings()
    redact_sdk_logs()
    services = Services.build(settings, store)
    if server_factory is build_gateway_server:  # its track_event tool ingests: under the account's event limit
        server_factory = functools.partial(build_gateway_server, admit=services.admit)
    runtimes = GatewayRuntimes(settings, server_factory, services.directory, services.store, track=services.track)
    auth = AdminAuth(services.store, settings.admin_token)
    ready = False

    async def health(_: Request) -> JSONResponse:
        """Ready when started and the database answers; `writer_queue` is the write jobs waiting, `timestamp` the
        server's clock in ms since the epoch (seed 001)."""
        timestamp = int(time.time() * 1000)
        if not ready:
            return JSONResponse({"status": "starting", "timestamp": timestamp}, status_code=503)
        body = {"version": __version__, "writer_queue": services.store.writer_queue_depth(), "timestamp": timestamp}
        try:
            await services.store.fetch("SELECT 1")
        except Exception:  # whatever the driver raises, the answer is "not ready", not a 500
            logger.exception("health check: the database did not answer")
            return JSONResponse({"status": "unavailable", "database": "unreachable", **body}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", **body})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal ready
        await services.start()
        try:
            if (token := await auth.ensure_token()) is not None:
                sys.stderr.write(
                    f"\nAdmin token (shown once; set MCP_GATEWAY_ADMIN_TOKEN to choose your own):\n  {token}\n\n"
                )
            async with (
                runtimes.run(),
                live_feed.run(),
                analytics_mcp.run(),
                _shared_sessions(app, services, mcp),
                _retention(services),
                forwarding.run(),
                purger.run(),
            ):
                ready = True
                yield
                ready = False
        finally:
            metrics.close()
            await services.stop()

    body_limit = settings.max_body_bytes
    api_limit = limiter_for(services.store, settings.api_rate_limit, API_LIMIT_WINDOW_SECONDS, name="api")
    access = Access(services.keys, services.accounts, auth)
    questions = [*QUESTIONS, *EXPERIMENT_QUESTIONS]
    analytics = AnalyticsApi(access, services.store, questions, limiter=api_limit)
    experiments = ExperimentsApi(
        access, services.store, services.directory, max_body_bytes=body_limit, limiter=api_limit
    )
    live_feed = LiveFeed(services.store)
    live_stream = LiveStream(live_feed)
    analytics_mcp = AnalyticsMcp(settings, access, services.store, questions, limiter=api_limit)
    if services.telemetry is not None:
        services.telemetry.instrument(analytics_mcp.server)
    mcp = McpRoutes(settings, services.directory, runtimes)
    agnost = AgnostApi(services.keys, services.ingestor, max_body_bytes=body_limit)
    track = TrackApi(settings, services.directory, services.keys, services.web_ingestor, services.store)
    visits = VisitRoutes(
        services.directory, services.web_ingestor, services.store, services.hash_ip, max_body_bytes=body_limit
    )
    crm = CrmCallbackRoutes(services.keys, services.store, max_body_bytes=body_limit)
    admin = AdminApi(
        auth, services.directory, services.store, services.keys, max_body_bytes=body_limit, limiter=api_limit
    )
    purger = ProjectPurger(services.store)
    projects = ProjectsApi(
        access, auth, services.store, services.directory, services.keys, settings, purger, limiter=api_limit
    )
    forwarding = Forwarding(services.store, services.directory, settings, auth, limiter=api_limit, platforms=platforms)
    track.sync_forwarding = forwarding.sync
    dashboard = Dashboard(
        services.keys, services.store, services.directory, questions, limiter=api_limit, access=access
    )
    front_door = FrontDoor(services.directory, settings, css=dashboard.css_url)
    api_docs = ApiDocs()
    metrics = Metrics(services.store, services.tracking_sink.stats, token=settings.metrics_token)
    forwarding.instrument(metrics)
    operations = [
        Operation("GET", "/health", "Liveness and readiness", "operations"),
        Operation(
            "GET",
            "/metrics",
            "Prometheus metrics",
            "operations",
            content_type="text/plain",
            errors=(401,),
            description="Open unless MCP_GATEWAY_METRICS_TOKEN is set; then send it as Authorization: Bearer.",
        ),
        Operation("GET", "/openapi.json", "This document", "operations"),
        front_door.operation(),
        *api_docs.operations(),
        *mcp.operations(),
        *agnost.operations(),
        *track.operations(),
        *visits.operations(),
        *crm.operations(),
        *admin.operations(),
        *projects.operations(),
        *forwarding.operations(),
        *analytics.operations(),
        *experiments.operations(),
        live_stream.operation(),
        analytics_mcp.operation(),
        *dashboard.operations(),
    ]
    openapi = OpenApiDocument(operations)

    routes = [
        *mcp.routes(),  # first: the router tries routes in order, and agents' calls are the busiest path
        Route("/openapi.json", openapi.serve, methods=["GET"]),
        Route("/", front_door.serve, methods=["GET"]),
        *api_docs.routes(),
        cors_route("/health", health, ["GET"]),
        Route("/metrics", metrics.serve, methods=["GET"]),
        *agnost.routes(),
        *track.routes(),
        *visits.routes(),
        *crm.routes(),
        *experiments.routes(),  # before the analytics' /experiments/{id}: /experiments/config is not an id
        *analytics.routes(),
        *live_stream.routes(),
        *analytics_mcp.routes(),
        *dashboard.routes(),
        *admin.routes(),
        *projects.routes(),
        *forwarding.api.routes(),
    ]
    quiet_client_disconnects()
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, metrics=metrics),
            *_tracing(services),
        ],
    )
    app.state.services = services
    app.state.access = access
    app.state.purger = purger
    return app


def _tracing(services: Services) -> list[Middleware]:
    """A span per HTTP request when the gateway exports OpenTelemetry (`telemetry.py`); nothing otherwise."""
    if services.telemetry is None:
        return []
    return [Middleware(HttpTracingMiddleware, tracer_provider=services.telemetry.tracer_provider)]


@contextlib.asynccontextmanager
async def _retention(services: Services) -> AsyncIterator[None]:
    """Prune data older than its retention period while the app runs, unless every period is 0 (keep)."""
    settings = services.settings
    periods = RetentionPeriods(
        settings.event_retention_days, settings.analytics_retention_days, settings.health_retention_days
    )
    if not periods.enabled:
        yield
        return
    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_pruning, services.store, periods)
        yield
        tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _shared_sessions(app: Starlette, services: Services, mcp: McpRoutes) -> AsyncIterator[None]:
    """On a database other processes may share (PostgreSQL), listen privately for requests of this process's MCP
    sessions that reached another process, and forward theirs (`transports.forwarding`)."""
    if services.store.dialect != "postgresql":
        yield
        return
    async with private_listener(app) as path:
        owners = SessionOwners(services.store, f"{this_host()}|{path}")
        forwarder = Forwarder(owners)
        mcp.forwarder = forwarder
        try:
            yield
        finally:
            mcp.forwarder = None
            await forwarder.aclose()
            await owners.release_all()
