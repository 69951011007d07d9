"""Bad input, generated: schemathesis derives requests for every operation of /openapi.json — valid ones and
ones that break the schema on purpose — and sends them to the real server over a socket, with working
credentials so the requests get past authentication into the code behind it. No answer may be a 5xx, carry a
traceback, or be anything but JSON when it is an error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from starlette.testclient import TestClient

from mcp_gateway import Settings, create_app

from .support import ADMIN_HEADERS, ADMIN_TOKEN, DEMO, LiveServer, serve_in_thread

EXAMPLES: Final = 15
"""Generated requests per operation (and mode): enough to reach each route's validation, quick enough for CI."""


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """The gateway under uvicorn, and a key of each kind for `demo`."""
    db_path = Path(tmp_path_factory.mktemp("fuzz")) / "gateway.db"
    settings = Settings(db_path=db_path, database_url=module_database_url, admin_token=ADMIN_TOKEN)
    with serve_in_thread(create_app(settings), db_path) as server:
        keys = {}
        for kind in ("read", "org", "sk"):
            response = httpx.post(
                server.url(f"/v1/gateways/{DEMO}/keys"), json={"kind": kind}, headers=ADMIN_HEADERS, timeout=10
            )
            assert response.status_code == 201, response.text
            keys[kind] = response.json()["key"]
        yield server, keys


def _document() -> dict[str, Any]:
    """/openapi.json of an app that was never started: the document depends on the code only."""
    app = create_app(Settings(db_path=Path(tempfile.gettempdir()) / "never-opened.db"))
    document: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    return document


def _label(result: Ok[schemathesis.APIOperation[Any, Any, Any, Any]] | Err[InvalidSchema]) -> str:
    if isinstance(result, Err):
        raise result.err()  # our own document must describe every operation validly
    return result.ok().label


SCHEMA: Final = schemathesis.openapi.from_dict(_document())
LABELS: Final = sorted(_label(result) for result in SCHEMA.get_all_operations())
ENDLESS: Final = {"GET /stream", "GET /mcp", "GET /v1/mcp/sse"}
"""Streams that never end: their bad input is tested in test_analytics_live and test_transports."""


def credentials(path: str, keys: dict[str, str], method: str = "GET") -> dict[str, str]:
    """Headers that authenticate a request to `path`, whatever its scheme."""
    if path.startswith("/experiments") and method != "GET":
        return dict(ADMIN_HEADERS)  # changing experiments: the admin token (the reads take the read key below)
    if path.startswith(("/v1/gateways", "/v1/accounts", "/projects", "/account")):
        return dict(ADMIN_HEADERS)  # the admin token manages every account's projects
    if path.startswith("/api/v1/"):
        return {"X-Org-Id": keys["org"]}
    if path == "/v1/track":
        return {"Authorization": f"Bearer {keys['sk']}"}
    return {"X-API-Key": keys["read"], "X-Gateway-ID": DEMO}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("label", [label for label in LABELS if label not in ENDLESS])
def test_no_operation_answers_a_5xx_or_a_traceback(
    label: str, mode: GenerationMode, fuzzed: tuple[LiveServer, dict[str, str]]
) -> None:
    server, keys = fuzzed
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
    )
    def send(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=server.base_url, headers=credentials(case.path, keys, case.method), timeout=15)
        assert response.status_code < 500, (label, response.status_code, response.text[:500])
        assert "Traceback" not in response.text, label
        if response.status_code >= 400 and not case.path.startswith("/dashboard"):  # a form answers a page
            [content_type] = response.headers.get("content-type", [""])
            assert content_type.startswith("application/json"), (label, response.status_code, response.text[:300])

    try:
        send()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            pytest.skip("nothing in this operation's schema can be made invalid")
        raise
