"""Fixtures of the tracking tests: a fake backend on a loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .backend import FakeBackend


@pytest.fixture
async def backend() -> AsyncIterator[FakeBackend]:
    """A fake Agnost backend, up and answering."""
    fake = FakeBackend()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def down_backend() -> AsyncIterator[FakeBackend]:
    """A fake backend whose port nobody listens on until the test calls `start()`."""
    fake = FakeBackend()
    yield fake
    await fake.stop()
