"""Service-level contract: the whole path (API -> adapter -> dispatcher -> receiver) per adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.backends import ADAPTER_KINDS
from tests.harness import Hookline, running_hookline


@pytest.fixture(params=ADAPTER_KINDS)
async def hookline(request: pytest.FixtureRequest) -> AsyncIterator[Hookline]:
    """A running hookline on each adapter kind."""
    async with running_hookline(str(request.param)) as running:
        yield running
