"""API keys: `mcp-gateway keys ...`, the admin API under /v1/gateways/{id}/keys, and what a revoked key can do."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from mcp_gateway import Settings, create_app
from mcp_gateway.cli import run

from .support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    DEMO,
    BoundedASGITransport,
    admin_json,
    database_bytes,
    lifespan_running,
    stored_rows,
)

pytestmark = pytest.mark.usefixtures("database_url")  # every test on SQLite and on PostgreSQL

KEY_PREFIXES = {"org": "org_", "pk": "pk_", "sk": "sk_", "read": "rk_"}


@pytest.fixture
def db(db_path: Path) -> list[str]:
    """The `--db` option pointing at the test's database."""
    return ["--db", str(db_path)]


def created_key(capsys: pytest.CaptureFixture[str], db: list[str], kind: str = "org", *extra: str) -> str:
    """Run `keys create` and return what it printed, checking it printed the key and nothing else."""
    capsys.readouterr()
    assert run(["keys", "create", "--gateway", DEMO, "--kind", kind, *extra, *db]) == 0
    output = capsys.readouterr()
    lines = output.out.splitlines()
    assert len(lines) == 1, output.out
    assert output.out == lines[0] + "\n"
    return lines[0]


def listed_keys(capsys: pytest.CaptureFixture[str], db: list[str]) -> list[list[str]]:
    capsys.readouterr()
    assert run(["keys", "list", "--gateway", DEMO, *db]) == 0
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def key_rows(db_path: Path) -> list[tuple[Any, ...]]:
    rows = stored_rows(db_path, "SELECT id, gateway_id, kind, name, key_hash, prefix, revoked_at_ms FROM api_keys")
    return [tuple(row.values()) for row in rows]


def capture_session(key: str) -> dict[str, Any]:
    return {
        "url": "/api/v1/capture-session",
        "json": {"session_id": str(uuid.uuid4()), "client_config": "claude-desktop"},
        "headers": {"X-Org-Id": key},
    }


