"""The settings on the command line, made from `Settings` so that no setting lacks a flag and none drifts.

The flags older versions spelled their own way keep their spelling (`SPELLED`); every other setting is
`--<name-with-dashes>`. Secrets have no flag (`NO_FLAG`): a command line is visible to every user in `ps`.
`settings_table` renders the README's table of every setting from the same data.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Union, get_args, get_origin

from .config import Settings
from .config_sources import env_variables


@dataclass(frozen=True)
class Flag:
    option: str
    metavar: str | None = None


SPELLED: Final[Mapping[str, Flag]] = {
    "host": Flag("--host", "HOST"),
    "port": Flag("--port", "PORT"),
    "workers": Flag("--workers", "N"),
    "db_path": Flag("--db", "PATH"),
    "database_url": Flag("--database-url", "URL"),
    "allowed_hosts": Flag("--allowed-host", "HOST"),
    "trusted_proxies": Flag("--trusted-proxy", "ADDR"),
    "header_timeout_seconds": Flag("--header-timeout", "S"),
    "body_timeout_seconds": Flag("--body-timeout", "S"),
    "max_connections_per_ip": Flag("--max-connections-per-ip", "N"),
    "max_connections": Flag("--max-connections", "N"),
    "otlp_endpoint": Flag("--otlp-endpoint", "URL"),
}
"""Flags as older versions spelled them."""

NO_FLAG: Final = frozenset({"admin_token", "metrics_token", "integrations_key"})
"""Secrets: set by variable or config file only."""

DATABASE_SETTINGS: Final = ("db_path", "database_url")
"""Every command has these flags: each one finds the database the same way."""

SERVE_SETTINGS: Final = tuple(
    name for name in Settings.model_fields if name not in NO_FLAG and name not in DATABASE_SETTINGS
)
"""`serve`'s flags: every other setting that has one."""


def flag_for(name: str) -> Flag | None:
    if name in NO_FLAG:
        return None
    return SPELLED.get(name, Flag("--" + name.replace("_", "-")))


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """One flag per setting in `names`, its value left as given (None when absent) for `Settings` to validate."""
    for name in names:
        flag = flag_for(name)
        assert flag is not None, name
        field = Settings.model_fields[name]
        description = " ".join((field.description or "").split()).replace("%", "%%")
        options: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": f"{description} (env {env_variables(name)[0]})",
        }
        annotation = _unoptional(field.annotation)
        if annotation is bool:
            options["action"] = "store_true"
        else:
            if get_origin(annotation) is tuple:
                options["action"] = "append"
                options["help"] = f"{description} (repeat; env {env_variables(name)[0]}, comma-separated)"
            if get_origin(annotation) is Literal:
                options["choices"] = get_args(annotation)
            else:
                options["metavar"] = flag.metavar or _METAVARS.get(annotation, "VALUE")
                if annotation in (int, float):
                    options["type"] = annotation  # not a number: a usage error (exit 2), as it always was
        parser.add_argument(flag.option, **options)


_METAVARS: Final[Mapping[Any, str]] = {int: "N", float: "S", str: "TEXT"}


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, object]:
    """The settings the command line gave (None for those it did not)."""
    values: dict[str, object] = {}
    for name in names:
        value = getattr(args, name)
        values[name] = tuple(value) if isinstance(value, list) else value
    return values


def flag_names(names: Iterable[str]) -> dict[str, str]:
    return {name: flag.option for name in names if (flag := flag_for(name)) is not None}


def _unoptional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


DEFAULT_TEXT: Final[Mapping[str, str]] = {
    "db_path": "`$XDG_DATA_HOME/mcp-gateway/mcp-gateway.db`, else `~/.local/share/mcp-gateway/mcp-gateway.db`",
    "allowed_hosts": "loopback names only",
    "max_connections": "90% of the open-file limit",
}


def settings_table() -> str:
    """README "Configuration": one row per setting (flag, variable, config file key, default, meaning)."""
    rows = ["| setting (config key) | flag | environment | default | meaning |", "|---|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        flag = flag_for(name)
        flag_text = f"`{flag.option}`" if flag is not None else "(secret: none)"
        env_text = ", else ".join(f"`{variable}`" for variable in env_variables(name))
        if name in DEFAULT_TEXT:
            default = DEFAULT_TEXT[name]
        elif field.default is None:
            default = "unset"
        elif isinstance(field.default, tuple):
            default = ", ".join(field.default) or "none"
        elif isinstance(field.default, bool):
            default = str(field.default).lower()
        else:
            default = f"`{field.default}`"
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {flag_text} | {env_text} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # regenerate README "Configuration": python -m mcp_gateway.config_flags
    print(settings_table(), end="")
