"""Real ``hookline serve`` processes on one RabbitMQ: shared work, and a SIGKILL mid-delivery."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from tests.process import ServeProcess, write_config
from tests.rabbitmq.conftest import OpenAdapter
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def serve(tmp_path: Path, rabbit_config: dict[str, Any]) -> Iterator[Any]:
    config = write_config(
        tmp_path / "config.yaml", "modules::queue::RabbitMQAdapter", rabbit_config
    )
    started: list[ServeProcess] = []

    async def start(*args: str) -> ServeProcess:
        process = ServeProcess(config, tmp_path / f"serve{len(started)}.log", *args)
        started.append(process)
        await asyncio.to_thread(process.wait_ready)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


async def until(
    condition: Callable[[], Awaitable[bool]], within_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {within_s}s"
        await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait


async def consumer_count(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def delivered(process: ServeProcess, sub_id: str) -> float:
    text = (await asyncio.to_thread(httpx.get, f"{process.url}/metrics", timeout=5)).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hookline_deliveries_total{") and f'subscription="{sub_id}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def subscribe(process: ServeProcess, topic: str, url: str, **extra: Any) -> str:
    async with httpx.AsyncClient(base_url=process.url) as client:
        body = {"topic": topic, "url": url, **extra}
        response = await client.post("/v1/subscriptions", json=body)
        assert response.status_code == 201, response.text
        sub_id: str = response.json()["id"]
        return sub_id


async def publish_batch(process: ServeProcess, topic: str, values: range) -> None:
    async with httpx.AsyncClient(base_url=process.url) as client:
        body = {"messages": [{"data": {"n": n}} for n in values]}
        response = await client.post(f"/v1/topics/{topic}/messages/batch", json=body)
        assert response.status_code == 202, response.text


def numbers(receiver: Receiver, path: str) -> Counter[int]:
    return Counter(r.json()["data"]["n"] for r in receiver.requests(path))


async def both_consume(open_rabbit: OpenAdapter, amqp_url: str, *sub_ids: str) -> None:
    """Wait until both processes consume every subscription's queue."""
    async with open_rabbit() as inspector:
        for sub_id in sub_ids:
            assert await inspector.get_subscription(sub_id) is not None
            queue = inspector.subscription_queue(sub_id)
            assert queue is not None

            async def two(queue: str = queue) -> bool:
                return await consumer_count(amqp_url, queue) >= 2

            await until(two, what=f"two consumers on {queue}")


async def test_two_processes_share_work_and_deliver_each_message_once(
    serve: Any, receiver: Receiver, open_rabbit: OpenAdapter, rabbit_config: dict[str, Any]
) -> None:
    first, second = await serve(), await serve()
    receiver.default("/a", Reply(delay_s=0.01))
    receiver.default("/b", Reply(delay_s=0.01))
    topic = "orders.shared"
    sub_a = await subscribe(first, topic, receiver.url("/a"), max_in_flight=8)
    sub_b = await subscribe(second, topic, receiver.url("/b"), max_in_flight=8)
    await both_consume(open_rabbit, rabbit_config["amqp_url"], sub_a, sub_b)
    await publish_batch(first, topic, range(150))
    await publish_batch(second, topic, range(150, 300))

    await receiver.wait_for(300, "/a", within_s=30)
    await receiver.wait_for(300, "/b", within_s=30)
    for sub_id in (sub_a, sub_b):

        async def caught_up(sub_id: str = sub_id) -> bool:
            return await delivered(first, sub_id) + await delivered(second, sub_id) == 300

        await until(caught_up, what="metrics caught up")
        shares = [await delivered(first, sub_id), await delivered(second, sub_id)]
        assert all(share > 0 for share in shares), shares  # both processes did work
    assert numbers(receiver, "/a") == Counter(range(300))  # each exactly once
    assert numbers(receiver, "/b") == Counter(range(300))


async def test_sigkill_mid_delivery_loses_nothing(
    serve: Any, receiver: Receiver, open_rabbit: OpenAdapter, rabbit_config: dict[str, Any]
) -> None:
    doomed, survivor = await serve(), await serve()
    receiver.default("/slow", Reply(delay_s=0.3))
    topic = "orders.crash"
    sub_id = await subscribe(doomed, topic, receiver.url("/slow"), max_in_flight=10)
    await both_consume(open_rabbit, rabbit_config["amqp_url"], sub_id)
    await publish_batch(doomed, topic, range(60))

    async def doomed_mid_delivery() -> bool:
        done = await delivered(doomed, sub_id) + await delivered(survivor, sub_id)
        return await delivered(doomed, sub_id) > 0 and len(receiver.requests("/slow")) > done

    await until(doomed_mid_delivery, what="the doomed process delivering")
    doomed.kill()  # SIGKILL: its unacked messages go back to the queue

    async def all_arrived() -> bool:
        return set(numbers(receiver, "/slow")) == set(range(60))

    await until(all_arrived, within_s=30, what="every message delivered")  # duplicates allowed
