"""The admin REST API under /v1/gateways: auth, gateways, manifests, origins and leads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.gateways import DEFAULT_ALLOWED_ORIGINS, default_manifest

from .support import (
    ADMIN_HEADERS,
    DEMO,
    BoundedASGITransport,
    admin_json,
    jsonrpc_request,
    lifespan_running,
)


def _admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /v1/gateways, with `demo` and `x` for path parameters."""
    app = create_app(Settings(db_path=Path("unused.db"), admin_token="x" * 16))  # routes only: never started
    found: list[tuple[str, str]] = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/v1/gateways"):
            concrete = path.replace("{gid}", DEMO)
            while "{" in concrete:
                start = concrete.index("{")
                concrete = concrete[:start] + "x" + concrete[concrete.index("}", start) + 1 :]
            found += [(method, concrete) for method in sorted(getattr(route, "methods", ())) if method != "HEAD"]
    return found


ADMIN_ROUTES = _admin_routes()
"""Every admin route: each must refuse requests without the admin token."""


def route_id(route: tuple[str, str]) -> str:
    return " ".join(route)


def error_body(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def field_errors(response: httpx.Response) -> list[str]:
    """The fields a 422 names, in order."""
    assert response.status_code == 422, response.text
    return [error["field"] for error in error_body(response)["errors"]]


def manifest_json(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = default_manifest().model_dump(mode="json")
    return manifest | changes


async def book(http: httpx.AsyncClient, gateway_id: str, email: str) -> str:
    """Book a demo through the gateway's plain JSON-RPC endpoint; the new lead's id."""
    arguments = {"name": "Ada Lovelace", "email": email}
    response = await http.post(
        f"/v1/mcp/sse?gid={gateway_id}",
        json=jsonrpc_request("tools/call", {"name": "book_demo", "arguments": arguments}),
    )
    result = response.json()["result"]
    assert result["structuredContent"]["status"] == "booked", result
    lead_id: str = result["structuredContent"]["lead_id"]
    return lead_id


# -- auth --------------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_id)
@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer    "])
async def test_request_without_bearer_token_gets_401_with_www_authenticate(
    module_http: httpx.AsyncClient, route: tuple[str, str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await module_http.request(*route, headers=headers, json={})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(error_body(response)) == {"error"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_id)
async def test_request_with_wrong_token_gets_403(module_http: httpx.AsyncClient, route: tuple[str, str]) -> None:
    response = await module_http.request(*route, headers={"Authorization": "Bearer not-the-admin-token"}, json={})

    assert response.status_code == 403
    assert set(error_body(response)) == {"error"}


async def test_generated_admin_token_is_printed_once_and_survives_restart(
    db_path: Path, database_url: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    async def start_and_call(token: str | None) -> tuple[str, int]:
        app = create_app(Settings(db_path=db_path, database_url=database_url))
        async with lifespan_running(app), _client(app) as http:
            printed = capsys.readouterr().err
            headers = {"Authorization": f"Bearer {token or printed.split()[-1]}"}
            return printed, (await http.get("/v1/gateways", headers=headers)).status_code

    first_output, first_status = await start_and_call(None)
    token = first_output.split()[-1]
    second_output, second_status = await start_and_call(token)
    _, wrong_status = await start_and_call(token[::-1])

    assert "Admin token" in first_output
    assert len(token) >= 32
    assert first_status == 200
    assert second_output == ""
    assert second_status == 200
    assert wrong_status == 403


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=BoundedASGITransport(app=app), base_url="http://127.0.0.1")


# -- gateways ----------------------------------------------------------------------------------------


async def test_demo_gateway_exists_at_startup_with_the_bundled_manifest(http: httpx.AsyncClient) -> None:
    listed = await admin_json(http, "GET", "/v1/gateways")

    assert [gateway["id"] for gateway in listed["gateways"]] == [DEMO]
    demo = listed["gateways"][0]
    assert demo["manifest"] == default_manifest().model_dump(mode="json")
    assert demo["allowed_origins"] == list(DEFAULT_ALLOWED_ORIGINS)


async def test_created_gateway_is_listed_and_shown_and_serves_mcp(http: httpx.AsyncClient) -> None:
    manifest = manifest_json(system_hint="Acme only.", enabled_tools=[])
    response = await http.post(
        "/v1/gateways",
        headers=ADMIN_HEADERS,
        json={"id": "acme", "name": "Acme", "allowed_origins": ["https://acme.example"], "manifest": manifest},
    )
    listed = await admin_json(http, "GET", "/v1/gateways")
    shown = await admin_json(http, "GET", "/v1/gateways/acme")
    hint = await http.post("/v1/mcp/sse?gid=acme", json=jsonrpc_request("resources/read", {"uri": "system://hint"}))

    assert response.status_code == 201
    created = response.json()
    assert created["id"] == "acme"
    assert created["name"] == "Acme"
    assert created["allowed_origins"] == ["https://acme.example"]
    assert created["manifest"] == manifest
    assert created["created_at_ms"] == created["updated_at_ms"] > 0
    assert [gateway["id"] for gateway in listed["gateways"]] == ["acme", DEMO]
    assert shown == created
    assert hint.json()["result"]["contents"][0]["text"] == "Acme only."


async def test_created_gateway_defaults_to_the_bundled_manifest_and_loopback_origins(http: httpx.AsyncClient) -> None:
    created = await admin_json(http, "POST", "/v1/gateways", {"id": "plain", "name": "Plain"})

    assert created["manifest"] == default_manifest().model_dump(mode="json")
    assert created["allowed_origins"] == list(DEFAULT_ALLOWED_ORIGINS)


async def test_creating_an_existing_gateway_gets_409(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/gateways", headers=ADMIN_HEADERS, json={"id": DEMO, "name": "Again"})

    assert response.status_code == 409
    error_body(response)
    assert (await admin_json(http, "GET", "/v1/gateways/demo"))["name"] == "Demo gateway"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"id": "Bad Id", "name": "x"}, ["id"]),
        ({"id": "ok"}, ["name"]),
        ({"id": "ok", "name": ""}, ["name"]),
        ({"id": "ok", "name": "x", "allowed_origins": ["not an origin"]}, ["allowed_origins.0"]),
        ({"id": "ok", "name": "x", "owner": "me"}, ["owner"]),
        ({"id": "ok", "name": "x", "manifest": {"pricing": []}}, ["manifest.docs_url", "manifest.system_hint"]),
        ([], ["body"]),
    ],
    ids=["bad-id", "no-name", "empty-name", "bad-origin", "unknown-field", "incomplete-manifest", "not-an-object"],
)
async def test_invalid_gateway_gets_422_naming_each_field(
    http: httpx.AsyncClient, body: Any, fields: list[str]
) -> None:
    response = await http.post("/v1/gateways", headers=ADMIN_HEADERS, json=body)

    assert field_errors(response) == fields
    assert [g["id"] for g in (await admin_json(http, "GET", "/v1/gateways"))["gateways"]] == [DEMO]


@pytest.mark.parametrize("body", [b"{", b"", b"\xff", b"[" * 100_000], ids=["truncated", "empty", "not-utf8", "deep"])
async def test_body_that_is_not_json_gets_422_naming_the_body(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/v1/gateways", headers=ADMIN_HEADERS, content=body)

    assert response.status_code == 422
    assert error_body(response)["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/gateways/nope"),
        ("PUT", "/v1/gateways/nope/origins"),
        ("GET", "/v1/gateways/nope/manifest"),
        ("PUT", "/v1/gateways/nope/manifest"),
        ("GET", "/v1/gateways/nope/leads"),
    ],
    ids=lambda value: str(value),
)
async def test_unknown_gateway_gets_404(http: httpx.AsyncClient, method: str, path: str) -> None:
    body = {"allowed_origins": []} if path.endswith("origins") else manifest_json()
    response = await http.request(method, path, headers=ADMIN_HEADERS, json=body)

    assert response.status_code == 404
    assert set(error_body(response)) == {"error"}


