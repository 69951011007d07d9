"""Where the entry point reads settings from, through pydantic-settings' sources, highest first:

    flags            `mcp-gateway serve --port 9000` (the CLI passes those given)
    environment      `MCP_GATEWAY_<NAME>` for every setting (`env_variable`); two names kept from before:
                     `MCP_GATEWAY_DB` for `db_path`, and OpenTelemetry's `OTEL_EXPORTER_OTLP_ENDPOINT` for
                     `otlp_endpoint` when `MCP_GATEWAY_OTLP_ENDPOINT` is unset
    config file      one TOML file, keys named as the settings (`port = 9000`): `--config PATH`, else
                     `MCP_GATEWAY_CONFIG`, else `$XDG_CONFIG_HOME/mcp-gateway/config.toml` (`~/.config/...`)
                     when it exists; a relative `db_path` in it is relative to the file's folder
    defaults         `Settings`' own

A bad value is a `ConfigError` naming where it came from (the flag, the variable or the file's key).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, SettingsError, TomlConfigSettingsSource

from .config import ENV_PREFIX, Settings
from .errors import ConfigError

CONFIG_VARIABLE: Final = ENV_PREFIX + "CONFIG"
"""Names the config file when `--config` does not."""

CONFIG_FILE_NAME: Final = "config.toml"

RENAMED_VARIABLES: Final[Mapping[str, str]] = {"db_path": ENV_PREFIX + "DB"}
"""Settings whose variable is not `MCP_GATEWAY_<NAME>` (the name they had before there was a config file)."""

FALLBACK_VARIABLES: Final[Mapping[str, str]] = {"otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT"}
"""A standard variable read when the setting's own variable is unset."""


def env_variable(name: str) -> str:
    """The environment variable of the setting `name`."""
    return RENAMED_VARIABLES.get(name, ENV_PREFIX + name.upper())


def env_variables(name: str) -> tuple[str, ...]:
    """The variables read for the setting `name`, first found wins."""
    fallback = FALLBACK_VARIABLES.get(name)
    return (env_variable(name),) if fallback is None else (env_variable(name), fallback)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/mcp-gateway/config.toml`, else `~/.config/mcp-gateway/config.toml`: where the XDG base
    directories put configuration, as `config.default_db_path` puts the database under `$XDG_DATA_HOME`."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME", "")
    base = Path(config_home) if os.path.isabs(config_home) else Path.home() / ".config"
    return base / "mcp-gateway" / CONFIG_FILE_NAME


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, each setting read under its names (`env_variables`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for variable in env_variables(field_name):
            value = self.env_vars.get(variable if self.case_sensitive else variable.lower())
            if value is not None:
                return value, field_name, False
        return None, field_name, False


@dataclass(frozen=True)
class LoadedSettings:
    """The settings, and where each one not left at its default came from (a flag, a variable, a file's key)."""

    settings: Settings
    origins: Mapping[str, str]
    config_file: Path | None


def load_settings(
    flags: Mapping[str, object] | None = None,
    *,
    flag_names: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> LoadedSettings:
    """Settings from `flags` (those not None; `flag_names` says how each is spelled on the command line), the
    environment and the config file, in that order of precedence, over the defaults."""
    path, explicit = _config_path(config_file)
    layers: list[tuple[dict[str, Any], Mapping[str, str]]] = []
    given = {name: value for name, value in (flags or {}).items() if value is not None}
    names = flag_names or {}
    layers.append((given, {name: names.get(name, "--" + name.replace("_", "-")) for name in given}))
    try:
        from_env = _EnvSource(Settings)()
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
    layers.append((from_env, {name: _variable_set(name) for name in from_env}))
    if path is not None and (explicit or path.is_file()):
        from_file = _read_file(path)
        layers.append((from_file, {name: f"{name} (in {path})" for name in from_file}))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer, origin in reversed(layers):  # the lowest first, each higher one over it
        values |= layer
        origins |= origin
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins)) from None
    return LoadedSettings(settings, origins, path if path is not None and path.is_file() else None)


def _config_path(given: Path | None) -> tuple[Path | None, bool]:
    """The config file and whether it was named (then it must exist)."""
    if given is not None:
        return given, True
    if named := os.environ.get(CONFIG_VARIABLE):
        return Path(named), True
    return default_config_path(), False


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (named by --config or {CONFIG_VARIABLE})")
    try:
        values = dict(TomlConfigSettingsSource(Settings, toml_file=path)())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if isinstance(db_path := values.get("db_path"), str) and not os.path.isabs(db_path):
        values["db_path"] = path.parent / db_path  # beside the file, whatever the working directory
    return values


def _variable_set(name: str) -> str:
    return next((variable for variable in env_variables(name) if os.environ.get(variable)), env_variable(name))


def _explain(exc: ValidationError, origins: Mapping[str, str]) -> str:
    """One line per bad value, each naming where the value came from."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        where = origins.get(field, field or "settings")
        lines.append(f"invalid {where}: {error['msg']}")
    return "; ".join(lines)
