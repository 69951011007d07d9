"""GET /openapi.json: a valid OpenAPI 3.1 document of exactly the routes the app serves, whose parameters,
bodies and answers are the ones the routes validate and send."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_document
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mcp_gateway import Settings, create_app
from mcp_gateway.analytics import QUESTIONS
from mcp_gateway.analytics.window import MAX_INSTANT_MS
from mcp_gateway.openapi import Operation, document

from .analytics_support import T0, read_headers
from .support import ADMIN_HEADERS, DEMO, create_key

GID: Final = {"X-Gateway-ID": DEMO}
READ_SCHEMES: Final[list[dict[str, list[str]]]] = [
    {"readBearer": []},
    {"readApiKey": []},
    {"readQuery": []},
    {"readToken": []},
    {"accountBearer": []},
    {"accountApiKey": []},
    {"accountToken": []},
]
UNDOCUMENTED_METHODS: Final = {"HEAD", "OPTIONS"}
"""Starlette adds HEAD to every GET; cors routes answer OPTIONS preflights. Neither is an API operation."""


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    """An app for what does not need its lifespan: its routes and its document, which depend on the code only."""
    return create_app(Settings(db_path=Path(tmp_path_factory.mktemp("openapi")) / "gateway.db"))


@pytest.fixture(scope="module")
def doc(served_app: Starlette) -> dict[str, Any]:
    """/openapi.json, fetched once for the module (building and validating it takes a moment)."""
    response = TestClient(served_app).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def _strict(value: Any) -> Any:
    """`value` with every object schema closed (`additionalProperties: false` unless it says otherwise), so an
    answer with a key the document does not name fails validation."""
    if isinstance(value, list):
        return [_strict(item) for item in value]
    if not isinstance(value, dict):
        return value
    strict = {key: _strict(item) for key, item in value.items()}
    if "properties" in strict and "additionalProperties" not in strict:
        strict["additionalProperties"] = False
    return strict


def assert_documented(doc: dict[str, Any], template: str, response: httpx.Response) -> None:
    """`response` has a status its operation documents, and its JSON body matches the documented schema."""
    operation = doc["paths"][template][response.request.method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (template, response.status_code, response.text)
    if "content" not in documented:
        assert response.content == b""
        return
    schema = documented["content"]["application/json"]["schema"]
    components = _strict(doc["components"])
    validate_instance(response.json(), {**_strict(schema), "components": components}, cls=OAS31Validator)


# -- the document as a whole --------------------------------------------------------------------------------


def test_document_is_a_valid_openapi_3_1_document(doc: dict[str, Any]) -> None:
    validate_document(doc, cls=OpenAPIV31SpecValidator)
    assert doc["openapi"] == "3.1.0"


def test_every_route_the_app_serves_is_documented_and_nothing_else_is(
    served_app: Starlette, doc: dict[str, Any]
) -> None:
    served: set[tuple[str, str]] = set()
    for route in served_app.routes:
        if isinstance(route, Mount):
            # A Mount serves a subtree (static files, a sub-app) whose paths its routing table does not
            # list, so there is nothing to compare; the app has none today.
            continue
        assert isinstance(route, Route), route
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        served |= {(path, method) for method in route.methods or () if method not in UNDOCUMENTED_METHODS}
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    undocumented, stale = sorted(served - documented), sorted(documented - served)
    assert undocumented == [], f"served but not documented: {undocumented}"
    assert stale == [], f"documented but not served: {stale}"


def test_every_analytics_operation_declares_the_read_key(doc: dict[str, Any]) -> None:
    analytics = {
        (path, method)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if "analytics" in operation["tags"]
    }
    assert {(question.path, question.method.lower()) for question in QUESTIONS} <= analytics
    for path, method in analytics:
        assert doc["paths"][path][method]["security"] == READ_SCHEMES, (path, method)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["readBearer"] == {"type": "http", "scheme": "bearer", "description": "A key of kind `read` (rk_…)"}
    assert (schemes["readApiKey"]["in"], schemes["readApiKey"]["name"]) == ("header", "X-API-Key")
    assert (schemes["readQuery"]["in"], schemes["readQuery"]["name"]) == ("query", "api_key")


async def test_each_documented_read_key_scheme_is_accepted(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    window = {"since": str(T0), "until": str(T0 + 3_600_000)}
    for headers, params in [
        ({"Authorization": f"Bearer {key}"}, window),  # readBearer
        ({"X-API-Key": key}, window),  # readApiKey
        ({}, {**window, "api_key": key}),  # readQuery
    ]:
        response = await http.get("/analytics/tools", headers=headers, params=params)
        assert response.status_code == 200, (headers, params, response.text)


async def test_every_operation_that_declares_security_answers_401_without_credentials(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    secured = [
        (re.sub(r"{\w+}", DEMO, path), method)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert len(secured) >= len(QUESTIONS) + 11 + 3 + 1  # analytics, admin, Agnost ingestion, /v1/track
    for path, method in secured:
        response = await http.request(method.upper(), path)
        assert response.status_code == 401, (method, path, response.status_code)


def test_operations_without_security_declare_none(doc: dict[str, Any]) -> None:
    open_paths = {
        path for path, item in doc["paths"].items() for operation in item.values() if "security" not in operation
    }
    assert {"/track", "/track/session/start", "/lead.capture", "/mcp", "/v1/mcp/sse", "/health"} <= open_paths


# -- parameters and bodies as the routes validate them -------------------------------------------------------


def _parameter(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    [param] = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = param["schema"]
    return schema


def _body_property(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    """A property of the route's body model; of its first one when it takes several (`/track`: seed 000's, 002's)."""
    schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    ref = schema["anyOf"][0]["$ref"] if "anyOf" in schema else schema["$ref"]
    prop: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"][name]
    return prop


