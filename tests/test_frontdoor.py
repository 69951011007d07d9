"""The front door: `GET /` (a page for browsers, JSON for programs) and `/docs` (Swagger UI, from files the gateway
serves itself), while `POST /` stays seed 001's deprecated lead alias."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.app import create_app
from mcp_gateway.config import Settings
from mcp_gateway.frontdoor.landing import StdioCommand

from .support import ADMIN_TOKEN, DEMO, BoundedASGITransport, admin_json, lifespan_running

BROWSER_ACCEPT: Final = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
REMOTE_CLIENT: Final = ("203.0.113.7", 40000)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Starlette]:
    """The gateway on SQLite: the front door reads the gateways, which every store lists alike."""
    app = create_app(Settings(db_path=tmp_path / "gateway.db", admin_token=ADMIN_TOKEN, retention_days=0))
    async with lifespan_running(app):
        yield app


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
async def remote_http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client on another machine, reaching the gateway by its public name."""
    transport = BoundedASGITransport(app=app, client=REMOTE_CLIENT)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway.example.com") as client:
        yield client


class _References(HTMLParser):
    """Every URL a page makes the browser load or offers as a link: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.urls += [value for name, value in attrs if name in ("src", "href") and value is not None]


def references(page: str) -> _References:
    parser = _References()
    parser.feed(page)
    return parser


def external(urls: list[str]) -> list[str]:
    """The URLs that leave this origin: anything but a path on it or inline data."""
    return [
        url for url in urls if not (url.startswith("/") and not url.startswith("//")) and not url.startswith("data:")
    ]


# -- GET / ------------------------------------------------------------------------------------------------


async def test_a_browser_gets_the_landing_page_with_its_links_and_each_mcp_endpoint(http: httpx.AsyncClient) -> None:
    response = await http.get("/", headers={"Accept": BROWSER_ACCEPT})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]  # no script at all: default-src 'none'
    page = references(response.text)
    assert {"/dashboard", "/docs", "/openapi.json", "/health"} <= set(page.urls)
    assert page.scripts == 0
    assert external(page.urls) == []
    assert "http://127.0.0.1:8000/mcp?gid=demo" in response.text
    assert "--kind read" in response.text  # how to get the dashboard's read key
    assert "@modelcontextprotocol/inspector --cli &#x27;http://127.0.0.1:8000/mcp?gid=demo&#x27;" in response.text


async def test_a_program_asking_for_json_gets_the_same_facts_as_json(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "shop", "name": "Shop"})
    await admin_json(http, "POST", "/v1/gateways", {"id": "quiet", "name": "Quiet"})
    manifest = await admin_json(http, "GET", "/v1/gateways/quiet/manifest")
    await admin_json(http, "PUT", "/v1/gateways/quiet/manifest", manifest | {"mcp_enabled": False})

    response = await http.get("/", headers={"Accept": "application/json"})

    assert response.status_code == 200
    assert response.headers["vary"] == "Accept"
    body = response.json()
    assert body["links"]["docs"] == "/docs" and body["links"]["dashboard"] == "/dashboard"
    assert {gateway["id"]: gateway["endpoints"]["streamable_http"] for gateway in body["gateways"]} == {
        DEMO: "http://127.0.0.1:8000/mcp?gid=demo",
        "shop": "http://127.0.0.1:8000/mcp?gid=shop",
    }
    assert body["more_gateways"] == 0


@pytest.mark.parametrize("accept", ["", "*/*", "text/html", "application/json, text/html", "text/plain"])
async def test_anything_but_a_plain_request_for_json_gets_html(http: httpx.AsyncClient, accept: str) -> None:
    response = await http.get("/", headers={"Accept": accept})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_a_gateway_name_is_shown_as_text_never_as_markup(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": "evil", "name": "<script>alert(1)</script>"})

    response = await http.get("/")

    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


async def test_claude_desktop_config_names_the_local_files_only_for_a_local_client(
    http: httpx.AsyncClient, remote_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    local = (await http.get("/")).text
    remote = (await remote_http.get("/")).text

    database = str((tmp_path / "gateway.db").resolve())
    assert f"&quot;{database}&quot;" in local
    assert database not in remote and str(tmp_path) not in remote
    assert "/path/to/mcp-gateway.db" in remote
    assert "https://gateway.example.com/mcp?gid=demo" in remote


def test_the_claude_desktop_config_never_shows_a_postgresql_url() -> None:
    settings = Settings(database_url="postgresql://gateway:s3cret@db.internal/gateway")

    command = StdioCommand.for_client(settings, local=True)

    assert command.database[0] == "--database-url"
    assert not any("s3cret" in arg or "db.internal" in arg for arg in command.database)


async def test_post_to_the_root_is_still_the_deprecated_lead_alias(http: httpx.AsyncClient) -> None:
    lead = {"email": "ada@example.com", "name": "Ada", "visitor_id": "v1"}

    response = await http.post("/", json=lead, headers={"X-Gateway-ID": DEMO})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "created"
    assert response.headers["deprecation"].startswith("@")
    assert (await admin_json(http, "GET", f"/v1/gateways/{DEMO}/leads"))["leads"][0]["email"] == "ada@example.com"


# -- /docs ------------------------------------------------------------------------------------------------


async def test_docs_load_swagger_ui_from_this_gateway_and_point_it_at_the_document(http: httpx.AsyncClient) -> None:
    response = await http.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = references(response.text)
    assert external(page.urls) == []
    assert page.scripts == 2
    assert "script-src 'self';" in response.headers["content-security-policy"]
    for url in page.urls:
        if url.startswith("/docs/static/"):
            assert (await http.get(url)).status_code == 200, url
    start = next(url for url in page.urls if url.startswith("/docs/static/docs.js"))
    script = (await http.get(start)).text
    assert 'url: "/openapi.json"' in script and "validatorUrl: null" in script


async def test_the_docs_stylesheet_loads_nothing_from_another_host(http: httpx.AsyncClient) -> None:
    css = (await http.get("/docs/static/swagger-ui.css")).text

    loaded = re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
    assert [url for url in loaded if re.match(r"(https?:)?//", url)] == []
    assert "@import" not in css


async def test_docs_files_are_cached_by_etag_and_gzipped_when_accepted(http: httpx.AsyncClient) -> None:
    plain = await http.get("/docs/static/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["content-type"].startswith("text/javascript")
    etag = plain.headers["etag"]

    again = await http.get("/docs/static/swagger-ui-bundle.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""

    async with http.stream("GET", "/docs/static/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}) as raw:
        compressed = b"".join([chunk async for chunk in raw.aiter_raw()])
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert len(compressed) < len(plain.content) / 2
    assert gzip.decompress(compressed) == plain.content


async def test_an_unknown_docs_file_is_a_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/docs/static/index.html")

    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


async def test_the_docs_are_in_the_document_they_render(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]

    assert {"/", "/docs", "/docs/static/swagger-ui-bundle.js"} <= set(paths)
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]


async def test_head_of_the_landing_page_answers_without_a_body(http: httpx.AsyncClient) -> None:
    response = await http.head("/")

    assert response.status_code == 200 and response.content == b""


async def test_the_dashboard_login_says_how_to_get_a_read_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/dashboard")

    assert response.status_code == 200
    assert "mcp-gateway keys create --gateway ID --kind read" in response.text
    assert '<code>{"kind": "read"}</code>' in response.text
