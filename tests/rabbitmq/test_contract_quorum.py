"""The adapter contract suite once more, on quorum queues (the contract run uses classic).

Every ``test_*`` of ``tests/contract/test_adapter_contract.py`` is re-exported here with an
``adapter`` fixture that opens a RabbitMQ adapter with ``queue_type: quorum``, so tests
added to the contract later are picked up without touching this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.ports import QueueAdapter
from tests.backend_rabbitmq import isolated_rabbitmq_config
from tests.backends import AMQP_URL, require_backend
from tests.contract import test_adapter_contract as contract

globals().update({name: test for name, test in vars(contract).items() if name.startswith("test_")})


@pytest.fixture
async def adapter() -> AsyncIterator[QueueAdapter]:
    """A started RabbitMQ adapter on quorum queues, isolated by prefix."""
    require_backend("rabbitmq")
    async with isolated_rabbitmq_config(AMQP_URL, "quorum") as config:
        opened = RabbitMQAdapter.from_config(config)
        await opened.start()
        try:
            yield opened
        finally:
            await opened.close()
