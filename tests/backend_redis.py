"""Isolation for Redis-backed tests (owned by the Redis adapter work).

Each test gets its own key prefix (``hookline-test-<hex>``); afterwards every key under it
is deleted with SCAN + DEL, so the shared Redis is left as it was found (no FLUSH).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tests.backends import unique


async def delete_prefix(redis_url: str, prefix: str, cluster: bool = False) -> int:
    """Delete every key under ``prefix:`` (all nodes of a cluster); returns how many."""
    client: Redis | RedisCluster = (
        RedisCluster.from_url(redis_url) if cluster else Redis.from_url(redis_url)
    )
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
        for key in batch:  # one by one: keys of different topics live in different slots
            deleted += int(await client.delete(key))
    finally:
        await client.aclose()
    return deleted


@asynccontextmanager
async def isolated_redis_config(redis_url: str, **extra: Any) -> AsyncIterator[dict[str, Any]]:
    """Yield a config with a unique key prefix; delete its keys afterwards."""
    prefix = unique("hookline-test")
    config: dict[str, Any] = {"redis_url": redis_url, "key_prefix": prefix, **extra}
    try:
        yield config
    finally:
        await delete_prefix(redis_url, prefix, cluster=bool(extra.get("cluster", False)))
