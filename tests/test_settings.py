"""Settings from flags, `MCP_GATEWAY_*` variables and one TOML file (flag > variable > file > default), every
variable name of earlier versions kept, bad values named by where they came from, and the README's table."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from mcp_gateway.cli import run
from mcp_gateway.config import Settings
from mcp_gateway.config_flags import DATABASE_SETTINGS, SERVE_SETTINGS, add_flags, flag_for, given, settings_table
from mcp_gateway.config_sources import CONFIG_VARIABLE, env_variable, env_variables, load_settings
from mcp_gateway.errors import ConfigError

from .support import DEMO, gateway_process

README: Final = Path(__file__).resolve().parent.parent / "README.md"

SAMPLES: Final[dict[str, tuple[str, object]]] = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9100", 9100),
    "workers": ("3", 3),
    "log_level": ("debug", "debug"),
    "log_format": ("json", "json"),
    "db_path": ("/srv/gateway/g.db", Path("/srv/gateway/g.db")),
    "database_url": ("postgresql://gateway:pw@db.internal/gateway", "postgresql://gateway:pw@db.internal/gateway"),
    "admin_token": ("a" * 20, "a" * 20),
    "metrics_token": ("m" * 20, "m" * 20),
    "allowed_hosts": ("gw.example.com, localhost", ("gw.example.com", "localhost")),
    "max_sse_connections_per_ip": ("3", 3),
    "mcp_session_idle_seconds": ("60.5", 60.5),
    "max_mcp_sessions": ("50", 50),
    "max_mcp_sessions_per_ip": ("5", 5),
    "new_mcp_sessions_per_ip_per_minute": ("7", 7),
    "max_body_bytes": ("2048", 2048),
    "gateway_cache_seconds": ("0.25", 0.25),
    "retention_days": ("9", 9),
    "event_retention_days": ("1", 1),
    "analytics_retention_days": ("2", 2),
    "health_retention_days": ("3", 3),
    "track_rate_limit": ("11", 11),
    "v1_track_rate_limit": ("12", 12),
    "api_rate_limit": ("13", 13),
    "header_timeout_seconds": ("4.5", 4.5),
    "body_timeout_seconds": ("5.5", 5.5),
    "max_connections_per_ip": ("6", 6),
    "max_connections": ("700", 700),
    "trusted_proxies": ("10.0.0.1, 192.168.0.0/16", ("10.0.0.1/32", "192.168.0.0/16")),
    "account_tier": ("team", "team"),
    "max_projects": ("4", 4),
    "max_events_lifetime": ("1000", 1000),
    "integrations_key": ("k" * 43 + "=", "k" * 43 + "="),
    "forward_max_attempts": ("3", 3),
    "forward_retry_base_seconds": ("1.5", 1.5),
    "forward_retry_max_seconds": ("60", 60.0),
    "forward_timeout_seconds": ("5", 5.0),
    "forward_poll_seconds": ("0.5", 0.5),
    "forward_lease_seconds": ("30", 30.0),
    "mcp_json_response": ("true", True),
    "otlp_endpoint": ("http://collector:4318", "http://collector:4318"),
}
"""Per setting: a value as a variable holds it (not the default), and the setting it makes."""

KEPT_VARIABLES: Final = (
    "MCP_GATEWAY_DB",
    "MCP_GATEWAY_DATABASE_URL",
    "MCP_GATEWAY_ADMIN_TOKEN",
    "MCP_GATEWAY_METRICS_TOKEN",
    "MCP_GATEWAY_ALLOWED_HOSTS",
    "MCP_GATEWAY_TRUSTED_PROXIES",
    "MCP_GATEWAY_MAX_PROJECTS",
    "MCP_GATEWAY_MAX_EVENTS_LIFETIME",
    "MCP_GATEWAY_ACCOUNT_TIER",
    "MCP_GATEWAY_TRACK_RATE_LIMIT",
    "MCP_GATEWAY_V1_TRACK_RATE_LIMIT",
    "MCP_GATEWAY_API_RATE_LIMIT",
    "MCP_GATEWAY_RETENTION_DAYS",
    "MCP_GATEWAY_EVENT_RETENTION_DAYS",
    "MCP_GATEWAY_ANALYTICS_RETENTION_DAYS",
    "MCP_GATEWAY_HEALTH_RETENTION_DAYS",
    "MCP_GATEWAY_MCP_SESSION_IDLE_SECONDS",
    "MCP_GATEWAY_MAX_MCP_SESSIONS",
    "MCP_GATEWAY_MAX_MCP_SESSIONS_PER_IP",
    "MCP_GATEWAY_NEW_MCP_SESSIONS_PER_IP_PER_MINUTE",
    "MCP_GATEWAY_HEADER_TIMEOUT_SECONDS",
    "MCP_GATEWAY_BODY_TIMEOUT_SECONDS",
    "MCP_GATEWAY_MAX_CONNECTIONS_PER_IP",
    "MCP_GATEWAY_MAX_CONNECTIONS",
    "MCP_GATEWAY_INTEGRATIONS_KEY",
    "MCP_GATEWAY_FORWARD_MAX_ATTEMPTS",
    "MCP_GATEWAY_FORWARD_RETRY_BASE_SECONDS",
    "MCP_GATEWAY_FORWARD_RETRY_MAX_SECONDS",
    "MCP_GATEWAY_FORWARD_TIMEOUT_SECONDS",
    "MCP_GATEWAY_FORWARD_POLL_SECONDS",
    "MCP_GATEWAY_FORWARD_LEASE_SECONDS",
    "MCP_GATEWAY_MCP_JSON_RESPONSE",
    "MCP_GATEWAY_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "MCP_GATEWAY_LOG_FORMAT",
)
"""The variables versions before pydantic-settings read (written out: a renamed field must not rename one)."""

KEPT_FLAGS: Final = (
    "--host",
    "--port",
    "--db",
    "--database-url",
    "--allowed-host",
    "--workers",
    "--trusted-proxy",
    "--header-timeout",
    "--body-timeout",
    "--max-connections-per-ip",
    "--max-connections",
    "--mcp-json-response",
    "--otlp-endpoint",
    "--log-level",
    "--log-format",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting of the machine's: no variable of ours and no config file at the default location."""
    for variable in [v for name in Settings.model_fields for v in env_variables(name)] + [CONFIG_VARIABLE]:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    yield


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def config_file(folder: Path, **values: object) -> Path:
    path = folder / "gateway.toml"
    path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in values.items()), encoding="utf-8")
    return path