# -- manifest ----------------------------------------------------------------------------------------


async def test_manifest_put_replaces_it_and_get_returns_it(http: httpx.AsyncClient) -> None:
    before = await admin_json(http, "GET", "/v1/gateways/demo")
    new = manifest_json(
        pricing=[{"name": "Solo", "price": 9, "currency": "EUR", "interval": "year", "seats": 1}],
        system_hint="Quote the Solo plan only.",
        enabled_tools=[],
        mcp_enabled=False,
    )
    put = await admin_json(http, "PUT", "/v1/gateways/demo/manifest", new)
    got = await admin_json(http, "GET", "/v1/gateways/demo/manifest")
    after = await admin_json(http, "GET", "/v1/gateways/demo")

    assert got == put
    assert got["system_hint"] == "Quote the Solo plan only."
    assert got["pricing"] == [
        {
            "name": "Solo",
            "price": 9.0,
            "currency": "EUR",
            "interval": "year",
            "description": "",
            "features": [],
            "seats": 1,
        }
    ]
    assert got["enabled_tools"] == [] and got["mcp_enabled"] is False
    assert after["updated_at_ms"] >= before["updated_at_ms"]
    assert after["created_at_ms"] == before["created_at_ms"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"enabled_tools": ["rm_rf"]}, ["enabled_tools"]),
        ({"docs_url": "not a url"}, ["docs_url"]),
        ({"system_hint": ""}, ["system_hint"]),
        ({"pricing": [{"name": "Free", "price": -1}]}, ["pricing.0.price"]),
        ({"pricing": [{"name": "Free", "currency": "usd"}]}, ["pricing.0.currency"]),
        ({"colour": "blue"}, ["colour"]),
    ],
    ids=["unknown-tool", "bad-docs-url", "empty-hint", "negative-price", "bad-currency", "unknown-field"],
)
async def test_invalid_manifest_gets_422_and_changes_nothing(
    http: httpx.AsyncClient, changes: dict[str, Any], fields: list[str]
) -> None:
    response = await http.put("/v1/gateways/demo/manifest", headers=ADMIN_HEADERS, json=manifest_json(**changes))

    assert field_errors(response) == fields
    assert await admin_json(http, "GET", "/v1/gateways/demo/manifest") == manifest_json()


