"""Shared fixtures: a real webhook receiver and a running hookline app per adapter kind."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.leftovers import MARKER, leftovers
from tests.receiver import Receiver

os.environ[MARKER] = str(os.getpid())  # inherited by every process the suite starts


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Fail the session if a process it started outlives it (orphans included).

    Set up before any other session fixture, so torn down after all of them.
    """
    yield
    left = leftovers(os.getpid())
    assert not left, "processes started by the tests are still alive: " + "; ".join(left)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on a free loopback port."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
