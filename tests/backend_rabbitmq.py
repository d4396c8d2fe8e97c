"""Isolation for RabbitMQ-backed tests (owned by the RabbitMQ adapter work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest


@asynccontextmanager
async def isolated_rabbitmq_config(amqp_url: str) -> AsyncIterator[dict[str, Any]]:
    """Yield a config with unique exchange/queue names; delete them afterwards."""
    pytest.skip("RabbitMQ adapter not implemented yet")
    yield {"amqp_url": amqp_url}