def test_every_setting_has_a_sample_so_none_escapes_these_tests() -> None:
    assert set(SAMPLES) == set(Settings.model_fields)


def test_every_variable_of_earlier_versions_still_names_its_setting() -> None:
    read = {variable for name in Settings.model_fields for variable in env_variables(name)}
    assert set(KEPT_VARIABLES) <= read
    assert env_variable("db_path") == "MCP_GATEWAY_DB"
    assert env_variable("max_body_bytes") == "MCP_GATEWAY_MAX_BODY_BYTES"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_setting_is_read_from_its_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, expected = SAMPLES[name]
    monkeypatch.setenv(env_variable(name), raw)

    assert getattr(load_settings().settings, name) == expected


def test_every_setting_is_read_from_the_config_file(tmp_path: Path) -> None:
    expected = {name: value for name, (_, value) in SAMPLES.items()}

    loaded = load_settings(config_file=config_file(tmp_path, **expected))

    assert loaded.settings.model_dump() == expected


def test_every_flag_of_earlier_versions_is_kept_and_every_other_setting_but_the_secrets_has_one() -> None:
    flags = {flag.option for name in Settings.model_fields if (flag := flag_for(name)) is not None}
    assert set(KEPT_FLAGS) <= flags
    assert {name for name in Settings.model_fields if flag_for(name) is None} == {
        "admin_token",
        "metrics_token",
        "integrations_key",
    }


