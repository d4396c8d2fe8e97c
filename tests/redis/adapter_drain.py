"""Adapter-only drain rate: ``python -m tests.redis.adapter_drain [N] [max_count]``.

Publishes N x ~1 KB messages (batches of 1000) behind one subscription, then leases and
acks them in one loop, as the dispatcher does, but with no HTTP in between: what the
Redis adapter alone costs per delivery. Uses a throwaway key prefix on HOOKLINE_TEST_REDIS_URL
(default the local Redis) and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import sys
import time

from app.adapters.redis import RedisAdapter
from app.core.ports import OutgoingMessage
from tests.backend_redis import isolated_redis_config
from tests.backends import REDIS_URL
from tests.redis.helpers import make_msg, make_sub


async def main(n: int, max_count: int) -> None:
    async with isolated_redis_config(REDIS_URL) as config:
        adapter = RedisAdapter.from_config(config)
        await adapter.start()
        try:
            topic = "bench.drain"
            sub = make_sub(topic, max_in_flight=max_count)
            await adapter.create_subscription(sub)
            payload = {"text": "x" * 1000}
            started = time.perf_counter()
            for i in range(0, n, 1000):
                batch = [make_msg(topic, {**payload, "n": j}) for j in range(i, min(n, i + 1000))]
                await adapter.publish([OutgoingMessage(m) for m in batch])
            published = time.perf_counter() - started
            cpu0, started = time.process_time(), time.perf_counter()
            done = 0
            while done < n:
                leased = await adapter.receive(sub, max_count, 500)
                await adapter.ack(leased)
                done += len(leased)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
            print(f"published {n} in {published:.2f}s ({n / published:,.0f}/s)")
            print(
                f"drained {n} in {seconds:.2f}s ({n / seconds:,.0f} deliveries/s, "
                f"max_count={max_count}, {cpu / n * 1e6:.0f} us CPU per delivery in Python)"
            )
        finally:
            await adapter.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [50_000, 64][len(args) :])))
