"""The analytics REST routes, behind a key of kind `read` that sees only its own gateway.

    GET /analytics/tools?period=7d|30d|90d (or since=&until=)&primitive=tool|resource|prompt

`Authorization: Bearer rk_…` or `X-API-Key: rk_…`; none or an unknown key -> 401 with
`WWW-Authenticate: Bearer`. Bad parameters -> 400 naming the parameter.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..keys import KeyService
from ..store import KeyKind, Store
from ..store.histogram import RELATIVE_ERROR
from ..web import ApiError
from .primitives import primitive_stats
from .window import parse_window

READ_KINDS: Final[tuple[KeyKind, ...]] = ("read",)
PRIMITIVES: Final = ("tool", "resource", "prompt")


class AnalyticsApi:
    def __init__(self, keys: KeyService, store: Store) -> None:
        self._keys = keys
        self._store = store

    def routes(self) -> list[BaseRoute]:
        return [Route("/analytics/tools", self.tools, methods=["GET"])]

    async def _gateway_id(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key", "").strip()
        key = await self._keys.resolve(presented, READ_KINDS) if presented else None
        if key is None:
            raise ApiError(
                401,
                "A read key is required: Authorization: Bearer rk_… or X-API-Key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return key.gateway_id

    async def tools(self, request: Request) -> JSONResponse:
        gateway_id = await self._gateway_id(request)
        window = parse_window(request.query_params)
        primitive = request.query_params.get("primitive")
        if primitive is not None and primitive not in PRIMITIVES:
            raise ApiError(400, f"primitive must be one of {', '.join(PRIMITIVES)}", field="primitive")
        stats = await primitive_stats(self._store, gateway_id, window, primitive_type=primitive)
        return JSONResponse(
            {
                "gateway_id": gateway_id,
                "window": window.as_json(),
                "latency_relative_error": round(RELATIVE_ERROR, 4),
                "primitives": [s.as_json() for s in stats],
            }
        )