@pytest.mark.parametrize("name", sorted(set(SERVE_SETTINGS) | set(DATABASE_SETTINGS)))
def test_each_flag_sets_its_setting(name: str) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, [name])
    flag = flag_for(name)
    assert flag is not None
    raw, expected = SAMPLES[name]
    if isinstance(expected, bool):
        argv = [flag.option]
    elif isinstance(expected, tuple):
        argv = [part for item in raw.split(",") for part in (flag.option, item.strip())]
    else:
        argv = [flag.option, raw]

    assert getattr(load_settings(given(parser.parse_args(argv), [name])).settings, name) == expected


def test_a_flag_beats_a_variable_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_file(tmp_path, port=1001, max_body_bytes=4096, log_format="json")
    monkeypatch.setenv("MCP_GATEWAY_PORT", "1002")
    monkeypatch.setenv("MCP_GATEWAY_MAX_BODY_BYTES", "8192")

    loaded = load_settings({"port": 1003, "max_body_bytes": None}, config_file=path)

    assert (loaded.settings.port, loaded.settings.max_body_bytes, loaded.settings.log_format) == (1003, 8192, "json")
    assert loaded.settings.api_rate_limit == Settings().api_rate_limit  # given nowhere: the default
    assert loaded.origins == {
        "port": "--port",
        "max_body_bytes": "MCP_GATEWAY_MAX_BODY_BYTES",
        "log_format": f"log_format (in {path})",
    }


def test_the_config_file_comes_from_the_variable_or_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "config-home" / "mcp-gateway"
    default.mkdir(parents=True)
    config_file(default, port=2001).rename(default / "config.toml")
    assert load_settings().settings.port == 2001
    assert load_settings().config_file == default / "config.toml"

    monkeypatch.setenv(CONFIG_VARIABLE, str(config_file(tmp_path, port=2002)))
    assert load_settings().settings.port == 2002
    assert load_settings(config_file=config_file(tmp_path / "config-home", port=2003)).settings.port == 2003


def test_our_otlp_variable_beats_opentelemetry_s_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_file(tmp_path, otlp_endpoint="http://from-file:4318")
    assert load_settings(config_file=path).settings.otlp_endpoint == "http://from-file:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://standard:4318")
    assert load_settings(config_file=path).origins["otlp_endpoint"] == "OTEL_EXPORTER_OTLP_ENDPOINT"
    assert load_settings(config_file=path).settings.otlp_endpoint == "http://standard:4318"
    monkeypatch.setenv("MCP_GATEWAY_OTLP_ENDPOINT", "http://ours:4318")
    assert load_settings(config_file=path).settings.otlp_endpoint == "http://ours:4318"


def test_the_old_single_retention_period_is_the_default_of_the_three_from_any_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_file(tmp_path, retention_days=5, health_retention_days=0)
    monkeypatch.setenv("MCP_GATEWAY_ANALYTICS_RETENTION_DAYS", "14")

    settings = load_settings(config_file=path).settings

    assert (settings.event_retention_days, settings.analytics_retention_days, settings.health_retention_days) == (
        5,
        14,
        0,
    )


