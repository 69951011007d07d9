"""The long-lived parts one gateway process shares, built once, started and stopped together.

Both entry points use it: the HTTP app (`app.py`) and stdio (`transports/stdio.py`). Starting
opens the store, loads the server's hashing secret, creates the `demo` gateway on first start and
starts self-tracking; stopping flushes what tracking captured into the store, then closes it.
"""

from __future__ import annotations

import functools
import gc
import logging
import secrets
from dataclasses import dataclass
from typing import Final

import anyio.to_thread
from mcp.server import MCPServer
from mcp_gateway_tracking import LocalSink, Tracker, track_mcp

from .accounts.limits import event_quota
from .accounts.service import AccountService
from .config import Settings
from .gateways import GatewayDirectory
from .ingest import Ingestor, WebIngestor, geo, ipkind
from .ingest.web import Admission
from .keys import KeyService
from .privacy import IpHasher
from .store import Store, store_for
from .telemetry import Telemetry, drop_sdk_tracing, tracing_configured
from .tools.book_demo import PERSONAL_ARGUMENTS
from .tools.book_demo import TOOL_NAME as BOOK_DEMO

logger = logging.getLogger(__name__)

HASH_SECRET_SETTING: Final = "hash_secret"
"""The server's secret for keyed hashes (client IPs), generated at first start."""

SHUTDOWN_FLUSH_SECONDS: Final = 5.0
"""How long stopping waits for captured sessions and events to reach the store."""

SELF_TRACKING_BATCH: Final = 100
"""Captured items that make self-tracking write at once. Each write is a store transaction (and, on SQLite, an
fsync); at the tracking library's default of 5, under load most of a tracked call's cost was its share of such
small transactions. Fewer items wait at most the sink's flush interval (2 s), as before."""


@dataclass
class Services:
    settings: Settings
    store: Store
    directory: GatewayDirectory
    keys: KeyService
    accounts: AccountService
    admit: Admission | None
    """The account event limit's check before events are stored (None: unlimited), for every ingest path."""
    hash_ip: IpHasher
    ingestor: Ingestor
    web_ingestor: WebIngestor
    tracking_sink: LocalSink
    telemetry: Telemetry | None = None
    """The OTLP export of the gateway's own spans and metrics, when `settings.otlp_endpoint` is set."""

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None) -> Services:
        store = store or store_for(settings.database_url, settings.db_path)
        hash_ip = IpHasher()
        admit = event_quota(store, settings)
        ingestor = Ingestor(store, hash_ip, admit=admit)
        return cls(
            settings=settings,
            store=store,
            directory=GatewayDirectory(store, cache_seconds=settings.gateway_cache_seconds),
            keys=KeyService(store, cache_seconds=settings.gateway_cache_seconds),
            accounts=AccountService(store, cache_seconds=settings.gateway_cache_seconds),
            admit=admit,
            hash_ip=hash_ip,
            ingestor=ingestor,
            web_ingestor=WebIngestor(store, hash_ip, admit=admit),
            tracking_sink=LocalSink(
                functools.partial(ingestor.capture, background=True), batch_size=SELF_TRACKING_BATCH
            ),
            telemetry=Telemetry.start(settings),
        )

    async def start(self, *, network_clients: bool = True) -> None:
        """Open the store and load what ingest needs; `network_clients=False` (stdio: no client IPs) skips the cloud
        IP ranges, which take a few seconds and ~80 MB to load."""
        await self.store.open()
        secret = await self.store.put_setting_if_absent(HASH_SECRET_SETTING, secrets.token_hex(32))
        self.hash_ip.use(bytes.fromhex(secret))
        await self.accounts.ensure_default()
        if await self.directory.ensure_demo():
            logger.info("created gateway 'demo' from the bundled default content")
        await anyio.to_thread.run_sync(geo.warm)
        if network_clients:
            await anyio.to_thread.run_sync(ipkind.warm)
        # What was loaded so far (the SDK, the geo-IP and cloud-range tables: ~0.8M objects) lives as long as the
        # app: keep it out of the garbage collector's sight (until `stop`), or every full collection walks it
        # again: p99 of 0.5-0.8 s under load in bench/mcp_throughput.py, ~30 ms with it frozen.
        gc.freeze()
        self.tracking_sink.start()

    async def stop(self) -> None:
        gc.unfreeze()  # what `start` froze is collectable again (a test process starts many apps)
        try:
            await self.tracking_sink.aclose(SHUTDOWN_FLUSH_SECONDS)
        finally:
            try:
                await self.store.close()
            finally:
                if self.telemetry is not None:
                    await anyio.to_thread.run_sync(self.telemetry.shutdown)

    def track(self, server: MCPServer, gateway_id: str) -> Tracker:
        """Record `server`'s sessions and events into this gateway's own store, while its manifest allows."""

        async def enabled() -> bool:
            gateway = await self.directory.get(gateway_id)
            return gateway is not None and gateway.manifest.tracking_enabled

        telemetry = self.telemetry
        tracker = track_mcp(
            server,
            gateway_id,
            sink=self.tracking_sink,
            enabled=enabled,
            private_arguments={BOOK_DEMO: PERSONAL_ARGUMENTS},
            sink_redacts=True,  # the store is the one redaction point (`store/redaction.py`): not twice per event
            tracer_provider=telemetry.tracer_provider if telemetry is not None else None,
            meter_provider=telemetry.meter_provider if telemetry is not None else None,
        )
        if telemetry is None and not tracing_configured():
            drop_sdk_tracing(server)
        return tracker
