"""The browser scripts the gateway serves (`static/`), each from memory with an ETag and an hour of caching.

    GET /tracker.js, /v1/tracker.js   seed 000's SDK (`window.anacoic`), events to `POST /track`
    GET /form.js                      seed 001's form capture: forms' submissions to `POST /lead.capture`
    GET /pulse.js                     seed 001's visit tracker plus form capture (`PulseGate`)

`If-None-Match` with the current ETag is answered 304 without a body.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from ..openapi import Operation, Param, Reply

SCRIPT_CACHE_SECONDS: Final = 3600
"""How long browsers and CDNs may reuse a script without asking again (then the ETag makes asking cheap)."""
SCRIPT_MEDIA_TYPE: Final = "application/javascript; charset=utf-8"


class BrowserScript:
    """Files of `static/` joined into one script (form capture is shared), read once, served with caching headers."""

    def __init__(self, *filenames: str) -> None:
        static = resources.files(__package__).joinpath("static")
        self._body = b"\n".join(static.joinpath(name).read_bytes() for name in filenames)
        self._etag = '"' + hashlib.sha256(self._body).hexdigest()[:32] + '"'

    async def serve(self, request: Request) -> Response:
        headers = {
            "Cache-Control": f"public, max-age={SCRIPT_CACHE_SECONDS}",
            "ETag": self._etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == self._etag:
            return Response(status_code=304, headers=headers)
        return Response(self._body, media_type=SCRIPT_MEDIA_TYPE, headers=headers)

    def operation(self, path: str, summary: str) -> Operation:
        return Operation(
            "GET",
            path,
            summary,
            "tracking",
            response=str,
            content_type="application/javascript",
            params=(Param("If-None-Match", "header", "The ETag of a cached copy"),),
            replies=(Reply(304, "The cached copy is current"),),
            errors=(),
        )
