"""The dashboard's routes: the page, read-key login and logout, and its two static files.

    GET  /dashboard                 the dashboard of the cookie's gateway (its slow cards as placeholders; all of
                                    them filled with ?full=1); without a valid key, the login form
    GET  /dashboard/sections/{name} one card of it (an HTML fragment), what sections.js fills a placeholder with;
                                    401 (JSON) without a valid key, 404 for a card the page does not have
    POST /dashboard/login           form field `key` (rk_… or ak_…): 303 to /dashboard with the cookie, or the form
                                    again (401)

A read key shows its gateway. An account key shows a project of its account, chosen by `?project=` (a picker in
the header switches), its only one without it, and a page of links to each when it has several; which project a
key may see is `accounts.access`'s decision, as on the REST routes (another account's project: 404 as one that
does not exist; a read key naming another gateway: 403). The admin token does not log in here.
    POST /dashboard/logout          clears the cookie, 303 to /dashboard
    GET  /dashboard/static/dashboard.css, live.js, sections.js   (cached; linked by content hash)

The cookie (`READ_KEY_COOKIE`) holds the read key itself, HttpOnly, SameSite=Strict, Path=/, and
Secure over https; the analytics API and `/stream` accept it too, which is what the live feed uses.
Login and logout are form POSTs: SameSite=Strict keeps the cookie off cross-site requests, and a
POST whose Origin (or, without one, Referer) names another host than the request's is refused (403),
so another site can neither log a browser out nor into its own key.
Pages are `no-store` and carry a Content-Security-Policy allowing only this origin's CSS and script.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlsplit

from pydantic import WithJsonSchema
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..accounts.access import PROJECT_PARAMETER, READ_KEY_COOKIE, READ_KINDS, Access, Caller
from ..accounts.service import is_account_key
from ..analytics import Asked, Question
from ..gateways import GatewayDirectory
from ..keys import KeyService
from ..openapi import Empty, Operation, Param, Reply
from ..ratelimit import RateLimiter, Verdict
from ..store import KeyRecord, Store
from ..web import CLIENT_ERRORS, ApiError, client_error, read_body, validated
from . import page
from .answers import Answers
from .markup import Markup

COOKIE_MAX_AGE_SECONDS: Final = 7 * 24 * 3600
"""How long the login lasts in the browser; revoking the key ends it at once."""
MAX_FORM_BYTES: Final = 4096
TAG: Final = "dashboard"
STATIC_PATH: Final = "/dashboard/static"
STATIC_FILES: Final = {
    "dashboard.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "sections.js": "text/javascript; charset=utf-8",
}
STATIC_CACHE_SECONDS: Final = 7 * 24 * 3600
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


SectionName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(page.SECTIONS)})]
"""The ids of the dashboard's cards, for the document."""


@dataclass(frozen=True, slots=True)
class _StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load_static() -> dict[str, _StaticFile]:
    folder = resources.files(__package__).joinpath("static")
    files = {}
    for name, media_type in STATIC_FILES.items():
        body = folder.joinpath(name).read_bytes()
        files[name] = _StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return files


