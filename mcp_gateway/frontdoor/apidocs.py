"""`GET /docs`: interactive API docs (Swagger UI) of `/openapi.json`, every file served from this process.

Swagger UI's script and stylesheet come from the `swagger-ui-bundle-v2` package, the page's own start-up
script from this package: no CDN, so the docs work on a machine without internet, and the page's
Content-Security-Policy allows only this origin. The files are read (and gzipped) once per process, at the
first request that needs them, and served under a content hash with a year-long `immutable` cache.

    GET /docs                                  the page
    GET /docs/static/swagger-ui-bundle.js      Swagger UI (gzip when accepted)
    GET /docs/static/swagger-ui.css
    GET /docs/static/docs.js                   points Swagger UI at /openapi.json
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from swagger_ui_bundle import swagger_ui_path

from ..dashboard.markup import Markup, render
from ..dashboard.page import FAVICON
from ..openapi import Operation, Reply

TAG: Final = "operations"
DOCS_PATH: Final = "/docs"
STATIC_PATH: Final = "/docs/static"
SWAGGER_FILES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
"""The files of Swagger UI's distribution the page needs, from `swagger_ui_bundle.swagger_ui_path`."""
OWN_FILES: Final = {"docs.js": "text/javascript; charset=utf-8"}
"""This package's files (`frontdoor/static/`)."""
STATIC_CACHE_SECONDS: Final = 365 * 24 * 3600
GZIP_MIN_BYTES: Final = 1024
PAGE_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        # Swagger UI (React) sets style attributes, hence 'unsafe-inline' for styles; scripts only from here.
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    """`body` gzipped, when that is worth it (`GZIP_MIN_BYTES`)."""
    media_type: str
    etag: str


def _static(body: bytes, media_type: str) -> StaticFile:
    gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    return StaticFile(body, gzipped, media_type, hashlib.sha256(body).hexdigest()[:16])


@functools.cache
def static_files() -> dict[str, StaticFile]:
    """Every file `/docs` serves, read once per process (Swagger UI's bundle is 1.5 MB)."""
    swagger = Path(str(swagger_ui_path))
    own = resources.files(__package__).joinpath("static")
    files = {name: _static((swagger / name).read_bytes(), kind) for name, kind in SWAGGER_FILES.items()}
    files |= {name: _static(own.joinpath(name).read_bytes(), kind) for name, kind in OWN_FILES.items()}
    return files


def _url(name: str) -> str:
    return f"{STATIC_PATH}/{name}?v={static_files()[name].etag}"


def page() -> Markup:
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>API docs · mcp-gateway</title><link rel="icon" href="{icon}">'
        '<link rel="stylesheet" href="{css}"></head><body>'
        '<noscript><p>These docs need JavaScript; the document itself is <a href="/openapi.json">/openapi.json</a>.'
        "</p></noscript>"
        '<div id="swagger-ui"></div>'
        '<script src="{bundle}"></script><script src="{start}"></script></body></html>',
        icon=FAVICON,
        css=_url("swagger-ui.css"),
        bundle=_url("swagger-ui-bundle.js"),
        start=_url("docs.js"),
    )


class ApiDocs:
    """`/docs` and the files it loads."""

    def routes(self) -> list[BaseRoute]:
        names = [*SWAGGER_FILES, *OWN_FILES]
        return [
            Route(DOCS_PATH, self.docs, methods=["GET"]),
            *(Route(f"{STATIC_PATH}/{name}", _serve(name), methods=["GET"]) for name in names),
        ]

    def operations(self) -> list[Operation]:
        statics = [
            Operation(
                "GET",
                f"{STATIC_PATH}/{name}",
                f"A file of the API docs: {name}",
                TAG,
                response=str,
                content_type=media_type,
                replies=(Reply(304, "Not Modified (If-None-Match)"),),
                errors=(),
            )
            for name, media_type in {**SWAGGER_FILES, **OWN_FILES}.items()
        ]
        return [
            Operation(
                "GET",
                DOCS_PATH,
                "Interactive API docs (HTML, Swagger UI) of this document",
                TAG,
                response=str,
                content_type="text/html",
                errors=(),
            ),
            *statics,
        ]

    async def docs(self, _: Request) -> Response:
        await anyio.to_thread.run_sync(static_files)  # the first time, off the event loop
        return HTMLResponse(page(), headers=PAGE_HEADERS)


def _serve(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        file = (await anyio.to_thread.run_sync(static_files))[name]
        etag = f'"{file.etag}"'
        headers = {
            "Cache-Control": f"public, max-age={STATIC_CACHE_SECONDS}, immutable",
            "ETag": etag,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if file.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
            return Response(file.gzipped, media_type=file.media_type, headers={**headers, "Content-Encoding": "gzip"})
        return Response(file.body, media_type=file.media_type, headers=headers)

    return serve
