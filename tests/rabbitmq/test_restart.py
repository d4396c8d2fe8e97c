"""Broker outages on a private node: 503 while down, reconnect, re-declare, nothing lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.errors import BackendUnavailableError
from app.core.models import now_ms
from tests.backends import unique
from tests.rabbitmq.conftest import opener
from tests.rabbitmq.helpers import dlq_entry, eventually, make_msg, make_sub, publish, receive_n
from tests.rabbitmq.nodes import PrivateRabbitNode

pytestmark = pytest.mark.slow


async def _publish_fails(adapter: RabbitMQAdapter, topic: str) -> bool:
    try:
        await publish(adapter, make_msg(topic, "during-outage"))
    except BackendUnavailableError:
        return True
    return False


async def test_broker_restart_mid_run(
    private_rabbit_up: PrivateRabbitNode, private_config: dict[str, Any], queue_type: str
) -> None:
    async with opener({**private_config, "queue_type": queue_type})() as adapter:
        topic = unique("restart")
        sub = make_sub(topic, max_in_flight=50)
        await adapter.create_subscription(sub)
        confirmed = [make_msg(topic, i) for i in range(20)]
        await publish(adapter, *confirmed)
        leased = await receive_n(adapter, sub, 5)
        [scheduled] = leased[:1]
        await adapter.retry_at(scheduled, now_ms() + 1_500)  # waits in the ladder over the outage

        private_rabbit_up.stop_app()
        await eventually(lambda: _publish_fails(adapter, topic))
        assert await adapter.ping() is False
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            await publish(adapter, make_msg(topic, "refused"))
        assert time.monotonic() - started < 1.0  # a known outage answers at once
        assert await adapter.receive(sub, 10, 50) == []

        private_rabbit_up.start_app()
        await eventually(adapter.ping, within=30)
        after = [make_msg(topic, 100 + i) for i in range(20)]
        await publish(adapter, *after)
        await adapter.ack(leased[1:])  # receipts of the old connection: void, no error

        wanted = {m.id for m in [*confirmed, *after]}
        seen: set[str] = set()
        retried_attempts: set[int] = set()
        deadline = time.monotonic() + 20
        while not (wanted <= seen and 2 in retried_attempts) and time.monotonic() < deadline:
            for delivery in await adapter.receive(sub, 50, 200):
                seen.add(delivery.message.id)
                if delivery.message.id == scheduled.message.id:
                    retried_attempts.add(delivery.attempt)
                await adapter.ack([delivery])
        assert wanted <= seen, f"lost {len(wanted - seen)} confirmed messages"
        assert 2 in retried_attempts  # the retry waiting in the ladder survived the outage


async def test_start_with_broker_down_then_connect(
    private_rabbit_up: PrivateRabbitNode, private_config: dict[str, Any]
) -> None:
    private_rabbit_up.stop_app()
    adapter = RabbitMQAdapter.from_config(private_config)
    try:
        async with asyncio.timeout(15):
            await adapter.start()  # must not raise
        assert await adapter.ping() is False
        with pytest.raises(BackendUnavailableError):
            await publish(adapter, make_msg(unique("down"), 1))
        private_rabbit_up.start_app()
        await eventually(adapter.ping, within=30)
        topic = unique("up")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "hello"))
        [got] = await receive_n(adapter, sub, 1)
        assert got.message.data == "hello"
        await adapter.ack([got])
    finally:
        await adapter.close()


async def test_registry_dlq_and_queues_survive_a_restart(
    private_rabbit_up: PrivateRabbitNode, private_config: dict[str, Any]
) -> None:
    open_adapter = opener(private_config)
    topic = unique("durable")
    sub = make_sub(topic)
    async with open_adapter() as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(3)])
        [first] = await receive_n(adapter, sub, 1)
        await adapter.dead_letter(first, dlq_entry(first))
        private_rabbit_up.stop_app()
        private_rabbit_up.start_app()
        await eventually(adapter.ping, within=30)
        assert await adapter.dlq_count(topic) == 1
    async with open_adapter() as fresh:  # a new instance replays the registry stream
        assert await fresh.get_subscription(sub.id) == sub
        # An ack has no confirm in AMQP 0-9-1: if the restart beat the dead-lettered
        # message's ack, message 0 comes back too (at-least-once), never fewer.
        rest = await receive_n(fresh, sub, 3, within=2)
        assert {1, 2} <= {d.message.data for d in rest} <= {0, 1, 2}
        await fresh.ack(rest)
        assert await fresh.dlq_redrive(topic) == 1
        [back] = await receive_n(fresh, sub, 1)
        assert back.message.data == 0
        await fresh.ack([back])


async def test_memory_alarm_blocks_publishes_not_deliveries(
    private_rabbit_up: PrivateRabbitNode, private_config: dict[str, Any]
) -> None:
    """Under an alarm RabbitMQ blocks publishers: 503 after the publish timeout, while
    consumers (their own connection) keep draining; a retry that cannot be stored comes
    back for another attempt instead of being lost."""
    async with opener(private_config)() as adapter:
        topic = unique("alarm")
        sub = make_sub(topic, max_in_flight=10)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(5)])
        private_rabbit_up.ctl("set_vm_memory_high_watermark", "0.0000001")
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                await publish(adapter, make_msg(topic, "blocked"))
            assert time.monotonic() - started < 5
            got = await receive_n(adapter, sub, 5)
            assert sorted(d.message.data for d in got) == [0, 1, 2, 3, 4]
            with pytest.raises(BackendUnavailableError):
                await adapter.retry_at(got[0], now_ms() + 10)
            await adapter.ack(got[1:])
            [again] = await receive_n(adapter, sub, 1, within=10)  # handed back, same attempt
            assert (again.message.id, again.attempt) == (got[0].message.id, 1)
            await adapter.ack([again])
        finally:
            private_rabbit_up.ctl("set_vm_memory_high_watermark", "0.4")
        await eventually(lambda: _publish_works(adapter, topic), within=30)


async def _publish_works(adapter: RabbitMQAdapter, topic: str) -> bool:
    try:
        await publish(adapter, make_msg(topic, "after-alarm"))
    except BackendUnavailableError:
        return False
    return True