# -- origins -----------------------------------------------------------------------------------------


async def test_origins_put_replaces_the_allowed_origins(http: httpx.AsyncClient) -> None:
    origins = ["https://shop.example", "http://localhost:*", "http://[::1]:8080"]
    put = await admin_json(http, "PUT", "/v1/gateways/demo/origins", {"allowed_origins": origins})
    shown = await admin_json(http, "GET", "/v1/gateways/demo")

    assert put["allowed_origins"] == origins
    assert shown == put


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"allowed_origins": ["https://ok.example", "ftp://files.example"]}, ["allowed_origins.1"]),
        ({"allowed_origins": ["https://shop.example/path"]}, ["allowed_origins.0"]),
        ({"allowed_origins": "https://shop.example"}, ["allowed_origins"]),
        ({}, ["allowed_origins"]),
        ({"allowed_origins": [], "extra": 1}, ["extra"]),
    ],
    ids=["bad-scheme", "with-path", "not-a-list", "missing", "unknown-field"],
)
async def test_invalid_origins_get_422_and_change_nothing(
    http: httpx.AsyncClient, body: dict[str, Any], fields: list[str]
) -> None:
    response = await http.put("/v1/gateways/demo/origins", headers=ADMIN_HEADERS, json=body)

    assert field_errors(response) == fields
    assert (await admin_json(http, "GET", "/v1/gateways/demo"))["allowed_origins"] == list(DEFAULT_ALLOWED_ORIGINS)


# -- leads -------------------------------------------------------------------------------------------


async def test_leads_are_listed_newest_first_per_gateway(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})
    first = await book(http, DEMO, "first@example.com")
    second = await book(http, DEMO, "second@example.com")
    elsewhere = await book(http, "other", "first@example.com")

    demo_leads = (await admin_json(http, "GET", "/v1/gateways/demo/leads"))["leads"]
    limited = (await admin_json(http, "GET", "/v1/gateways/demo/leads?limit=1"))["leads"]
    other_leads = (await admin_json(http, "GET", "/v1/gateways/other/leads"))["leads"]

    assert [lead["id"] for lead in demo_leads] == [second, first]
    assert [lead["id"] for lead in limited] == [second]
    assert [lead["id"] for lead in other_leads] == [elsewhere]
    assert set(demo_leads[0]) == {
        *("id", "gateway_id", "name", "email", "company", "message", "source", "created_at_ms", "crm_lead_id")
    }
    assert demo_leads[0]["created_at_ms"] >= demo_leads[1]["created_at_ms"]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "%C2%B2", "9" * 5000])
async def test_leads_limit_outside_1_to_1000_gets_400_naming_limit(http: httpx.AsyncClient, limit: str) -> None:
    response = await http.get(f"/v1/gateways/demo/leads?limit={limit}", headers=ADMIN_HEADERS)

    assert response.status_code == 400
    assert error_body(response)["field"] == "limit"
