"""Real ``hookline serve`` processes on one RabbitMQ: shared work, and a SIGKILL mid-delivery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from tests.process import (
    BothConsume,
    HoldsLeases,
    Serve,
    ServeProcess,
    check_sigkill_mid_delivery_loses_nothing,
    check_two_processes_share_work,
    delivered,
    serving,
    until,
    write_config,
)
from tests.rabbitmq.conftest import OpenAdapter
from tests.receiver import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def serve(tmp_path: Path, rabbit_config: dict[str, Any]) -> Iterator[Serve]:
    config = write_config(
        tmp_path / "config.yaml", "modules::queue::RabbitMQAdapter", rabbit_config
    )
    with serving(config, tmp_path) as start:
        yield start


async def consumer_count(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


@pytest.fixture
def both_consume(open_rabbit: OpenAdapter, rabbit_config: dict[str, Any]) -> BothConsume:
    """Both processes consume the subscription's queue."""

    async def wait(topic: str, sub_id: str) -> None:
        async with open_rabbit() as inspector:
            assert await inspector.get_subscription(sub_id) is not None
            queue = inspector.subscription_queue(sub_id)
            assert queue is not None

        async def two() -> bool:
            return await consumer_count(rabbit_config["amqp_url"], queue) >= 2

        await until(two, what=f"two consumers on {queue}")

    return wait


@pytest.fixture
def holds_leases(receiver: Receiver) -> HoldsLeases:
    """The process has delivered, and more requests are under way than were completed.

    RabbitMQ does not say which consumer holds an unacked message, so this reads the
    process's metrics against what the receiver saw.
    """

    async def check(process: ServeProcess, topic: str, sub_id: str) -> bool:
        done = await delivered(process, sub_id)
        return done > 0 and len(receiver.requests("/slow")) > done

    return check


async def test_two_processes_share_work_and_deliver_each_message_once(
    serve: Serve, receiver: Receiver, both_consume: BothConsume
) -> None:
    await check_two_processes_share_work(serve, receiver, both_consume)


async def test_sigkill_mid_delivery_loses_nothing(
    serve: Serve, receiver: Receiver, both_consume: BothConsume, holds_leases: HoldsLeases
) -> None:
    await check_sigkill_mid_delivery_loses_nothing(serve, receiver, both_consume, holds_leases)
