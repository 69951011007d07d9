"""`mcp-gateway gateways ...` and `mcp-gateway stdio` through `mcp_gateway.cli.run`: output and exit codes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from mcp_gateway import __version__
from mcp_gateway.cli import run
from mcp_gateway.gateways import DEFAULT_ALLOWED_ORIGINS, default_manifest

pytestmark = pytest.mark.usefixtures("database_url")  # every test on SQLite and on PostgreSQL


@pytest.fixture
def db(db_path: Path) -> list[str]:
    """The `--db` option pointing at the test's database."""
    return ["--db", str(db_path)]


def shown(capsys: pytest.CaptureFixture[str], db: list[str], gateway_id: str) -> dict[str, Any]:
    """The gateway as `gateways show` prints it."""
    capsys.readouterr()
    assert run(["gateways", "show", gateway_id, *db]) == 0
    gateway: dict[str, Any] = json.loads(capsys.readouterr().out)
    return gateway


def write_manifest(path: Path, **changes: Any) -> Path:
    path.write_text(json.dumps(default_manifest().model_dump(mode="json") | changes), encoding="utf-8")
    return path


def failed(capsys: pytest.CaptureFixture[str]) -> str:
    """The error a failed command printed: on stderr (after the line naming the database), prefixed `error:`,
    nothing on stdout, no traceback."""
    output = capsys.readouterr()
    err = "".join(line for line in output.err.splitlines(keepends=True) if not line.startswith("database: "))
    assert output.out == ""
    assert err.startswith("error: ")
    assert "Traceback" not in err
    return err


def test_list_shows_the_demo_gateway_on_a_fresh_database(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["gateways", "list", *db]) == 0

    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows == [["demo", "Demo gateway", "mcp on", ",".join(DEFAULT_ALLOWED_ORIGINS)]]


