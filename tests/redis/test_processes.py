"""Real ``hookline serve`` processes on one Redis: shared work, crashes, ``--workers``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.adapters.redis.names import NameSpace
from tests.backends import unique
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver, Reply
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
def serve(tmp_path: Path, config_path: Path) -> Iterator[Any]:
    started: list[ServeProcess] = []

    async def start(*args: str) -> ServeProcess:
        process = ServeProcess(config_path, tmp_path / f"serve{len(started)}.log", *args)
        started.append(process)
        await asyncio.to_thread(process.wait_ready, 60.0)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


async def until(condition: Any, within_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {within_s}s"
        await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait


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


async def delivered(process: ServeProcess, sub_id: str) -> float:
    text = (await asyncio.to_thread(httpx.get, f"{process.url}/metrics", timeout=5)).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hookline_deliveries_total{") and f'subscription="{sub_id}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def subscribe(process: ServeProcess, topic: str, url: str, **extra: Any) -> str:
    async with httpx.AsyncClient(base_url=process.url) as client:
        response = await client.post(
            "/v1/subscriptions", json={"topic": topic, "url": url, **extra}
        )
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


async def test_two_processes_share_work_and_deliver_each_message_once_per_subscription(
    serve: Any, receiver: Receiver, inspect: Redis, redis_config: dict[str, Any]
) -> None:
    first, second = await serve(), await serve()
    receiver.default("/a", Reply(delay_s=0.01))
    receiver.default("/b", Reply(delay_s=0.01))
    topic = "orders.shared"
    sub_a = await subscribe(first, topic, receiver.url("/a"), max_in_flight=8)
    sub_b = await subscribe(second, topic, receiver.url("/b"), max_in_flight=8)
    for sub_id in (sub_a, sub_b):  # both processes follow both subscriptions
        await until(
            lambda s=sub_id: _count(consumers(inspect, redis_config, topic, s), 2),
            what=f"two consumers in {sub_id}",
        )
    await publish_batch(first, topic, range(150))
    await publish_batch(second, topic, range(150, 300))

    await receiver.wait_for(300, "/a", within_s=30)
    await receiver.wait_for(300, "/b", within_s=30)
    for sub_id in (sub_a, sub_b):
        await until(
            lambda s=sub_id: _sum_is(delivered(first, s), delivered(second, s), 300),
            what="metrics caught up",
        )
        shares = [await delivered(first, sub_id), await delivered(second, sub_id)]
        assert all(share > 0 for share in shares), shares  # both processes did work
    assert numbers(receiver, "/a") == Counter(range(300))  # each exactly once
    assert numbers(receiver, "/b") == Counter(range(300))


async def test_sigkill_mid_delivery_loses_nothing(
    serve: Any, receiver: Receiver, inspect: Redis, redis_config: dict[str, Any]
) -> None:
    doomed, _survivor = await serve(), await serve()
    receiver.default("/slow", Reply(delay_s=0.3))
    topic = "orders.crash"
    sub_id = await subscribe(
        doomed, topic, receiver.url("/slow"), max_in_flight=10, timeout_ms=1000
    )
    await until(
        lambda: _count(consumers(inspect, redis_config, topic, sub_id), 2),
        what="two consumers",
    )
    await publish_batch(doomed, topic, range(60))
    pid = doomed.process.pid

    async def doomed_holds_leases() -> bool:
        pending = await consumers(inspect, redis_config, topic, sub_id)
        return any(f":{pid}:" in name and n > 0 for name, n in pending.items())

    await until(doomed_holds_leases, what="the doomed process holding leases")
    doomed.kill()  # SIGKILL mid-delivery: its leases are never ended

    async def all_arrived() -> bool:
        return set(numbers(receiver, "/slow")) == set(range(60))

    await until(all_arrived, within_s=30, what="every message delivered")  # duplicates allowed


async def test_workers_flag_shares_one_redis(serve: Any, receiver: Receiver) -> None:
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


async def _count(pending: Any, wanted: int) -> bool:
    return len(await pending) >= wanted


async def _sum_is(a: Any, b: Any, total: int) -> bool:
    return bool(await a + await b == total)