def _same_origin(request: Request) -> bool:
    """False when the request's Origin (or Referer) names another host than the one it was sent to.

    The host it was sent to is `Host`, or `X-Forwarded-Host` behind a proxy that rewrites `Host`: a
    cross-site form cannot set either, so accepting both keeps forged posts out.
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return True  # an old browser or a non-browser client; the SameSite=Strict cookie still holds
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return urlsplit(claimed).netloc.lower() in {host.lower() for host in hosts if host}


def _html(body: Markup, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def _limited(response: Response, verdict: Verdict | None) -> Response:
    if verdict is not None:
        response.headers.update(verdict.headers())
    return response


def _timed(response: Response, started: float) -> Response:
    response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


class Dashboard:
    """The dashboard of the gateway whose read key the browser logged in with."""

    def __init__(
        self,
        keys: KeyService,
        store: Store,
        directory: GatewayDirectory,
        questions: Sequence[Question[Any]],
        *,
        limiter: RateLimiter | None = None,
        access: Access | None = None,
    ) -> None:
        self._keys = keys
        self._access = access
        self._limiter = limiter
        self._store = store
        self._directory = directory
        self._answers = Answers(questions)
        self._static = _load_static()
        self._assets = page.Assets(
            css=f"{STATIC_PATH}/dashboard.css?v={self._static['dashboard.css'].etag}",
            js=f"{STATIC_PATH}/live.js?v={self._static['live.js'].etag}",
            sections_js=f"{STATIC_PATH}/sections.js?v={self._static['sections.js'].etag}",
        )

    @property
    def css_url(self) -> str:
        """The dashboard's stylesheet, which the landing page (`frontdoor`) wears too."""
        return self._assets.css

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.dashboard, methods=["GET"]),
            Route(page.SECTIONS_PATH + "/{name}", self.section, methods=["GET"]),
            Route("/dashboard/login", self.login, methods=["POST"]),
            Route("/dashboard/logout", self.logout, methods=["POST"]),
            *(Route(f"{STATIC_PATH}/{name}", self._static_file(name), methods=["GET"]) for name in STATIC_FILES),
        ]

    def operations(self) -> list[Operation]:
        """The routes in the OpenAPI document: HTML pages and form posts, not JSON, but served all the same."""
        refused = Reply(400, "A bad query parameter: an HTML page naming it", str, "text/html")
        limited = Reply(429, "Past the per-key limit: an HTML page saying so, with its headers", str, "text/html")
        statics = [
            Operation(
                "GET",
                f"{STATIC_PATH}/{name}",
                f"The dashboard's {name}",
                TAG,
                response=str,
                content_type=media_type,
                replies=(Reply(304, "Not Modified (If-None-Match)"),),
                errors=(),
            )
            for name, media_type in STATIC_FILES.items()
        ]
        return [
            Operation(
                "GET",
                "/dashboard",
                "The dashboard (HTML) of the read key in the login cookie; without one, the login form",
                TAG,
                query=page.PageArgs,
                response=str,
                content_type="text/html",
                replies=(refused, limited),
                errors=(),
            ),
            Operation(
                "GET",
                page.SECTIONS_PATH + "/{name}",
                "One card of the dashboard (an HTML fragment: its <section>), for the read key in the login cookie",
                TAG,
                query=page.DashboardArgs,
                response=str,
                content_type="text/html",
                params=(Param("name", "path", "The card's id", SectionName, required=True),),
                errors=(400, 401, 404, 429),
                description="What the page's script fills each card that is still loading with.",
            ),
            Operation(
                "POST",
                "/dashboard/login",
                "Log in: the form field `key` (a read key, application/x-www-form-urlencoded) becomes the cookie",
                TAG,
                response=Empty,
                status=303,
                replies=(
                    Reply(401, "Not a read key: the login form again", str, "text/html"),
                    Reply(403, "A cross-site form post", str, "text/html"),
                ),
                errors=(),
            ),
            Operation(
                "POST",
                "/dashboard/logout",
                "Log out: the cookie is cleared, then 303 to /dashboard",
                TAG,
                response=Empty,
                status=303,
                replies=(Reply(403, "A cross-site form post", str, "text/html"),),
                errors=(),
            ),
            *statics,
        ]

    async def _key_of(self, key: str) -> Caller | None:
        """Who logs in with `key`: a read key, or an account key when the dashboard has `access`; None otherwise."""
        key = key.strip()
        if not key:
            return None
        if is_account_key(key):
            account = None if self._access is None else await self._access.accounts.resolve(key)
            return None if account is None else Caller("account", account.id, None, "account:" + account.id)
        record: KeyRecord | None = await self._keys.resolve(key, READ_KINDS)
        return None if record is None else Caller("read", None, record.gateway_id, record.id)

    async def _counted(self, caller: Caller) -> Verdict | None:
        """The key's request counted against the API's per-key limit (the dashboard reads the same answers);
        `RateLimitedError` past it."""
        return None if self._limiter is None else (await self._limiter.hit(caller.limit_key)).enforce()

    async def _choices(self, caller: Caller) -> list[page.ProjectChoice]:
        """The projects an account key's login may switch between (none for a read key)."""
        if caller.account_id is None or self._access is None:
            return []
        names = await self._access.accounts.project_names(caller.account_id)
        return [page.ProjectChoice(project_id, name) for project_id, name in names]

    async def _gateway_of(
        self, caller: Caller, project: str | None, choices: Sequence[page.ProjectChoice]
    ) -> str | None:
        """The gateway the login shows for `project` (`accounts.access` decides); None for an account key with
        several projects and none named (the page of projects)."""
        if caller.kind == "read" or self._access is None:
            assert caller.gateway_id is not None
            if project and project.strip() != caller.gateway_id:
                raise ApiError(
                    403,
                    f"This key may not read project {project:.200}: it reads {caller.gateway_id} only",
                    field=PROJECT_PARAMETER,
                )
            return caller.gateway_id
        if not (project and project.strip()) and len(choices) != 1:
            return None
        return await self._access.project_of(caller, project, write=False)

    async def dashboard(self, request: Request) -> Response:
        started = time.perf_counter()
        cookie = request.cookies.get(READ_KEY_COOKIE, "")
        caller = await self._key_of(cookie)
        if caller is None:
            response = _html(page.login(self._assets))
            if cookie:
                response.delete_cookie(READ_KEY_COOKIE, path="/")  # revoked or unknown: forget it
            return response
        try:
            verdict = await self._counted(caller)
            args = validated(page.PageArgs, dict(request.query_params))
            choices = await self._choices(caller)
            gateway_id = await self._gateway_of(caller, args.project, choices)
            if gateway_id is None:
                return _limited(_html(page.projects(self._assets, choices)), verdict)
            view = self._view(gateway_id, args, full=args.full)
        except CLIENT_ERRORS as caught:
            exc = client_error(caught)
            refused = _html(page.error(self._assets, exc.message, exc.extra.get("field")), exc.status)
            refused.headers.update(exc.headers)
            return refused
        gateway = await self._directory.get(gateway_id)
        name = gateway.name if gateway else gateway_id
        body = await page.dashboard(view, self._assets, gateway_name=name, choices=choices)
        return _limited(_timed(_html(body), started), verdict)

    async def section(self, request: Request) -> Response:
        """One card, filled: JSON errors, as the analytics API answers them (this is fetched by a script)."""
        started = time.perf_counter()
        try:
            caller = await self._key_of(request.cookies.get(READ_KEY_COOKIE, ""))
            if caller is None:
                raise ApiError(401, "Log in to the dashboard with a read key or an account key")
            verdict = await self._counted(caller)
            section = page.SECTIONS.get(request.path_params["name"])
            if section is None:
                raise ApiError(404, "No such dashboard section", field="name")
            args = validated(page.DashboardArgs, dict(request.query_params))
            gateway_id = await self._gateway_of(caller, args.project, await self._choices(caller))
            if gateway_id is None:
                raise ApiError(400, "`project` is required: this account has several projects", field=PROJECT_PARAMETER)
            view = self._view(gateway_id, args)
        except CLIENT_ERRORS as exc:
            return client_error(exc).response()
        return _limited(_timed(_html(await section.render(view)), started), verdict)

    def _view(self, gateway_id: str, args: page.DashboardArgs, *, full: bool = False) -> page.View:
        """What the sections of `gateway_id` are built from; `InvalidInputError` for a bad window."""
        now_ms = int(time.time() * 1000)
        window = args.window(now_ms)
        return page.View(self._answers, Asked(self._store, gateway_id, now_ms), args, window, full=full)

    async def login(self, request: Request) -> Response:
        if not _same_origin(request):
            return _html(page.error(self._assets, "Cross-site login refused", None), 403)
        try:
            form = parse_qs((await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace"))
        except ApiError as exc:
            return _html(page.error(self._assets, exc.message, None), exc.status)
        key = (form.get("key") or [""])[0].strip()
        if await self._key_of(key) is None:
            return _html(page.login(self._assets, error="That is not a valid read key or account key."), 401)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(
            READ_KEY_COOKIE,
            key,
            max_age=COOKIE_MAX_AGE_SECONDS,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        if not _same_origin(request):
            return _html(page.error(self._assets, "Cross-site logout refused", None), 403)
        response = RedirectResponse("/dashboard", status_code=303)
        response.delete_cookie(
            READ_KEY_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
        )
        return response

    def _static_file(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        file = self._static[name]
        etag = f'"{file.etag}"'
        headers = {
            "Cache-Control": f"public, max-age={STATIC_CACHE_SECONDS}, immutable",
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }

        async def serve(request: Request) -> Response:
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            return Response(file.body, media_type=file.media_type, headers=headers)

        return serve
