"""A webhook receiver on loopback for the integrations' tests: it checks each request's Standard Webhooks signature
(`verify_webhook`), records what it got, and answers as scripted (500s, 429s with Retry-After, slow answers, 400s
with an error body), then 200 once the script is used up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_gateway.integrations.platforms.webhook import new_secret, verify_webhook

from .support import ADMIN_HEADERS, serve_in_thread

WAIT_TIMEOUT: Final = 20.0
"""Longest a test waits for a delivery to happen."""


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Answer this much later (a slow platform)."""


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


class WebhookReceiver:
    def __init__(self) -> None:
        self.secret = new_secret()
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self.default = Answer()
        self.received: list[Received] = []
        self.url = ""

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def event_ids(self) -> list[str]:
        """The ids of every event received, in order, repeats included (requests answered 2xx or not)."""
        with self._lock:
            return [event["event_id"] for message in self.received for event in message.body["data"]]

    def requests(self) -> int:
        with self._lock:
            return len(self.received)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            verify_webhook(self.secret, request.headers, raw)
            verified = True
        except ValueError:
            verified = False
        with self._lock:
            answer = self._script.popleft() if self._script else self.default
            self.received.append(Received(dict(request.headers), _json(raw), verified))
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self._handle, methods=["POST"])])


def _json(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


@contextlib.contextmanager
def webhook_receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with serve_in_thread(receiver.app(), tmp_path / "receiver-unused.db") as server:
        receiver.url = server.url("/hook")
        yield receiver


def webhook_integration(receiver: WebhookReceiver, **fields: Any) -> dict[str, Any]:
    """The admin API body of a webhook integration to `receiver`."""
    config = {"url": receiver.url, "secret": receiver.secret, **fields.pop("config", {})}
    return {"kind": "webhook", "name": "test hook", "config": config, **fields}


async def create_integration(http: httpx.AsyncClient, body: dict[str, Any], gateway_id: str = "demo") -> str:
    response = await http.post(f"/v1/gateways/{gateway_id}/integrations", headers=ADMIN_HEADERS, json=body)
    assert response.status_code == 201, response.text
    integration_id: str = response.json()["id"]
    return integration_id


async def integration_status(http: httpx.AsyncClient, integration_id: str, gateway_id: str = "demo") -> Any:
    response = await http.get(f"/v1/gateways/{gateway_id}/integrations/{integration_id}", headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def wait_until(condition: Callable[[], Any], timeout: float = WAIT_TIMEOUT) -> None:
    """Poll `condition` (sync or async) until it is true; fail after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)
