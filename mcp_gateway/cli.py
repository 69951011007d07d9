"""`mcp-gateway`: serve the gateway, run it over stdio, and manage gateways.

    mcp-gateway serve [--host H] [--port P] [--db PATH] [--allowed-host HOST ...] [--workers N] ...
                      (a flag for every setting but the secrets: config_flags.py, README "Configuration")
    mcp-gateway stdio --gateway ID [--db PATH]
    mcp-gateway gateways list | show ID | create ID --name NAME [--origin O ...] [--manifest FILE]
    mcp-gateway gateways set-manifest ID FILE | set-origins ID ORIGIN ...
    mcp-gateway keys create --gateway ID --kind org|pk|sk|read [--name NAME]   (prints only the key)
    mcp-gateway keys list --gateway ID | revoke --gateway ID KEY_ID
    mcp-gateway accounts list | create ID --name NAME | key ID   (create and key print only the new account key)
    mcp-gateway events tail [--gateway ID] [--json] [--once]
    mcp-gateway integrations list|add|remove|replay --gateway ID ...   (integrations/commands.py)
    mcp-gateway migrate-db --db PATH --database-url URL    (copy a SQLite database into an empty PostgreSQL one)

Every command finds the database the same way: `--database-url postgresql://...` (or
`MCP_GATEWAY_DATABASE_URL`) stores everything in PostgreSQL; otherwise the SQLite file `--db`, else
`MCP_GATEWAY_DB`, else `$XDG_DATA_HOME/mcp-gateway/mcp-gateway.db` (`~/.local/share/mcp-gateway/...`),
whatever the working directory, so `keys create` run anywhere writes where `serve` reads. Each command
says on stderr which database it used (`database: ...`). An `./mcp-gateway.db` (older versions' default)
in the working directory is not taken silently: while the default file does not exist yet, commands
refuse and say how to move it (or pass `--db`); once it does, they note that it is not used.
Every command also takes `--config PATH` (else `MCP_GATEWAY_CONFIG`, else `~/.config/mcp-gateway/config.toml` when
it exists): a TOML file of settings, below flags and variables (config_sources.py). A bad setting is one line
naming its flag, variable or key, and exit code 1.
Exit codes: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from . import config_flags, logs
from .accounts.routes import AccountCreate
from .accounts.service import AccountService
from .config import ENV_PREFIX, LEGACY_DB_PATH, Settings
from .config_sources import CONFIG_VARIABLE, default_config_path, load_settings
from .errors import GatewayError
from .gateways import AgentManifest, Gateway, GatewayCreate, GatewayDirectory
from .integrations import commands as integration_commands
from .keys import KEY_KINDS, KeyService
from .metrics import MULTIPROCESS_VARIABLE
from .store import Store, store_for
from .store.postgres import redacted
from .store.transfer import Copied, copy_sqlite_to_postgres
from .tail import DEFAULT_BACKLOG, as_json, as_line, stored_rows

logger = logging.getLogger("mcp_gateway")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-gateway", description="A self-hosted agent gateway with analytics.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP gateway (MCP over SSE, Streamable HTTP, JSON-RPC)")
    _add_db(serve)
    config_flags.add_flags(serve, config_flags.SERVE_SETTINGS)

    stdio = commands.add_parser("stdio", help="serve one gateway's MCP server over stdin/stdout")
    stdio.add_argument("--gateway", required=True, metavar="ID")
    _add_db(stdio)

    gateways = commands.add_parser("gateways", help="manage gateways").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add_db(gateways.add_parser("list", help="list gateways"))
    show = gateways.add_parser("show", help="print one gateway as JSON")
    show.add_argument("id")
    _add_db(show)
    create = gateways.add_parser("create", help="create a gateway (bundled default manifest unless --manifest)")
    create.add_argument("id")
    create.add_argument("--name", required=True)
    create.add_argument("--origin", action="append", dest="origins", metavar="ORIGIN", help="allowed origin (repeat)")
    create.add_argument("--manifest", type=Path, metavar="FILE", help="agent manifest JSON file")
    _add_db(create)
    set_manifest = gateways.add_parser("set-manifest", help="replace a gateway's agent manifest from a JSON file")
    set_manifest.add_argument("id")
    set_manifest.add_argument("file", type=Path)
    _add_db(set_manifest)
    set_origins = gateways.add_parser("set-origins", help="replace a gateway's allowed origins")
    set_origins.add_argument("id")
    set_origins.add_argument("origins", nargs="*", metavar="ORIGIN")
    _add_db(set_origins)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_key = keys.add_parser("create", help="create a key and print it (shown this once)")
    create_key.add_argument("--gateway", required=True, metavar="ID")
    create_key.add_argument("--kind", required=True, choices=KEY_KINDS)
    create_key.add_argument("--name", default="")
    _add_db(create_key)
    list_keys = keys.add_parser("list", help="list a gateway's keys")
    list_keys.add_argument("--gateway", required=True, metavar="ID")
    _add_db(list_keys)
    revoke_key = keys.add_parser("revoke", help="revoke a key")
    revoke_key.add_argument("--gateway", required=True, metavar="ID")
    revoke_key.add_argument("key_id", metavar="KEY_ID")
    _add_db(revoke_key)

    accounts = commands.add_parser("accounts", help="manage accounts and their account keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add_db(accounts.add_parser("list", help="list accounts"))
    create_account = accounts.add_parser("create", help="create an account and print its key (shown this once)")
    create_account.add_argument("id")
    create_account.add_argument("--name", required=True)
    _add_db(create_account)
    account_key = accounts.add_parser("key", help="issue a new account key, revoking the old one, and print it")
    account_key.add_argument("id")
    _add_db(account_key)

    events = commands.add_parser("events", help="look at tracked sessions and events").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    tail = events.add_parser("tail", help="print sessions and events as they arrive (Ctrl-C stops)")
    tail.add_argument("--gateway", metavar="ID", help="only this gateway")
    tail.add_argument("--json", action="store_true", help="one JSON object per line, the stored fields")
    tail.add_argument("--once", action="store_true", help="print everything stored, then exit")
    _add_db(tail)

    integration_commands.add_parser(commands, _add_db)

    migrate = commands.add_parser(
        "migrate-db", help="copy the SQLite database (--db) into an empty PostgreSQL database (--database-url)"
    )
    _add_db(migrate)
    return parser


async def _migrate_db(settings: Settings) -> int:
    if settings.database_url is None:
        return _fail("migrate-db needs --database-url (or MCP_GATEWAY_DATABASE_URL): the PostgreSQL database to fill")

    def report(copied: Copied) -> None:
        print(f"{copied.table}\t{copied.rows} rows", flush=True)

    copied = await copy_sqlite_to_postgres(settings.db_path, settings.database_url, report)
    print(f"copied {sum(c.rows for c in copied)} rows of {len(copied)} tables from {settings.db_path}")
    return 0


def _add_db(parser: argparse.ArgumentParser) -> None:
    """The options every command has: where the database is, and the config file."""
    config_flags.add_flags(parser, config_flags.DATABASE_SETTINGS)
    # `integrations add --config` is the integration's own: there the file comes from MCP_GATEWAY_CONFIG.
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(
            "--config",
            dest="config_file",
            type=Path,
            default=None,
            metavar="PATH",
            help=f"TOML file of settings (env {CONFIG_VARIABLE}; default {default_config_path()} when it exists)",
        )


def _version() -> str:
    from ._version import __version__

    return __version__


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


def _which_database(settings: Settings, *, named: bool, copying: bool = False) -> list[str]:
    """The lines naming the database this command uses (a note first, when there is one; `copying`: the SQLite
    file copied into PostgreSQL, `migrate-db`). Unless one was `named` (flag or environment), an older version's
    `./mcp-gateway.db` here is never passed over silently: refused while the default file does not exist yet
    (the user's data would seem gone), noted once it does."""
    if settings.database_url is not None and not copying:
        return [f"database: {redacted(settings.database_url)}"]
    path = settings.db_path.absolute()
    legacy = LEGACY_DB_PATH.absolute()
    notes = []
    if not named and legacy.is_file() and not (path.exists() and path.samefile(legacy)):
        folder = shlex.quote(str(path.parent))
        move = f"mkdir -p {folder} && mv {shlex.quote(str(legacy))}* {folder}/"
        keep = f"--db {shlex.quote(str(legacy))} (or MCP_GATEWAY_DB)"
        if not path.exists():
            raise GatewayError(
                f"{legacy} is where older versions kept the database; the default is now {path}, whatever the"
                f" working directory. Stop the gateway, then move it: {move} -- or keep it with {keep}"
            )
        notes.append(f"note: {legacy} (an older version's default database) is not used; to use it: {keep}")
    into = f" (copied into {redacted(settings.database_url)})" if settings.database_url and copying else ""
    return [*notes, f"database: {path}{into}"]


def _load_manifest(path: Path) -> AgentManifest:
    try:
        return AgentManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GatewayError(f"cannot read {path}: {exc.strerror}") from None


async def _with_store(settings: Settings, work: Callable[[Store, GatewayDirectory], Awaitable[int]]) -> int:
    store = store_for(settings.database_url, settings.db_path)
    await store.open()
    try:
        directory = GatewayDirectory(store, cache_seconds=0)
        await directory.ensure_demo()
        return await work(store, directory)
    finally:
        await store.close()


async def _keys(args: argparse.Namespace, store: Store, directory: GatewayDirectory) -> int:
    gateway = await directory.require(args.gateway)
    keys = KeyService(store, cache_seconds=0)
    match args.action:
        case "create":
            _, plaintext = await keys.create(gateway.id, args.kind, args.name)
            print(plaintext)
        case "list":
            for key in await keys.list(gateway.id):
                state = "revoked" if key.revoked_at_ms is not None else "active"
                print(f"{key.id}\t{key.kind}\t{key.prefix}…\t{state}\t{key.name}")
        case "revoke":
            key = await keys.revoke(gateway.id, args.key_id)
            print(f"{key.id}\trevoked")
    return 0


async def _accounts(args: argparse.Namespace, store: Store, directory: GatewayDirectory) -> int:
    accounts = AccountService(store, cache_seconds=0)
    await accounts.ensure_default()
    match args.action:
        case "create":
            AccountCreate(id=args.id, name=args.name)  # the admin API's checks
            _, plaintext = await accounts.create(args.id, args.name)
            print(plaintext)
        case "key":
            _, plaintext = await accounts.issue_key(args.id)
            print(plaintext)
        case "list":
            for account in await accounts.all():
                key = f"{account.key_prefix}…" if account.key_prefix else "no key"
                print(f"{account.id}\t{key}\t{account.name}")
    return 0


def _print_gateway(gateway: Gateway) -> None:
    print(json.dumps(gateway.model_dump(mode="json"), indent=2))


async def _events(args: argparse.Namespace, store: Store, directory: GatewayDirectory) -> int:
    if args.gateway is not None:
        await directory.require(args.gateway)
    render = as_json if args.json else as_line
    rows = stored_rows(
        store, gateway_id=args.gateway, backlog=None if args.once else DEFAULT_BACKLOG, follow=not args.once
    )
    async for row in rows:
        print(render(row), flush=True)
    return 0


async def _gateways(args: argparse.Namespace, store: Store, directory: GatewayDirectory) -> int:
    match args.action:
        case "list":
            for gateway in await directory.all():
                state = "mcp on" if gateway.manifest.mcp_enabled else "mcp off"
                print(f"{gateway.id}\t{gateway.name}\t{state}\t{','.join(gateway.allowed_origins)}")
        case "show":
            _print_gateway(await directory.require(args.id))
        case "create":
            fields: dict[str, Any] = {"id": args.id, "name": args.name}
            if args.origins is not None:
                fields["allowed_origins"] = args.origins
            if args.manifest is not None:
                fields["manifest"] = _load_manifest(args.manifest)
            _print_gateway(await directory.create(GatewayCreate.model_validate(fields)))
        case "set-manifest":
            await directory.require(args.id)
            _print_gateway(await directory.set_manifest(args.id, _load_manifest(args.file)))
        case "set-origins":
            await directory.require(args.id)
            _print_gateway(await directory.set_allowed_origins(args.id, args.origins))
    return 0


WORKER_ENVIRONMENT: Final = ENV_PREFIX + "WORKER"
"""What `serve --workers N` hands its worker processes: the settings, as JSON."""


def _serve(settings: Settings, database: list[str]) -> int:
    import uvicorn

    from . import connections

    workers, log_level, log_format = settings.workers, settings.log_level, settings.log_format
    if workers > 1 and settings.database_url is None:
        return _fail(
            "--workers above 1 needs PostgreSQL (--database-url or MCP_GATEWAY_DATABASE_URL): SQLite is one process's"
        )
    logs.configure(log_level, log_format)
    for line in database:  # in the log's format (a JSON log stays JSON)
        logger.log(logging.WARNING if line.startswith("note: ") else logging.INFO, line)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "lifespan": "on",
        "log_config": logs.uvicorn_log_config(log_format),
        "http": connections.GuardedHttpToolsProtocol,  # read deadlines and connection caps (in every worker)
        "proxy_headers": bool(settings.trusted_proxies),  # X-Forwarded-For believed from the trusted proxies only
        "forwarded_allow_ips": list(settings.trusted_proxies),
    }
    if workers == 1:
        uvicorn.run(_guarded_app(settings), **options)
        return 0
    os.environ[WORKER_ENVIRONMENT] = settings.model_dump_json()
    with contextlib.ExitStack() as stack:
        if not os.environ.get(MULTIPROCESS_VARIABLE):  # the workers' metrics, summed by whichever one is scraped
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mcp-gateway-metrics-"))
            os.environ[MULTIPROCESS_VARIABLE] = folder
        uvicorn.run("mcp_gateway.cli:worker_app", factory=True, workers=workers, **options)
    return 0


