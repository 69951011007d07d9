"""Which database a command uses: `--db`, then `MCP_GATEWAY_DB`, then one default in the user's data directory
(`$XDG_DATA_HOME/mcp-gateway/mcp-gateway.db`) whatever the working directory; each command names it on stderr,
and an older version's `./mcp-gateway.db` is never passed over silently."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from mcp_gateway import create_app
from mcp_gateway.cli import run
from mcp_gateway.config_sources import load_settings

from .support import ADMIN_TOKEN, DEMO, serve_in_thread

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the SQLite file's location is the subject


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user data directory, with no database variable set: the default location is in it."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in ("MCP_GATEWAY_DB", "MCP_GATEWAY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data" / "mcp-gateway" / "mcp-gateway.db"


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


async def test_a_key_created_in_another_directory_is_accepted_by_the_server(
    backend: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(folder(tmp_path, "checkout"))
    settings = load_settings({"admin_token": ADMIN_TOKEN}).settings  # what `mcp-gateway serve` reads, started here
    with serve_in_thread(create_app(settings), settings.db_path) as server:
        monkeypatch.chdir(folder(tmp_path, "elsewhere"))
        assert await anyio.to_thread.run_sync(run, ["keys", "create", "--gateway", DEMO, "--kind", "read"]) == 0
        key = capsys.readouterr().out.strip()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            answer = await http.get("/stats", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200, answer.text
    assert settings.db_path == data_dir and data_dir.is_file()
    assert not (tmp_path / "checkout" / "mcp-gateway.db").exists()
    assert not (tmp_path / "elsewhere" / "mcp-gateway.db").exists()


@pytest.mark.parametrize("how", ["default", "flag", "environment"])
def test_every_command_names_the_database_it_used_on_stderr(
    backend: str,
    how: str,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(folder(tmp_path, "cwd"))
    expected = {"default": data_dir, "flag": tmp_path / "flag.db", "environment": tmp_path / "env.db"}[how]
    argv = ["gateways", "list"]
    if how == "flag":
        argv += ["--db", str(expected)]
    if how == "environment":
        monkeypatch.setenv("MCP_GATEWAY_DB", str(expected))

    assert run(argv) == 0

    assert stderr_lines(capsys) == [f"database: {expected}"]
    assert expected.is_file()


def test_an_older_versions_database_in_the_working_directory_is_refused_with_how_to_move_it(
    backend: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = folder(tmp_path, "checkout")
    monkeypatch.chdir(checkout)
    assert run(["gateways", "create", "mine", "--name", "Mine", "--db", "mcp-gateway.db"]) == 0  # as 0.1 made it
    capsys.readouterr()

    code = run(["gateways", "list"])
    refused = capsys.readouterr()
    assert run(["gateways", "show", "mine", "--db", "mcp-gateway.db"]) == 0  # still there, and usable by name

    assert code == 1 and refused.out == ""
    assert refused.err.startswith("error: ")
    assert f"mv {checkout / 'mcp-gateway.db'}* {data_dir.parent}/" in refused.err
    assert f"--db {checkout / 'mcp-gateway.db'}" in refused.err
    assert not data_dir.exists()  # nothing was created beside it


def test_an_older_versions_database_is_noted_once_the_default_one_exists(
    backend: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(folder(tmp_path, "checkout"))
    assert run(["gateways", "list", "--db", "mcp-gateway.db"]) == 0
    assert run(["gateways", "list", "--db", str(data_dir)]) == 0
    capsys.readouterr()

    assert run(["gateways", "list"]) == 0

    [note, used] = stderr_lines(capsys)
    assert note.startswith("note: ") and str(Path.cwd() / "mcp-gateway.db") in note
    assert used == f"database: {data_dir}"


def test_the_default_location_follows_the_home_directory_without_xdg_data_home(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    monkeypatch.delenv("MCP_GATEWAY_DB", raising=False)
    assert load_settings().settings.db_path == tmp_path / ".local/share/mcp-gateway/mcp-gateway.db"
