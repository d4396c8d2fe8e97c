"""Fixtures of the RabbitMQ adapter tests: isolated adapters (classic, quorum), a private node."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from app.adapters.rabbitmq import RabbitMQAdapter
from tests.backend_rabbitmq import isolated_rabbitmq_config
from tests.backends import AMQP_URL, require_backend, unique
from tests.rabbitmq.nodes import PrivateRabbitNode, require_private_node

OpenAdapter = Callable[..., AbstractAsyncContextManager[RabbitMQAdapter]]


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> str:
    """Every adapter test runs on both queue types."""
    return str(request.param)


@pytest.fixture
async def rabbit_config(queue_type: str) -> AsyncIterator[dict[str, Any]]:
    """A config with a prefix of its own on the shared broker (everything deleted after)."""
    require_backend("rabbitmq")
    async with isolated_rabbitmq_config(AMQP_URL, queue_type) as config:
        yield config


def opener(config: dict[str, Any]) -> OpenAdapter:
    """Open started adapters on ``config`` (several adapters = several instances)."""

    @asynccontextmanager
    async def open_adapter(**overrides: Any) -> AsyncIterator[RabbitMQAdapter]:
        adapter = RabbitMQAdapter.from_config({**config, **overrides})
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()

    return open_adapter


@pytest.fixture
def open_rabbit(rabbit_config: dict[str, Any]) -> OpenAdapter:
    """Adapters on the test's prefix of the shared broker."""
    return opener(rabbit_config)


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[PrivateRabbitNode]:
    """A RabbitMQ node of this module's own (it gets stopped and restarted), killed after."""
    require_private_node()
    node = PrivateRabbitNode()
    node.start()
    try:
        yield node
    finally:
        node.destroy()


@pytest.fixture
def private_rabbit_up(private_rabbit: PrivateRabbitNode) -> PrivateRabbitNode:
    """The private node, with its application running (a previous test may have stopped it)."""
    private_rabbit.start_app()
    return private_rabbit


@pytest.fixture
def private_config(private_rabbit_up: PrivateRabbitNode) -> dict[str, Any]:
    """A config pointing at the private node (fast reconnects, short publish timeout)."""
    return {
        "amqp_url": private_rabbit_up.url,
        "prefix": unique("hlpriv"),
        "publish_timeout_ms": 2_000,
        "connect_timeout_ms": 2_000,
        "reconnect_max_ms": 300,
    }
