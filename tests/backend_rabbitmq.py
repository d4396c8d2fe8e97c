"""Isolation for RabbitMQ-backed tests (owned by the RabbitMQ adapter work).

Each test gets its own name prefix (so its exchanges, queues and streams are its own)
in the shared broker's vhost, and everything under that prefix is deleted afterwards.
``HOOKLINE_TEST_RABBITMQ_QUEUE_TYPE=quorum`` runs the suites on quorum queues
(``tests/rabbitmq/test_contract_quorum.py`` does so for the contract suite regardless).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.adapters.rabbitmq import RabbitMQAdapter
from tests.backends import unique


def default_queue_type() -> str:
    """classic unless HOOKLINE_TEST_RABBITMQ_QUEUE_TYPE says quorum."""
    return os.environ.get("HOOKLINE_TEST_RABBITMQ_QUEUE_TYPE", "classic")


@asynccontextmanager
async def isolated_rabbitmq_config(
    amqp_url: str, queue_type: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Yield a config with a unique prefix; delete everything under it afterwards."""
    config: dict[str, Any] = {
        "amqp_url": amqp_url,
        "prefix": unique("hltest"),
        "queue_type": queue_type or default_queue_type(),
    }
    try:
        yield config
    finally:
        await destroy_namespace(config)


async def destroy_namespace(config: dict[str, Any]) -> None:
    """Delete every exchange, queue and stream a test's adapters created."""
    adapter = RabbitMQAdapter.from_config(config)
    await adapter.start()
    try:
        await adapter.destroy()
    finally:
        await adapter.close()
