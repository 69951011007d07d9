"""`mcp-gateway integrations ...`: the admin API's integration routes on the command line (same rules, same store).

    integrations list    --gateway ID          one line each: id, kind, enabled, sync, name, its deliveries
    integrations add     --gateway ID --kind K --config JSON|@FILE [--name N] [--sync] [--disabled]
    integrations remove  --gateway ID INTEGRATION_ID
    integrations replay  --gateway ID INTEGRATION_ID --since-ms MS [--until-ms MS]
    integrations apply   --gateway ID FILE [--prune]   the file's integrations (`declared.py`), secrets from env
    integrations deliveries --gateway ID [--integration ID] [--limit N]   the latest settled or pending, newest first

Secrets go in `--config` (prefer `@file`, so they stay out of the shell history) and are never printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path
from typing import Any, Final

from ..config import Settings
from ..errors import InvalidInputError
from ..gateways import GatewayDirectory
from ..store import Store
from ..store.outbox import replay
from .crypto import SecretBox
from .declared import DeclaredIntegrations, apply
from .platforms import PLATFORMS
from .registry import IntegrationCreate, IntegrationService
from .status import delivery_status


def add_parser(commands: Any, add_db: Any) -> None:
    """The `integrations` command and its actions, on `commands` (the CLI's subparsers)."""
    integrations = commands.add_parser("integrations", help="forward events to ad and analytics platforms")
    actions = integrations.add_subparsers(dest="action", required=True, metavar="ACTION")
    listed = actions.add_parser("list", help="a gateway's integrations and their deliveries")
    listed.add_argument("--gateway", required=True, metavar="ID")
    add_db(listed)
    add = actions.add_parser("add", help="add an integration (prints it as JSON, secrets as has_<field>)")
    add.add_argument("--gateway", required=True, metavar="ID")
    add.add_argument("--kind", required=True, choices=sorted(PLATFORMS))
    add.add_argument("--name", default="")
    add.add_argument("--config", required=True, metavar="JSON|@FILE", help="the config object, or @file holding it")
    add.add_argument("--sync", action="store_true", help="send from /track itself (502 when all such fail)")
    add.add_argument("--disabled", action="store_true")
    add_db(add)
    remove = actions.add_parser("remove", help="delete an integration and its deliveries")
    remove.add_argument("--gateway", required=True, metavar="ID")
    remove.add_argument("integration_id", metavar="INTEGRATION_ID")
    add_db(remove)
    again = actions.add_parser("replay", help="send again the deliveries of events in a time window")
    again.add_argument("--gateway", required=True, metavar="ID")
    again.add_argument("integration_id", metavar="INTEGRATION_ID")
    again.add_argument("--since-ms", type=int, required=True, metavar="MS")
    again.add_argument("--until-ms", type=int, default=None, metavar="MS", help="default: now")
    add_db(again)
    declared = actions.add_parser("apply", help="make the gateway's integrations those a JSON file declares")
    declared.add_argument("--gateway", required=True, metavar="ID")
    declared.add_argument("file", type=Path, metavar="FILE", help='{"integrations": [...]}; secrets as {"env": NAME}')
    declared.add_argument("--prune", action="store_true", help="delete the integrations the file does not name")
    add_db(declared)
    recent = actions.add_parser("deliveries", help="the latest deliveries, newest first: status, tries, last error")
    recent.add_argument("--gateway", required=True, metavar="ID")
    recent.add_argument("--integration", default=None, metavar="ID", help="only this integration's")
    recent.add_argument("--limit", type=int, default=DEFAULT_DELIVERIES, metavar="N", help=f"({DEFAULT_DELIVERIES})")
    add_db(recent)


DEFAULT_DELIVERIES: Final = 20
MAX_DELIVERIES: Final = 10_000


async def recent_deliveries(store: Store, gateway_id: str, integration_id: str | None, limit: int) -> list[str]:
    """One tab-separated line per delivery, newest change first: when it last changed (UTC), integration, event,
    status, tries, latency (sent ones), the platform's last error."""
    where, params = "gateway_id = ?", [gateway_id]
    if integration_id is not None:
        where, params = where + " AND integration_id = ?", [*params, integration_id]
    rows = await store.fetch(
        "SELECT updated_at_ms, integration_id, event_id, status, attempts, latency_ms, last_error FROM deliveries"
        f" WHERE {where} ORDER BY updated_at_ms DESC, seq DESC LIMIT ?",
        (*params, limit),
    )
    lines = []
    for changed_ms, iid, event_id, status, attempts, latency_ms, error in rows:
        when = datetime.datetime.fromtimestamp(int(changed_ms) / 1000, datetime.UTC).isoformat(timespec="seconds")
        latency = "-" if latency_ms is None else f"{int(latency_ms)}ms"
        lines.append(f"{when}\t{iid}\t{event_id}\t{status}\ttries={attempts}\t{latency}\t{error or ''}".rstrip("\t"))
    return lines


def _config(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInputError("--config is not valid JSON", field="config") from None
    if not isinstance(value, dict):
        raise InvalidInputError("--config must be a JSON object", field="config")
    return value


async def run(args: argparse.Namespace, settings: Settings, store: Store, directory: GatewayDirectory) -> int:
    gateway = await directory.require(args.gateway)
    box = SecretBox.from_settings(settings.integrations_key, settings.db_path.parent)
    service = IntegrationService(store, box, PLATFORMS, cache_seconds=0)
    match args.action:
        case "list":
            for integration in await service.list(gateway.id):
                counts = (await delivery_status(store, integration))["deliveries"]
                state = "enabled" if integration.enabled else "disabled"
                mode = "sync" if integration.sync else "async"
                summary = " ".join(f"{status}={count}" for status, count in counts.items())
                print(f"{integration.id}\t{integration.kind}\t{state}\t{mode}\t{integration.name}\t{summary}")
        case "add":
            spec = IntegrationCreate(
                kind=args.kind, name=args.name, enabled=not args.disabled, sync=args.sync, config=_config(args.config)
            )
            print(json.dumps(service.view(await service.create(gateway.id, spec)), indent=2))
        case "remove":
            await service.delete(gateway.id, args.integration_id)
            print(f"{args.integration_id}\tdeleted")
        case "replay":
            integration = await service.get(gateway.id, args.integration_id)
            now = int(time.time() * 1000)
            until = now if args.until_ms is None else args.until_ms
            count = await store.write(
                lambda conn: replay(conn, integration.id, since_ms=args.since_ms, until_ms=until, now_ms=now)
            )
            print(f"{count} deliveries pending again; a running server sends them")
        case "deliveries":
            if not 1 <= args.limit <= MAX_DELIVERIES:
                raise InvalidInputError(f"--limit must be from 1 to {MAX_DELIVERIES}", field="limit")
            if args.integration is not None:
                await service.get(gateway.id, args.integration)  # 404-like error for an unknown one
            for line in await recent_deliveries(store, gateway.id, args.integration, args.limit):
                print(line)
        case "apply":
            try:
                text = args.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInputError(f"cannot read {args.file}: {exc.strerror}", field="file") from None
            wanted = DeclaredIntegrations.model_validate_json(text)
            for done in await apply(service, gateway.id, wanted, prune=args.prune):
                print(f"{done.integration_id}\t{done.action}\t{done.kind}\t{done.name}")
    return 0
