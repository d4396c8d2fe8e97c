"""Ordering keys across real ``hookline serve`` processes sharing Redis, RabbitMQ or SQLite:
order holds with two instances, and when the one delivering is SIGKILLed mid-way (a
redelivery may repeat a message, never reorder)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import isolated_adapter_config, unique
from tests.process import Serve, ServeProcess, delivered, serving, subscribe, until, write_config
from tests.receiver import Receiver, Reply
from tests.semantics.ordering_checks import assert_in_publish_order, first_successes, keyed_batches

pytestmark = pytest.mark.slow

KEYS, PER_KEY = 20, 50
RETRY = {"max_retries": 100, "retry_delay_ms": 20, "backoff": "fixed", "jitter": 0}
FAST_LEASES: dict[str, dict[str, Any]] = {
    "redis": {"visibility_timeout_ms": 1000, "lease_margin_ms": 500, "claim_interval_ms": 100},
    "sqlite": {"visibility_timeout_ms": 1000, "lease_margin_ms": 500, "poll_interval_ms": 20},
    "rabbitmq": {},
}


@pytest.fixture(params=["redis", "rabbitmq", "sqlite"])
async def adapter_config(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Any]]:
    kind = str(request.param)
    async with isolated_adapter_config(kind) as config:
        yield kind, {**config, **FAST_LEASES[kind]}


@pytest.fixture
def serve(tmp_path: Path, adapter_config: tuple[str, dict[str, Any]]) -> Iterator[Serve]:
    kind, config = adapter_config
    path = write_config(tmp_path / "config.yaml", kind, config)
    with serving(path, tmp_path) as start:
        yield start


async def _publish_alternating(processes: list[ServeProcess], topic: str) -> None:
    """Every key's messages, in batches sent through each process in turn (in order)."""
    for index, batch in enumerate(keyed_batches(KEYS, PER_KEY)):
        process = processes[index % len(processes)]
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
            response = await client.post(
                f"/v1/topics/{topic}/messages/batch", json={"messages": batch}
            )
            assert response.status_code == 202, response.text


def _successes(receiver: Receiver) -> int:
    return sum(len(seqs) for seqs in first_successes(receiver.requests("/hook")).values())


async def _ordered_subscription(first: ServeProcess, second: ServeProcess, url: str) -> str:
    topic = unique("ordered")
    sub_id = await subscribe(
        first, topic, url, ordering="key", max_in_flight=10, timeout_ms=2000, retry=RETRY
    )
    async with httpx.AsyncClient(base_url=second.url) as client:

        async def known() -> bool:
            return (await client.get(f"/v1/subscriptions/{sub_id}")).status_code == 200

        await until(known, what="the subscription seen by the second process")
    return topic


async def test_order_holds_with_two_processes(serve: Serve, receiver: Receiver) -> None:
    """Two processes, 20 keys x 50 messages, 20 % failures: per-key order holds, and one
    process (the subscription's owner) delivers at a time.
    """
    first, second = await serve(), await serve()
    receiver.fail_randomly("/hook", 0.2)
    topic = await _ordered_subscription(first, second, receiver.url())
    await _publish_alternating([first, second], topic)
    await until(lambda: _async(_successes(receiver) == KEYS * PER_KEY), 60, "all delivered")
    assert_in_publish_order(receiver.requests("/hook"), KEYS, PER_KEY)


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_order_holds_across_the_end_of_the_owner(
    serve: Serve, receiver: Receiver, how: str
) -> None:
    """The process delivering an ordered subscription is SIGKILLed (or stopped) mid-way:
    the other one takes over its unsettled messages first, and every key's order holds.
    """
    first, second = await serve(), await serve()
    receiver.fail_randomly("/hook", 0.2)
    receiver.default("/hook", Reply(delay_s=0.02))
    topic = await _ordered_subscription(first, second, receiver.url())
    sub_id = (await _subscription_of(first, topic))["id"]
    await _publish_alternating([first, second], topic)
    await until(lambda: _async(_successes(receiver) >= 300), 60, "a third delivered")
    counts = [await delivered(p, sub_id) for p in (first, second)]
    owner, survivor = (first, second) if counts[0] >= counts[1] else (second, first)
    assert min(counts) == 0, counts  # one owner delivered everything so far
    if how == "sigkill":
        owner.kill()
    else:
        code = await asyncio.to_thread(owner.terminate)  # hands its leases back
        assert code in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    killed_at = _successes(receiver)
    assert killed_at < KEYS * PER_KEY
    await until(lambda: _async(_successes(receiver) == KEYS * PER_KEY), 90, "all delivered")
    assert await delivered(survivor, sub_id) > 0
    assert_in_publish_order(receiver.requests("/hook"), KEYS, PER_KEY)


async def _subscription_of(process: ServeProcess, topic: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=process.url) as client:
        listed = (await client.get("/v1/subscriptions", params={"topic": topic})).json()
    [subscription] = listed["subscriptions"]
    found: dict[str, Any] = subscription
    return found


async def _async(value: bool) -> bool:
    return value
