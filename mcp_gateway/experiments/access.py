"""Who may change a project's experiments: the one place the experiments API decides it.

Reading (`GET /experiments`, `GET /experiments/{id}`) is an analytics question: a read key of the project's
gateway (`analytics.api`). Writing (create, PATCH, DELETE) takes the admin token (`admin.AdminAuth`); a read
key is refused with 403 (it reads, never writes), and the project must exist (404).
"""

from __future__ import annotations

from starlette.requests import Request

from ..admin import AdminAuth
from ..analytics.api import presented_key
from ..gateways import GatewayDirectory
from ..keys import KeyService
from ..web import ApiError


class ExperimentAccess:
    def __init__(self, auth: AdminAuth, keys: KeyService, directory: GatewayDirectory) -> None:
        self._auth = auth
        self._keys = keys
        self._directory = directory

    async def writable_gateway(self, request: Request, project: str) -> str:
        """The gateway (project) whose experiments the request may change; 401/403/404 otherwise."""
        presented = presented_key(request)
        if presented and (key := await self._keys.resolve(presented, ("read", "pk", "sk", "org"))) is not None:
            raise ApiError(403, f"A {key.kind} key may not change experiments: send the admin token")
        self._auth.check(request)
        if await self._directory.get(project) is None:
            raise ApiError(404, f"No project {project}", field="project")
        return project