@pytest.fixture
async def uncached_http(db_path: Path, database_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process on the test database, remembering no key lookups."""
    app = create_app(
        Settings(db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, gateway_cache_seconds=0)
    )
    async with lifespan_running(app):
        transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


# -- the CLI -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KEY_PREFIXES))
def test_keys_create_prints_only_the_key(db: list[str], capsys: pytest.CaptureFixture[str], kind: str) -> None:
    key = created_key(capsys, db, kind)

    assert key.startswith(KEY_PREFIXES[kind])
    assert len(key) >= len(KEY_PREFIXES[kind]) + 24
    assert key.strip() == key and " " not in key


def test_every_created_key_is_new(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    keys = {created_key(capsys, db) for _ in range(3)}

    assert len(keys) == 3


def test_keys_are_stored_as_their_sha256_only(db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = created_key(capsys, db, "org", "--name", "ci")

    [(_, gateway_id, kind, name, key_hash, prefix, revoked)] = key_rows(db_path)
    assert (gateway_id, kind, name, revoked) == (DEMO, "org", "ci", None)
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(prefix) and len(prefix) < len(key) - 16
    assert key.encode() not in database_bytes(db_path)


def test_keys_list_shows_each_key_without_its_secret(
    db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = created_key(capsys, db, "org", "--name", "ingest")
    read = created_key(capsys, db, "read")

    rows = listed_keys(capsys, db)
    listing = "\n".join("\t".join(row) for row in rows)
    kinds = {row[0]: row[2] for row in key_rows(db_path)}
    assert sorted((row[1], row[3], row[4]) for row in rows) == [("org", "active", "ingest"), ("read", "active", "")]
    assert {row[0]: row[1] for row in rows} == kinds
    assert org not in listing and read not in listing
    assert {row[2] for row in rows} == {org[:10] + "…", read[:9] + "…"}


def test_keys_revoke_marks_the_key_revoked(db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created_key(capsys, db)
    [(key_id, *_)] = key_rows(db_path)

    assert run(["keys", "revoke", "--gateway", DEMO, key_id, *db]) == 0
    assert capsys.readouterr().out == f"{key_id}\trevoked\n"
    assert [row[3] for row in listed_keys(capsys, db)] == ["revoked"]
    assert key_rows(db_path)[0][-1] is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--gateway", DEMO, "--kind", "admin"],
        ["keys", "create", "--gateway", DEMO],
        ["keys", "create", "--kind", "org"],
        ["keys", "revoke", "--gateway", DEMO],
        ["keys"],
    ],
    ids=["bad-kind", "no-kind", "no-gateway", "no-key-id", "no-action"],
)
def test_keys_usage_errors_exit_with_code_2_and_create_nothing(
    argv: list[str], db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        run([*argv, *db])

    assert caught.value.code == 2
    assert capsys.readouterr().out == ""
    assert not db_path.exists() or key_rows(db_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--gateway", "nope", "--kind", "org"],
        ["keys", "list", "--gateway", "nope"],
        ["keys", "revoke", "--gateway", DEMO, "key_doesnotexist"],
    ],
    ids=["create-unknown-gateway", "list-unknown-gateway", "revoke-unknown-key"],
)
def test_keys_on_an_unknown_gateway_or_key_fail_with_exit_code_1(
    argv: list[str], db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*argv, *db]) == 1

    output = capsys.readouterr()
    used, error = output.err.split("\n", 1)
    assert output.out == ""
    assert used.startswith("database: ")
    assert error.startswith("error: ") and "Traceback" not in error
    assert key_rows(db_path) == []


def test_revoking_a_key_of_another_gateway_fails_and_leaves_it_active(
    db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["gateways", "create", "acme", "--name", "Acme", *db]) == 0
    capsys.readouterr()
    assert run(["keys", "create", "--gateway", "acme", "--kind", "org", *db]) == 0
    [(acme_key_id, *_)] = key_rows(db_path)

    assert run(["keys", "revoke", "--gateway", DEMO, acme_key_id, *db]) == 1
    assert key_rows(db_path)[0][-1] is None


# -- revocation reaches the ingestion API --------------------------------------------------------------


async def test_key_from_the_cli_works_on_the_ingestion_api_until_revoked(
    db: list[str], db_path: Path, capsys: pytest.CaptureFixture[str], uncached_http: httpx.AsyncClient
) -> None:
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(run, ["keys", "create", "--gateway", DEMO, "--kind", "org", *db]) == 0
    key = capsys.readouterr().out.strip()
    [(key_id, *_)] = key_rows(db_path)

    before = await uncached_http.post(**capture_session(key))
    assert await anyio.to_thread.run_sync(run, ["keys", "revoke", "--gateway", DEMO, key_id, *db]) == 0
    after = await uncached_http.post(**capture_session(key))

    assert before.status_code == 200, before.text
    assert after.status_code == 401
    assert after.json()["field"] == "X-Org-Id"


async def test_key_revoked_through_the_admin_api_is_refused_at_once(http: httpx.AsyncClient) -> None:
    created = await admin_json(http, "POST", f"/v1/gateways/{DEMO}/keys", {"kind": "org"})
    before = await http.post(**capture_session(created["key"]))  # the lookup is now cached
    await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")
    after = await http.post(**capture_session(created["key"]))

    assert before.status_code == 200
    assert after.status_code == 401


# -- the admin API -----------------------------------------------------------------------------------


async def test_admin_api_creates_lists_and_revokes_keys(http: httpx.AsyncClient, db_path: Path) -> None:
    response = await http.post(
        f"/v1/gateways/{DEMO}/keys", headers=ADMIN_HEADERS, json={"kind": "sk", "name": "backend"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    listed = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys")
    revoked = await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")
    revoked_again = await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")
    listed_after = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys")

    key = created.pop("key")
    assert key.startswith("sk_")
    assert created["kind"] == "sk" and created["name"] == "backend" and created["gateway_id"] == DEMO
    assert created["revoked_at_ms"] is None
    assert key.startswith(created["prefix"])
    assert "key_hash" not in created
    assert listed == {"keys": [created]}
    assert key not in str(listed)
    assert revoked["id"] == created["id"]
    assert isinstance(revoked["revoked_at_ms"], int)
    assert revoked_again["revoked_at_ms"] == revoked["revoked_at_ms"]  # revoking twice changes nothing
    assert listed_after == {"keys": [revoked]}
    assert key.encode() not in database_bytes(db_path)


async def test_admin_api_lists_only_the_keys_of_the_gateway_asked_for(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "acme", "name": "Acme"})
    demo_key = await admin_json(http, "POST", f"/v1/gateways/{DEMO}/keys", {"kind": "org"})
    acme_key = await admin_json(http, "POST", "/v1/gateways/acme/keys", {"kind": "org"})

    demo_listed = await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys")
    acme_listed = await admin_json(http, "GET", "/v1/gateways/acme/keys")
    cross_revoke = await http.delete(f"/v1/gateways/{DEMO}/keys/{acme_key['id']}", headers=ADMIN_HEADERS)

    assert [key["id"] for key in demo_listed["keys"]] == [demo_key["id"]]
    assert [key["id"] for key in acme_listed["keys"]] == [acme_key["id"]]
    assert cross_revoke.status_code == 404
    assert (await admin_json(http, "GET", "/v1/gateways/acme/keys"))["keys"][0]["revoked_at_ms"] is None


KEY_ROUTES = [
    ("GET", f"/v1/gateways/{DEMO}/keys"),
    ("POST", f"/v1/gateways/{DEMO}/keys"),
    ("DELETE", f"/v1/gateways/{DEMO}/keys/key_x"),
]


@pytest.mark.parametrize("route", KEY_ROUTES, ids=[" ".join(route) for route in KEY_ROUTES])
@pytest.mark.parametrize(("authorization", "status"), [(None, 401), ("Bearer wrong-token", 403)], ids=["none", "wrong"])
async def test_key_routes_need_the_admin_token(
    http: httpx.AsyncClient, route: tuple[str, str], authorization: str | None, status: int
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await http.request(*route, headers=headers, json={"kind": "org"})

    assert response.status_code == status
    assert "key" not in response.json()
    assert (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys"))["keys"] == []


@pytest.mark.parametrize(
    "route",
    [("GET", "/v1/gateways/nope/keys"), ("POST", "/v1/gateways/nope/keys"), ("DELETE", "/v1/gateways/nope/keys/k")],
    ids=["list", "create", "revoke"],
)
async def test_key_routes_of_an_unknown_gateway_are_404(http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    response = await http.request(*route, headers=ADMIN_HEADERS, json={"kind": "org"})

    assert response.status_code == 404
    assert isinstance(response.json()["error"], str)


async def test_revoking_an_unknown_key_is_404(http: httpx.AsyncClient) -> None:
    response = await http.delete(f"/v1/gateways/{DEMO}/keys/key_doesnotexist", headers=ADMIN_HEADERS)

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "admin"}, "kind"),
        ({"kind": "ORG"}, "kind"),
        ({}, "kind"),
        ({"kind": 1}, "kind"),
        ({"kind": "org", "name": "x" * 201}, "name"),
        ({"kind": "org", "key": "org_chosen-by-me"}, "key"),
    ],
    ids=["unknown-kind", "upper-case-kind", "no-kind", "kind-not-a-string", "long-name", "chosen-key"],
)
async def test_bad_key_spec_is_422_naming_the_field_and_creates_nothing(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await http.post(f"/v1/gateways/{DEMO}/keys", headers=ADMIN_HEADERS, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/keys"))["keys"] == []
