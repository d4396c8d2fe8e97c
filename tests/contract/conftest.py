"""Fixtures of the contract suite: every test runs once per adapter kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.core.ports import QueueAdapter
from tests.backends import ADAPTER_KINDS, open_adapter


@pytest.fixture(params=ADAPTER_KINDS)
def adapter_kind(request: pytest.FixtureRequest) -> str:
    """The adapter kind under test."""
    return str(request.param)


@pytest.fixture
async def adapter(adapter_kind: str) -> AsyncIterator[QueueAdapter]:
    """A started, isolated adapter."""
    async with open_adapter(adapter_kind) as opened:
        yield opened
