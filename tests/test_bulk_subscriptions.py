"""Creating many subscriptions costs registry reads linear in their number (issue 11).

Each local change used to make the dispatcher re-read (and compare) the whole registry,
so creating N subscriptions read O(N^2) definitions: 10,000 took minutes on Redis. Now a
change is followed through the registry's change log, one definition per change. Counted
(not timed) through the API on every adapter, with the running app's own adapter.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest

from app.core.models import Subscription
from tests.backends import ADAPTER_KINDS, unique
from tests.harness import eventually, running_hookline

COUNT = {"builtin": 2000, "sqlite": 2000, "redis": 2000, "rabbitmq": 500}
"""Subscriptions created per adapter (RabbitMQ declares a queue for each: fewer)."""


class ReadCounter:
    """Counts the subscription definitions the adapter hands out, by call."""

    def __init__(self, adapter: Any) -> None:
        self.listed = 0
        self.lists = 0
        self.gets = 0
        listing, getting = adapter.list_subscriptions, adapter.get_subscription

        async def list_subscriptions(topic: str | None = None) -> list[Subscription]:
            found: list[Subscription] = await listing(topic)
            self.lists += 1
            self.listed += len(found)
            return found

        async def get_subscription(subscription_id: str) -> Subscription | None:
            self.gets += 1
            found: Subscription | None = await getting(subscription_id)
            return found

        adapter.list_subscriptions = list_subscriptions
        adapter.get_subscription = get_subscription

    @property
    def read(self) -> int:
        return self.listed + self.gets


@pytest.mark.parametrize("kind", ADAPTER_KINDS)
async def test_creating_n_subscriptions_reads_o_of_n_definitions(kind: str) -> None:
    count = COUNT[kind]
    async with running_hookline(kind) as hookline:
        counter = ReadCounter(hookline.runtime.adapter)
        prefix = unique("bulk")
        semaphore = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            body = {"id": f"{prefix}-{i}", "topic": f"{prefix}.{i}", "url": "http://127.0.0.1:9/"}
            deadline = time.monotonic() + 60
            async with semaphore:
                response = await hookline.client.post("/v1/subscriptions", json=body)
                # A 503 (a connection to the broker not made in time while 2,000 new
                # workers open theirs, on a loaded machine) is an answer to retry, as the SDK does.
                while response.status_code == 503 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # client back-off before the retry
                    response = await hookline.client.post("/v1/subscriptions", json=body)
            assert response.status_code == 201, response.text

        await asyncio.gather(*(create(i) for i in range(count)))
        workers = hookline.runtime.dispatcher._workers
        await eventually(lambda: all(f"{prefix}-{i}" in workers for i in range(count)), within_s=60)
        # One read per created subscription and a little slack (the API's own reads, a
        # full read at start or after a gap); the quadratic way read ~N^2/32 here.
        assert counter.read <= 3 * count + 100, (counter.lists, counter.listed, counter.gets)
        assert counter.listed <= count, (counter.lists, counter.listed)
        # The new workers' long-lived state was moved out of the collector's way.
        assert hookline.runtime.dispatcher.heap.freezes >= 1
        gc.unfreeze()  # give the test process its usual collector back
        for i in range(count):
            assert (await hookline.client.delete(f"/v1/subscriptions/{prefix}-{i}")).is_success
