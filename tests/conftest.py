"""Shared fixtures: a real webhook receiver and a running hookline app per adapter kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on a free loopback port."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
