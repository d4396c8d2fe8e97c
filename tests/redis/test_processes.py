"""Real ``hookline serve`` processes on one Redis: shared work, crashes, ``--workers``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.adapters.redis.names import NameSpace
from tests.backends import unique
from tests.process import (
    BothConsume,
    HoldsLeases,
    Serve,
    ServeProcess,
    check_sigkill_mid_delivery_loses_nothing,
    check_two_processes_share_work,
    numbers,
    publish_batch,
    serving,
    subscribe,
    until,
    write_config,
)
from tests.receiver import Receiver
from tests.redis.servers import RedisServer, require_binaries

pytestmark = pytest.mark.slow

LEASES = {"visibility_timeout_ms": 1000, "lease_margin_ms": 500, "claim_interval_ms": 100}


@pytest.fixture
def config_path(tmp_path: Path, redis_config: dict[str, Any]) -> Path:
    return write_config(
        tmp_path / "config.yaml", "modules::queue::RedisAdapter", {**redis_config, **LEASES}
    )


@pytest.fixture
async def inspect(redis_config: dict[str, Any]) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_config["redis_url"], decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def serve(tmp_path: Path, config_path: Path) -> Iterator[Serve]:
    with serving(config_path, tmp_path) as start:
        yield start


async def consumers(
    inspect: Redis, redis_config: dict[str, Any], topic: str, sub_id: str
) -> dict[str, int]:
    """Consumer name -> pending count in the subscription's group on the topic stream."""
    stream = NameSpace(redis_config["key_prefix"]).topic(topic).stream
    try:
        rows = await inspect.xinfo_consumers(stream, sub_id)
    except Exception:
        return {}
    return {row["name"]: int(row["pending"]) for row in rows}


@pytest.fixture
def both_consume(inspect: Redis, redis_config: dict[str, Any]) -> BothConsume:
    """Both processes are consumers in the subscription's group."""

    async def wait(topic: str, sub_id: str) -> None:
        async def two() -> bool:
            return len(await consumers(inspect, redis_config, topic, sub_id)) >= 2

        await until(two, what=f"two consumers in {sub_id}")

    return wait


@pytest.fixture
def holds_leases(inspect: Redis, redis_config: dict[str, Any]) -> HoldsLeases:
    """The process's consumer (named ``host:pid:...``) has pending entries."""

    async def check(process: ServeProcess, topic: str, sub_id: str) -> bool:
        pending = await consumers(inspect, redis_config, topic, sub_id)
        return any(f":{process.process.pid}:" in name and n > 0 for name, n in pending.items())

    return check


async def test_two_processes_share_work_and_deliver_each_message_once_per_subscription(
    serve: Serve, receiver: Receiver, both_consume: BothConsume
) -> None:
    await check_two_processes_share_work(serve, receiver, both_consume)


async def test_sigkill_mid_delivery_loses_nothing(
    serve: Serve, receiver: Receiver, both_consume: BothConsume, holds_leases: HoldsLeases
) -> None:
    await check_sigkill_mid_delivery_loses_nothing(serve, receiver, both_consume, holds_leases)


async def test_workers_flag_shares_one_redis(serve: Serve, receiver: Receiver) -> None:
    process = await serve("--workers", "2")
    topic = "orders.workers"
    await subscribe(process, topic, receiver.url("/w"), max_in_flight=5)
    await publish_batch(process, topic, range(100))
    await receiver.wait_for(100, "/w", within_s=60)
    assert set(numbers(receiver, "/w")) == set(range(100))


async def test_serve_answers_503_while_redis_is_down_and_recovers(
    tmp_path: Path, receiver: Receiver
) -> None:
    require_binaries("redis-server", "redis-cli")
    redis = RedisServer(tmp_path / "redis")  # persistent (AOF), but not started yet
    adapter = {"redis_url": redis.url, "key_prefix": unique("hookline-test"), **LEASES}
    config = write_config(tmp_path / "down.yaml", "modules::queue::RedisAdapter", adapter)
    process = ServeProcess(config, tmp_path / "down.log")
    topic = "orders.outage"
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:

            async def status(method: str, path: str, **kw: Any) -> int:
                try:
                    return (await client.request(method, path, **kw)).status_code
                except httpx.TransportError:
                    return 0

            async def publish_status(n: int) -> int:
                return await status("POST", f"/v1/topics/{topic}/messages", json={"data": {"n": n}})

            await until(lambda: _is(status("GET", "/healthz"), 200), 60, "hookline serving")
            assert await status("GET", "/readyz") == 503
            assert await publish_status(-1) == 503  # down at start: refused, not a false 202
            assert process.log().count("redis unreachable") == 1

            redis.start()
            await until(lambda: _is(status("GET", "/readyz"), 200), 30, "ready once Redis is up")
            await subscribe(process, topic, receiver.url("/outage"))
            assert await publish_status(0) == 202
            await receiver.wait_for(1, "/outage")

            redis.kill()
            codes = {await publish_status(-2) for _ in range(3)}
            assert codes == {503}, codes  # never 500, never 202
            await until(lambda: _is(status("GET", "/readyz"), 503), 10, "not ready")

            redis.start()  # same data directory: the subscription is still there
            await until(lambda: _is(publish_status(1), 202), 30, "publishes accepted again")
            await receiver.wait_for(2, "/outage", within_s=30)
        assert set(numbers(receiver, "/outage")) == {0, 1}
        assert "Traceback" not in process.log()
    finally:
        process.close()
        redis.kill()


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)
