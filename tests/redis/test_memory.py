"""A full Redis (maxmemory + noeviction): publishes get 503s, deliveries keep draining."""

from __future__ import annotations

import time
from pathlib import Path

from app.adapters.redis import RedisAdapter
from app.core.errors import CapacityExceededError
from app.core.models import Delivery, now_ms
from tests.backends import unique
from tests.redis.helpers import make_msg, make_sub, publish, receive_n
from tests.redis.servers import RedisServer, require_binaries


async def test_full_redis_refuses_publishes_but_keeps_draining(tmp_path: Path) -> None:
    require_binaries("redis-server", "redis-cli")
    server = RedisServer(
        tmp_path / "redis", None, False, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction"
    )
    server.start()
    adapter = RedisAdapter.from_config(
        {"redis_url": server.url, "key_prefix": unique("hookline-test")}
    )
    await adapter.start()
    try:
        topic = "full"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "retry-me"))
        [first] = await receive_n(adapter, sub, 1)
        await adapter.retry_at(first, now_ms() + 100)  # falls due while Redis is full

        accepted = 0
        retried: list[Delivery] = []
        for i in range(10_000):
            try:
                await publish(adapter, make_msg(topic, {"n": i, "pad": "x" * 20_000}))
            except CapacityExceededError:  # a 503, not a 500
                break
            accepted += 1
        assert 10 < accepted < 10_000  # Redis filled up and refused the rest

        # leasing and acknowledging still work while Redis is full: that is what frees it
        drained: list[Delivery] = []
        deadline = time.monotonic() + 10
        while len({d.message.data["n"] for d in drained if d.attempt == 1}) < accepted:
            assert time.monotonic() < deadline
            batch = await adapter.receive(sub, 50, 100)
            drained += [d for d in batch if d.message.data != "retry-me"]
            retried += [d for d in batch if d.message.data == "retry-me"]
            await adapter.ack(batch)
        assert await adapter.maintenance.trim(topic) > 0

        # the retry that fell due meanwhile waited for room (or slipped in as acks freed
        # some): it is delivered either way, never lost
        if not retried:
            retried = await receive_n(adapter, sub, 1)
            await adapter.ack(retried)
        assert [(d.message.data, d.attempt) for d in retried] == [("retry-me", 2)]
        await publish(adapter, make_msg(topic, "room again"))
        [last] = await receive_n(adapter, sub, 1)
        assert last.message.data == "room again"
        await adapter.ack([last])
    finally:
        await adapter.close()
        server.kill()
