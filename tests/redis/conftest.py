"""Fixtures of the Redis adapter tests: isolated adapters, private servers, a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.adapters.redis import RedisAdapter
from tests.backend_redis import isolated_redis_config
from tests.backends import REDIS_URL, require_backend
from tests.redis.servers import RedisClusterNodes, RedisServer, require_binaries

OpenAdapter = Callable[..., AbstractAsyncContextManager[RedisAdapter]]


@pytest.fixture
async def redis_config() -> AsyncIterator[dict[str, Any]]:
    """A config with a key prefix of its own on the shared Redis (keys deleted after)."""
    require_backend("redis")
    async with isolated_redis_config(REDIS_URL) as config:
        yield config


@pytest.fixture
def open_redis(redis_config: dict[str, Any]) -> OpenAdapter:
    """Open started adapters on the test's prefix (several = several processes)."""

    @asynccontextmanager
    async def opener(**overrides: Any) -> AsyncIterator[RedisAdapter]:
        adapter = RedisAdapter.from_config({**redis_config, **overrides})
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()

    return opener


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A persistent redis-server of this test's own, killed by pid afterwards."""
    require_binaries("redis-server", "redis-cli")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A real 3-node Redis Cluster on loopback ports, for the whole session."""
    require_binaries("redis-server", "redis-cli")
    cluster = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