def test_an_empty_variable_is_unset_and_a_list_may_also_be_a_string_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_GATEWAY_PORT", "")
    path = config_file(tmp_path, allowed_hosts="a.example.com,b.example.com")

    settings = load_settings(config_file=path).settings

    assert (settings.port, settings.allowed_hosts) == (8000, ("a.example.com", "b.example.com"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MCP_GATEWAY_PORT", "70000"),
        ("MCP_GATEWAY_MAX_BODY_BYTES", "lots"),
        ("MCP_GATEWAY_TRUSTED_PROXIES", "10.0.0.1,not-an-ip"),
        ("MCP_GATEWAY_MCP_JSON_RESPONSE", "maybe"),
        ("MCP_GATEWAY_LOG_FORMAT", "xml"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert str(raised.value).startswith(f"invalid {variable}: ")


def test_a_bad_or_unknown_key_in_the_file_is_named_with_the_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, port="ninety", max_body_byte=2048)

    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=path)

    assert str(raised.value).split("; ") == [
        f"invalid port (in {path}): Input should be a valid integer, unable to parse string as an integer",
        f"invalid max_body_byte (in {path}): Extra inputs are not permitted",
    ]


@pytest.mark.parametrize(
    ("setup", "named"),
    [
        ("env", "MCP_GATEWAY_API_RATE_LIMIT"),
        ("file", "api_rate_limit (in"),
        ("not-toml", "is not valid TOML"),
        ("missing", "does not exist"),
    ],
)
def test_the_cli_says_what_is_wrong_in_one_line_and_exits_1(
    setup: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    if setup == "env":
        monkeypatch.setenv("MCP_GATEWAY_API_RATE_LIMIT", "0")
    elif setup == "file":
        config_file(tmp_path, api_rate_limit=0)
    elif setup == "not-toml":
        path.write_text("api_rate_limit = [\n", encoding="utf-8")
    config = [] if setup == "env" else ["--config", str(path)]

    code = run(["keys", "list", "--gateway", DEMO, "--db", str(tmp_path / "g.db"), *config])

    err = capsys.readouterr().err
    assert code == 1
    assert named in err and err.startswith("error: ") and err.count("\n") == 1


def test_every_command_reads_the_database_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mcp-gateway.db").write_bytes(b"")  # an older version's default: named in a file, no refusal
    db_path = tmp_path / "elsewhere" / "g.db"
    db_path.parent.mkdir()
    path = config_file(tmp_path, db_path=db_path)
    monkeypatch.setenv(CONFIG_VARIABLE, str(path))

    assert run(["gateways", "list"]) == 0

    assert capsys.readouterr().err.splitlines() == [f"config: {path}", f"database: {db_path}"]
    assert db_path.is_file()


def test_a_relative_database_path_in_the_file_is_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)

    settings = load_settings(config_file=config_file(folder, db_path="data/g.db")).settings

    assert settings.db_path == folder / "data" / "g.db"


async def test_serve_takes_the_body_cap_from_the_file_unless_a_variable_sets_it(tmp_path: Path) -> None:
    """A real `mcp-gateway serve --config`: the body cap (which had no variable before) from the file, and the
    variable over it."""
    path = config_file(tmp_path, max_body_bytes=2048, gateway_cache_seconds=0)
    async with (
        gateway_process(tmp_path / "g.db", "--config", str(path), MAX_BODY_BYTES="4096") as (_, base_url),
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        within = await http.post(f"/track?gid={DEMO}", content=json.dumps({"pad": "x" * 3000}))
        beyond = await http.post(f"/track?gid={DEMO}", content=json.dumps({"pad": "x" * 5000}))

    assert within.status_code != 413, within.text
    assert beyond.status_code == 413


def test_the_readme_table_is_the_settings_table() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- settings-table -->\n(.*?)<!-- /settings-table -->", text, re.DOTALL)
    assert match is not None, "README lacks the settings table markers"
    assert match.group(1) == settings_table(), "regenerate: python -m mcp_gateway.config_flags"


def test_serve_offers_every_flag_and_every_command_the_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["serve", "--help"], ["keys", "list", "--help"]):
        with pytest.raises(SystemExit) as exited:
            run(argv)
        assert exited.value.code == 0
    serve_help, keys_help = capsys.readouterr().out.split("usage: mcp-gateway keys list")

    options = set(re.findall(r"(--[a-z0-9-]+)", serve_help))
    flags = {flag.option for name in (*DATABASE_SETTINGS, *SERVE_SETTINGS) if (flag := flag_for(name)) is not None}
    assert flags | {"--config"} <= options
    assert {"--db", "--database-url", "--config"} <= set(re.findall(r"(--[a-z0-9-]+)", keys_help))