def test_show_prints_the_gateway_as_json(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    gateway = shown(capsys, db, "demo")

    assert gateway["id"] == "demo"
    assert gateway["manifest"] == default_manifest().model_dump(mode="json")
    assert gateway["allowed_origins"] == list(DEFAULT_ALLOWED_ORIGINS)


def test_create_with_origins_and_manifest_file_is_listed_and_shown(
    db: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "acme.json", system_hint="Acme only.", mcp_enabled=False)

    code = run(
        ["gateways", "create", "acme", "--name", "Acme Inc", "--origin", "https://acme.example"]
        + ["--origin", "http://localhost:*", "--manifest", str(manifest), *db]
    )
    created = json.loads(capsys.readouterr().out)
    assert run(["gateways", "list", *db]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]

    assert code == 0
    assert created["name"] == "Acme Inc"
    assert created["allowed_origins"] == ["https://acme.example", "http://localhost:*"]
    assert created["manifest"]["system_hint"] == "Acme only."
    assert shown(capsys, db, "acme") == created
    assert [row[:3] for row in rows] == [["acme", "Acme Inc", "mcp off"], ["demo", "Demo gateway", "mcp on"]]


def test_create_without_options_uses_the_bundled_manifest_and_loopback_origins(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["gateways", "create", "plain", "--name", "Plain", *db]) == 0
    created = json.loads(capsys.readouterr().out)

    assert created["manifest"] == default_manifest().model_dump(mode="json")
    assert created["allowed_origins"] == list(DEFAULT_ALLOWED_ORIGINS)


def test_set_manifest_replaces_the_manifest(db: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m.json", system_hint="New hint.", enabled_tools=[])

    assert run(["gateways", "set-manifest", "demo", str(manifest), *db]) == 0
    printed = json.loads(capsys.readouterr().out)

    assert printed["manifest"]["system_hint"] == "New hint."
    assert shown(capsys, db, "demo")["manifest"]["enabled_tools"] == []


def test_set_origins_replaces_the_origins_and_may_clear_them(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["gateways", "set-origins", "demo", "https://shop.example", "http://[::1]:*", *db]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert run(["gateways", "set-origins", "demo", *db]) == 0
    capsys.readouterr()

    assert printed["allowed_origins"] == ["https://shop.example", "http://[::1]:*"]
    assert shown(capsys, db, "demo")["allowed_origins"] == []


def test_db_defaults_to_the_environment_variable(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_GATEWAY_DB", str(db_path))

    assert run(["gateways", "create", "viaenv", "--name", "Env"]) == 0
    capsys.readouterr()
    assert shown(capsys, ["--db", str(db_path)], "viaenv")["name"] == "Env"


@pytest.mark.parametrize(
    "argv",
    [
        ["gateways", "show", "nope"],
        ["gateways", "create", "demo", "--name", "Again"],
        ["gateways", "create", "Bad Id", "--name", "x"],
        ["gateways", "create", "ok", "--name", ""],
        ["gateways", "create", "ok", "--name", "x", "--origin", "not-an-origin"],
        ["gateways", "create", "ok", "--name", "x", "--manifest", "/no/such/file.json"],
        ["gateways", "set-manifest", "nope", "{manifest}"],
        ["gateways", "set-manifest", "demo", "/no/such/file.json"],
        ["gateways", "set-manifest", "demo", "{broken}"],
        ["gateways", "set-manifest", "demo", "{invalid}"],
        ["gateways", "set-origins", "nope", "https://shop.example"],
        ["gateways", "set-origins", "demo", "https://ok.example", "not-an-origin"],
        ["stdio", "--gateway", "nope"],
        ["stdio", "--gateway", "off"],
    ],
    ids=[
        "show-unknown",
        "create-existing",
        "create-bad-id",
        "create-empty-name",
        "create-bad-origin",
        "create-missing-manifest",
        "set-manifest-unknown-gateway",
        "set-manifest-missing-file",
        "set-manifest-not-json",
        "set-manifest-invalid",
        "set-origins-unknown-gateway",
        "set-origins-bad-origin",
        "stdio-unknown-gateway",
        "stdio-mcp-disabled",
    ],
)
def test_bad_input_fails_with_exit_code_1_and_changes_nothing(
    argv: list[str], db: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "{manifest}": write_manifest(tmp_path / "ok.json"),
        "{broken}": tmp_path / "broken.json",
        "{invalid}": write_manifest(tmp_path / "invalid.json", enabled_tools=["rm_rf"]),
    }
    files["{broken}"].write_text("{", encoding="utf-8")
    off = write_manifest(tmp_path / "off.json", mcp_enabled=False)
    assert run(["gateways", "create", "off", "--name", "Off", "--manifest", str(off), *db]) == 0
    before = shown(capsys, db, "demo")

    code = run([str(files.get(arg, arg)) for arg in argv] + db)

    assert code == 1
    failed(capsys)
    assert shown(capsys, db, "demo") == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_database_that_cannot_be_opened_fails_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["gateways", "list", "--db", str(tmp_path)]) == 1  # a directory, not a database file

    failed(capsys)


@pytest.mark.parametrize("backend", ["sqlite"])  # the URL is given here, whichever backend the suite runs
def test_a_postgresql_server_that_does_not_answer_fails_with_exit_code_1_and_hides_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"postgresql://gateway:s3cret-password@127.0.0.1:{port}/gateway"

    assert run(["gateways", "list", "--database-url", url]) == 1

    message = failed(capsys)
    assert f"127.0.0.1:{port}" in message and "s3cret-password" not in message


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["gateways"],
        ["gateways", "rename", "demo"],
        ["gateways", "create", "x"],
        ["stdio"],
        ["serve", "--port", "x"],
    ],
    ids=["nothing", "no-action", "unknown-action", "create-without-name", "stdio-without-gateway", "port-not-int"],
)
def test_usage_errors_exit_with_code_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(argv)

    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.split() == ["mcp-gateway", __version__]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_with_several_workers_on_sqlite_fails_saying_it_needs_postgresql(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["serve", "--workers", "2", "--db", str(db_path)]) == 1

    assert "PostgreSQL" in failed(capsys)
    assert not db_path.exists()  # refused before anything was opened