def worker_app() -> Any:
    """The app of one `serve --workers N` process (uvicorn imports this in each one it starts)."""
    settings = Settings.model_validate_json(os.environ[WORKER_ENVIRONMENT])
    logs.configure(settings.log_level, settings.log_format)
    return _guarded_app(settings)


def _guarded_app(settings: Settings) -> Any:
    """The app of a `serve` process, with this process's connection limits set and its log hashing client IPs
    with the app's own secret (loaded when the app starts)."""
    from . import connections
    from .app import create_app

    connections.use_limits(connections.ConnectionLimits.from_settings(settings))
    app = create_app(settings)
    logs.hash_client_ips_with(app.state.services.hash_ip)
    return app


def _stdio(settings: Settings, gateway_id: str) -> int:
    from .transports.stdio import serve_stdio

    logs.configure("warning", "text")
    asyncio.run(serve_stdio(settings, gateway_id))
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        names: tuple[str, ...] = config_flags.DATABASE_SETTINGS
        if args.command == "serve":
            names += config_flags.SERVE_SETTINGS
        loaded = load_settings(
            config_flags.given(args, names),
            flag_names=config_flags.flag_names(names),
            config_file=getattr(args, "config_file", None),
        )
        settings = loaded.settings
        named = "db_path" in loaded.origins  # by a flag, the environment or the config file
        database = _which_database(settings, named=named, copying=args.command == "migrate-db")
        if loaded.config_file is not None:
            database.insert(0, f"config: {loaded.config_file}")
        if args.command == "serve":
            return _serve(settings, database)
        sys.stderr.write("".join(line + "\n" for line in database))
        if args.command == "stdio":
            return _stdio(settings, args.gateway)
        if args.command == "migrate-db":
            return asyncio.run(_migrate_db(settings))
        if args.command == "integrations":
            forward = integration_commands.run
            return asyncio.run(_with_store(settings, lambda store, gateways: forward(args, settings, store, gateways)))
        work = {"keys": _keys, "accounts": _accounts, "events": _events, "gateways": _gateways}[args.command]
        return asyncio.run(_with_store(settings, lambda store, directory: work(args, store, directory)))
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid {'.'.join(str(p) for p in first['loc']) or 'input'}: {first['msg']}")
    except GatewayError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run())
