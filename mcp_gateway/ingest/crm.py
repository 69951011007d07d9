"""Seed 001's CRM callback: once the business's CRM created a captured lead (through Make.com, Zapier or a
script of its own), it reports the lead's id in the CRM, which the gateway keeps on the lead.

    POST /lead.capture/crm-callback  CrmCallback -> 200 {"lead_id", "crm_lead_id", "status", "timestamp"}

The caller is a server, not a browser, and it changes a lead: it needs one of the gateway's secret keys
(`sk_…`) as `Authorization: Bearer` or `X-API-Key`; none or an unknown one is 401 with `WWW-Authenticate:
Bearer`. The key names the gateway; a `?gid=` or `X-Gateway-ID` naming another one is 403. A lead the
gateway does not have is 404 `{"error": "No such lead"}`. `status` is `updated` when the id was recorded
(or replaced another), `unchanged` when the lead had it already. The leads endpoints show it as
`crm_lead_id` (`/analytics/leads`, `/analytics/leads/{id}`, the admin API's leads).
"""

from __future__ import annotations

import time
from typing import Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from ..keys import KeyService
from ..openapi import Operation
from ..store import KeyKind, Store
from ..web import GATEWAY_HEADER, GATEWAY_QUERY, ApiError, cors_route, read_model

CRM_CALLBACK_PATH: Final = "/lead.capture/crm-callback"
MAX_CRM_LEAD_ID: Final = 200
"""Longest CRM lead id kept (HubSpot, Salesforce and Pipedrive ids are far shorter)."""
MAX_LEAD_ID: Final = 128
CRM_KEY_KINDS: Final[tuple[KeyKind, ...]] = ("sk",)
"""The keys a CRM callback may carry: secret ones, which stay on servers."""


class CrmCallback(BaseModel):
    """The lead (`lead_id`, as `/lead.capture` answered it) and its id in the CRM; camelCase accepted too."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    lead_id: str = Field(min_length=1, max_length=MAX_LEAD_ID, validation_alias=AliasChoices("lead_id", "leadId"))
    crm_lead_id: str = Field(
        min_length=1, max_length=MAX_CRM_LEAD_ID, validation_alias=AliasChoices("crm_lead_id", "crmLeadId", "crm_id")
    )


class CrmLinked(TypedDict):
    lead_id: str
    crm_lead_id: str
    status: Literal["updated", "unchanged"]
    timestamp: int
    """When the gateway answered, ms since the epoch."""


def _presented_key(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


class CrmCallbackRoutes:
    def __init__(self, keys: KeyService, store: Store, *, max_body_bytes: int) -> None:
        self._keys = keys
        self._store = store
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[BaseRoute]:
        return [cors_route(CRM_CALLBACK_PATH, self.crm_callback, ["POST"])]

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "POST",
                CRM_CALLBACK_PATH,
                "Record the CRM's id of a captured lead",
                "tracking",
                security="track",
                body=CrmCallback,
                response=CrmLinked,
                errors=(400, 403, 404, 413, 415),
                description="A secret key (`sk_…`) as Authorization: Bearer (or X-API-Key) names the gateway.",
            )
        ]

    async def crm_callback(self, request: Request) -> JSONResponse:
        presented = _presented_key(request)
        key = await self._keys.resolve(presented, CRM_KEY_KINDS) if presented else None
        if key is None:
            raise ApiError(
                401,
                "A secret key is required: Authorization: Bearer sk_… or X-API-Key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        named = (request.query_params.get(GATEWAY_QUERY) or request.headers.get(GATEWAY_HEADER) or "").strip()
        if named and named != key.gateway_id:
            raise ApiError(403, "The key is not one of this gateway's")
        body = await read_model(request, CrmCallback, limit=self._max_body_bytes)
        crm_lead_id = body.crm_lead_id.strip()
        if not crm_lead_id:
            raise ApiError(400, "Invalid crm_lead_id: must not be blank", field="crm_lead_id")
        before = await self._store.get_lead(body.lead_id)
        if before is None or before.gateway_id != key.gateway_id:
            raise ApiError(404, "No such lead", field="lead_id")
        after = await self._store.set_lead_crm_id(key.gateway_id, body.lead_id, crm_lead_id)
        if after is None:  # deleted in between
            raise ApiError(404, "No such lead", field="lead_id")
        status: Literal["updated", "unchanged"] = "unchanged" if before.crm_lead_id == crm_lead_id else "updated"
        answer = CrmLinked(lead_id=after.id, crm_lead_id=crm_lead_id, status=status, timestamp=int(time.time() * 1000))
        return JSONResponse(answer)
