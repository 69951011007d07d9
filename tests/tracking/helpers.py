"""A `LocalSink` target that keeps what it is given, for tests that look at sessions and events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import anyio
from mcp_gateway_tracking import CaptureBatch, CaptureEvent, CaptureSession


@dataclass
class Recorder:
    """Collects `(org_id, batch)` deliveries; fails them while `failing` is set."""

    batches: list[tuple[str, CaptureBatch]] = field(default_factory=list)
    failing: bool = False
    calls: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, org_id: str, batch: CaptureBatch) -> None:
        self.calls += 1
        self._changed.set()
        if self.failing:
            raise ConnectionError("store unavailable")
        self.batches.append((org_id, batch))

    async def wait_for_calls(self, count: int, timeout: float = 5) -> None:
        with anyio.fail_after(timeout):
            while self.calls < count:
                self._changed.clear()
                await self._changed.wait()

    @property
    def sizes(self) -> list[int]:
        return [len(batch.sessions) + len(batch.events) for _, batch in self.batches]

    @property
    def sessions(self) -> list[CaptureSession]:
        return [session for _, batch in self.batches for session in batch.sessions]

    @property
    def events(self) -> list[CaptureEvent]:
        return [event for _, batch in self.batches for event in batch.events]

    def event(self, name: str) -> CaptureEvent:
        matches = [event for event in self.events if event.primitive_name == name]
        assert len(matches) == 1, (name, matches)
        return matches[0]