async def test_query_parameters_are_validated_as_documented(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    assert _parameter(doc, "/v1/gateways/{gid}/leads", "get", "limit") == {
        "default": 100,
        "description": "How many leads, newest first",
        "maximum": 1000,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }
    response = await http.get("/v1/gateways/demo/leads?limit=ten", headers=ADMIN_HEADERS)
    assert (response.status_code, response.json()["field"]) == (400, "limit")
    assert (await http.get("/v1/gateways/demo/leads?limit=1000", headers=ADMIN_HEADERS)).status_code == 200

    assert _parameter(doc, "/analytics/tools", "get", "period")["enum"] == ["24h", "7d", "30d", "90d"]
    response = await http.get("/analytics/tools?period=1y", headers=await read_headers(http))
    assert (response.status_code, response.json()["field"]) == (400, "period")


async def test_bodies_are_validated_as_documented(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    scroll_depth = _body_property(doc, "/track/session/end", "post", "scroll_depth")
    assert {"maximum": 100, "minimum": 0, "type": "number"} in scroll_depth["anyOf"]
    response = await http.post("/track/session/end", json={"session_id": "s-1", "scroll_depth": "deep"}, headers=GID)
    assert (response.status_code, response.json()["field"]) == (400, "scroll_depth")

    ref = doc["paths"]["/track/event"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert set(doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["required"]) == {"event_name", "session_id"}
    response = await http.post("/track/event", json={"event_name": "click"}, headers=GID)
    assert (response.status_code, response.json()["field"]) == (400, "session_id")


async def test_a_post_question_without_a_body_is_answered_as_its_document_says(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    """/query's parameters all have defaults: its body may be left out. /funnel needs `steps`: its body may not."""
    headers = await read_headers(http)
    assert doc["paths"]["/query"]["post"]["requestBody"]["required"] is False
    answered = await http.post("/query", headers=headers)
    assert answered.status_code == 200, answered.text
    assert_documented(doc, "/query", answered)
    assert answered.json()["metrics"] == ["event_count"]

    assert doc["paths"]["/funnel"]["post"]["requestBody"]["required"] is True
    refused = await http.post("/funnel", headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "steps")


async def test_times_are_documented_in_the_forms_the_routes_read(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    since = _parameter(doc, "/stats", "get", "since")
    assert {"type": "string", "format": "date-time"} in since["anyOf"]
    assert {"type": "string", "pattern": "^[0-9]{1,15}$"} in since["anyOf"]
    assert {"type": "integer", "minimum": 0, "maximum": MAX_INSTANT_MS} in since["anyOf"]  # 9999-01-01
    headers = await read_headers(http)
    for sent in ("1767225600000", "2026-01-01T00:00:00Z", "2026-01-01t00:00:00.5z", "2026-01-01T05:30:00+05:30"):
        answer = await http.get("/stats", params={"since": sent, "until": "1767312000000"}, headers=headers)
        assert answer.status_code == 200, (sent, answer.text)
        assert answer.json()["window"]["since"] in (1767225600000, 1767225600500), sent
    answer = await http.post("/query", json={"since": 1767225600000, "until": "2026-01-02T00:00:00Z"}, headers=headers)
    assert answer.status_code == 200, answer.text

    v1 = _body_property(doc, "/v1/track", "post", "timestamp")
    assert {"type": "string", "format": "date-time", "maxLength": 64} in v1["anyOf"]
    key = await create_key(http, kind="sk")
    sent_v1 = {"event": "e", "event_id": "lower-case-rfc3339", "timestamp": "2026-05-16t19:00:00.000z"}
    accepted = await http.post("/v1/track", json=sent_v1, headers={"Authorization": f"Bearer {key}"})
    assert accepted.status_code == 202, accepted.text
    assert "milliseconds" in _body_property(doc, "/track", "post", "timestamp")["description"]


@pytest.mark.parametrize(
    ("session_id", "status"),
    [
        ("0123456789abcdef0123456789abcdef", 404),  # the form the endpoint event names: unknown here
        ("01234567-89ab-cdef-0123-456789abcdef", 404),  # format uuid
        ("{01234567-89ab-cdef-0123-456789abcdef}", 400),  # Python's UUID() reads these; the document does not
        ("urn:uuid:01234567-89ab-cdef-0123-456789abcdef", 400),
        ("0123456789abcdef", 400),
    ],
)
async def test_the_sse_session_id_is_a_uuid_as_documented(
    http: httpx.AsyncClient, doc: dict[str, Any], session_id: str, status: int
) -> None:
    documented = _parameter(doc, "/v1/mcp/{gid}/messages", "post", "session_id")
    assert {"type": "string", "format": "uuid"} in documented["anyOf"]
    assert {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"} in documented["anyOf"]
    answer = await http.post(
        f"/v1/mcp/{DEMO}/messages", params={"session_id": session_id}, json={"jsonrpc": "2.0", "method": "x"}
    )
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["field"] == "session_id"


async def test_routes_needing_gid_or_its_header_say_so_and_refuse_neither(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    ruled = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            names = {(param["name"], param["in"], param["required"]) for param in operation["parameters"]}
            if not {("gid", "query", False), ("X-Gateway-ID", "header", False)} <= names:
                continue
            ruled.append((method.upper(), path))
            assert operation["x-required-one-of"] == [["gid", "X-Gateway-ID"]], path
            assert "`?gid=` or by the `X-Gateway-ID` header: one of them is required" in operation["description"], path
            assert "X-Gateway-ID" in operation["responses"]["400"]["description"], path
            answer = await http.request(
                method.upper(), path, json={}, headers={"Accept": "application/json, text/event-stream"}
            )
            assert (answer.status_code, answer.json()["field"]) == (400, "X-Gateway-ID"), (path, answer.text)
    assert {("POST", "/track"), ("POST", "/mcp"), ("GET", "/v1/mcp/sse"), ("POST", "/track/event")} <= set(ruled)


def _names(schema: dict[str, Any]) -> tuple[list[str], str]:
    """The allow-list and the prefix pattern of a `name_or_prefixed` schema."""
    [listed, prefixed] = schema["anyOf"]
    return listed["enum"], prefixed["pattern"]


async def test_query_groups_and_filters_and_funnel_filters_are_enumerated_as_the_routes_accept_them(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    schemas = doc["components"]["schemas"]
    groups, group_pattern = _names(schemas["QueryArgs"]["properties"]["group_by"]["items"])
    fields, field_pattern = _names(schemas["QueryFilter"]["properties"]["field"])
    steps, step_pattern = _names(schemas["StepFilter"]["properties"]["property"])
    [breakdown, _] = schemas["FunnelArgs"]["properties"]["breakdown"]["anyOf"]
    assert _names(breakdown) == (steps, step_pattern)
    assert {"day", "hour", "source", "traffic_source"} <= set(groups) and "latency_ms" not in groups
    assert {"source", "latency_ms", "success"} <= set(fields) and "day" not in fields
    assert group_pattern == field_pattern == step_pattern == "^properties\\.."

    headers = await read_headers(http)
    window = {"since": T0, "until": T0 + 86_400_000}
    for name in [*groups, "properties.plan"]:  # every documented name is accepted ...
        answer = await http.post("/query", json={**window, "group_by": [name]}, headers=headers)
        assert answer.status_code == 200, (name, answer.text)
    for name in [*fields, "properties.plan"]:
        value = True if name == "success" else 1 if name == "latency_ms" else "x"
        answer = await http.post(
            "/query", json={**window, "filters": [{"field": name, "value": value}]}, headers=headers
        )
        assert answer.status_code == 200, (name, answer.text)
    for name in [*steps, "properties.plan"]:
        step = {"event": "b", "filters": [{"property": name, "value": "x"}]}
        answer = await http.post("/funnel", json={**window, "steps": ["a", step], "breakdown": name}, headers=headers)
        assert answer.status_code == 200, (name, answer.text)
    # ... and a name outside them is refused, naming it
    refused = await http.post("/query", json={"group_by": ["latency_ms"]}, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "group_by.0")
    refused = await http.post("/query", json={"filters": [{"field": "day", "value": 1}]}, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "filters.0.field")
    refused = await http.post("/funnel", json={"steps": ["a", "b"], "breakdown": "properties."}, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "breakdown")


def test_same_named_models_of_different_modules_keep_their_own_schemas(doc: dict[str, Any]) -> None:
    # ingest.track.TrackUser (seed 000: fbp, fbc, ...) and ingest.visits.TrackUser (email, phone, external id).
    track_user = _body_property(doc, "/track", "post", "user")["$ref"].rsplit("/", 1)[1]
    visit_user = _body_property(doc, "/track/session/start", "post", "user")["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    schemas = doc["components"]["schemas"]
    assert "fbp" in schemas[track_user]["properties"]
    assert "fbp" not in schemas[visit_user]["properties"]


# -- answers as the routes send them ------------------------------------------------------------------------


async def test_ingestion_answers_match_their_documented_schemas(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    org = {"X-Org-Id": await create_key(http, DEMO, "org")}
    session = {"session_id": str(uuid.uuid4()), "client_config": "claude-desktop 1.0"}
    event = {
        "session_id": session["session_id"],
        "primitive_type": "tool",
        "primitive_name": "search",
        "latency": 12,
        "success": True,
    }
    unknown = {**event, "session_id": str(uuid.uuid4())}
    for path, body in [
        ("/api/v1/capture-session", session),
        ("/api/v1/capture-event", event),
        ("/api/v1/capture-batch", {"sessions": [session], "events": [event, unknown]}),
        ("/api/v1/capture-event", unknown),  # 404: the session was never captured
    ]:
        assert_documented(doc, path, await http.post(path, json=body, headers=org))


async def test_tracking_answers_match_their_documented_schemas(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    assert_documented(doc, "/track", await http.post("/track", json={"event_name": "Lead"}, headers=GID))
    batch = {"events": [{"event_name": "Lead"}, {"event_name": ""}]}
    assert_documented(doc, "/track/batch", await http.post("/track/batch", json=batch, headers=GID))
    server_key = {"Authorization": f"Bearer {await create_key(http, DEMO, 'sk')}"}
    v1 = await http.post("/v1/track", json={"event": "signup", "properties": {"plan": "pro"}}, headers=server_key)
    assert v1.status_code == 202
    assert_documented(doc, "/v1/track", v1)
    started = await http.post("/track/session/start", json={"url": "https://example.com/"}, headers=GID)
    assert_documented(doc, "/track/session/start", started)
    visit = {"session_id": started.json()["session_id"], "visitor_id": started.json()["visitor_id"]}
    for path, body in [
        ("/track/event", {**visit, "event_name": "click"}),
        ("/track/events/batch", {**visit, "events": [{"event_name": "scroll"}]}),
        ("/track/session/end", {**visit, "scroll_depth": 40, "clicks": 2}),
        ("/lead.capture", {**visit, "email": "ada@example.com", "name": "Ada"}),
        ("/track/session/end", {"session_id": "s-1", "scroll_depth": "deep"}),  # 400
        ("/track/event", {"event_name": "click"}),  # 400 without a session
    ]:
        assert_documented(doc, path, await http.post(path, json=body, headers=GID))
    assert_documented(doc, "/track", await http.post("/track", json={"event_name": "x"}))  # 400: no gateway


async def test_mcp_plain_jsonrpc_answers_match_their_documented_schemas(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    for body in (ping, [ping, {**ping, "id": 2}], notification):
        response = await http.post("/v1/mcp/sse", json=body, headers=GID)
        assert_documented(doc, "/v1/mcp/sse", response)
    parse_error = await http.post("/v1/mcp/sse", content=b"{", headers={**GID, "Content-Type": "application/json"})
    assert parse_error.status_code == 400
    assert_documented(doc, "/v1/mcp/sse", parse_error)


async def test_admin_answers_match_their_documented_schemas(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    async def call(method: str, path: str, template: str, body: Any = None) -> httpx.Response:
        response = await http.request(method, path, headers=ADMIN_HEADERS, json=body)
        assert_documented(doc, template, response)
        return response

    await call("POST", "/v1/gateways", "/v1/gateways", {"id": "other", "name": "Other"})
    await call("GET", "/v1/gateways", "/v1/gateways")
    await call("GET", "/v1/gateways/demo", "/v1/gateways/{gid}")
    origins = {"allowed_origins": ["https://example.com"]}
    await call("PUT", "/v1/gateways/demo/origins", "/v1/gateways/{gid}/origins", origins)
    manifest = (await call("GET", "/v1/gateways/demo/manifest", "/v1/gateways/{gid}/manifest")).json()
    await call("PUT", "/v1/gateways/demo/manifest", "/v1/gateways/{gid}/manifest", manifest)
    await http.post("/lead.capture", json={"email": "ada@example.com"}, headers=GID)
    assert (await call("GET", "/v1/gateways/demo/leads", "/v1/gateways/{gid}/leads")).json()["leads"]
    key = (await call("POST", "/v1/gateways/demo/keys", "/v1/gateways/{gid}/keys", {"kind": "read"})).json()
    await call("GET", "/v1/gateways/demo/keys", "/v1/gateways/{gid}/keys")
    await call("DELETE", f"/v1/gateways/demo/keys/{key['id']}", "/v1/gateways/{gid}/keys/{key_id}")
    await call("GET", "/v1/gateways/demo/receipt-secret", "/v1/gateways/{gid}/receipt-secret")
    await call("GET", "/v1/gateways/nowhere", "/v1/gateways/{gid}")  # 404
    await call("POST", "/v1/gateways", "/v1/gateways", {"id": "Bad Id", "name": "x"})  # 422


async def test_analytics_answers_match_their_documented_schemas(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    headers = await read_headers(http)
    window = {"since": str(T0), "until": str(T0 + 86_400_000)}
    asked = 0
    for question in QUESTIONS:
        if question.method != "GET" or "{" in question.path or question.args.model_json_schema().get("required"):
            continue  # needs an id or a parameter this generic walk cannot choose
        response = await http.get(question.path, params=window, headers=headers)
        assert response.status_code == 200, (question.path, response.text)
        assert_documented(doc, question.path, response)
        asked += 1
    assert asked >= 1


# -- how `document` builds schemas --------------------------------------------------------------------------


class _LeadArgs(BaseModel):
    lead_id: str = Field(min_length=1, max_length=8)
    detail: bool | None = None


def test_a_path_parameter_takes_its_schema_from_the_args_and_leaves_the_query_and_the_body() -> None:
    built = document(
        [
            Operation("GET", "/leads/{lead_id}", "One lead", "t", query=_LeadArgs),
            Operation("POST", "/leads/{lead_id}", "Change one", "t", body=_LeadArgs),
        ]
    )
    get = built["paths"]["/leads/{lead_id}"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in get["parameters"]] == [
        ("lead_id", "path", True),
        ("detail", "query", False),
    ]
    assert get["parameters"][0]["schema"] == {"maxLength": 8, "minLength": 1, "title": "Lead Id", "type": "string"}
    assert get["parameters"][1]["schema"] == {"title": "Detail", "type": "boolean"}  # no `null` in a query string
    post = built["paths"]["/leads/{lead_id}"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["lead_id"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert list(body["properties"]) == ["detail"]
    assert body["required"] == []
    validate_document(built, cls=OpenAPIV31SpecValidator)
