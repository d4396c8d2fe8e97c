"""A real ``hookline serve`` on Redis with more subscriptions than the connection pool.

Issue 11, defect 1: each subscription's receive loop used to hold a Redis connection
(a blocking XREAD), so from the 513th subscription every Redis call answered 503, and
idle subscriptions kept the process busy. Receive loops now park on local events woken
by one pub/sub connection: the process stays responsive and idle, whatever the count.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.adapters.redis import RedisAdapter
from app.adapters.redis.names import NameSpace
from app.core.models import Subscription
from tests.backends import unique
from tests.process import Serve, ServeProcess, serving, until, write_config
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

SUBSCRIPTIONS = 1_100
"""More than the default ``max_connections`` (512) the defect showed at."""

IDLE_CPU_BOUND = 0.30
"""Fraction of a core an idle process may use here (generous: the bench holds 5 %)."""


@pytest.fixture
def config_path(tmp_path: Path, redis_config: dict[str, Any]) -> Path:
    return write_config(tmp_path / "config.yaml", "modules::queue::RedisAdapter", redis_config)


@pytest.fixture
def serve(tmp_path: Path, config_path: Path) -> Iterator[Serve]:
    with serving(config_path, tmp_path) as start:
        yield start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sockets(pid: int) -> int:
    """Open sockets of ``pid`` (its Redis connections among them)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


async def create_many(redis_config: dict[str, Any], url: str) -> list[Subscription]:
    """Register the subscriptions straight in the shared registry (the API is slower)."""
    adapter = RedisAdapter.from_config(redis_config)
    await adapter.start()
    try:
        subs = [
            Subscription(id=f"idle-{i}", topic=f"many.{i}", url=f"{url}/{i}")
            for i in range(SUBSCRIPTIONS)
        ]
        for start in range(0, len(subs), 100):
            await asyncio.gather(
                *(adapter.create_subscription(s) for s in subs[start : start + 100])
            )
        return subs
    finally:
        await adapter.close()


async def consuming(redis_config: dict[str, Any], process: ServeProcess) -> int:
    """Subscriptions whose group lists a consumer of ``process`` (its loop has leased)."""
    names = NameSpace(redis_config["key_prefix"])
    client = Redis.from_url(redis_config["redis_url"], decode_responses=True)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for i in range(SUBSCRIPTIONS):
                pipe.xinfo_consumers(names.topic(f"many.{i}").stream, f"idle-{i}")
            replies = await pipe.execute(raise_on_error=False)
    finally:
        await client.aclose()
    marker = f":{process.process.pid}:"
    return sum(
        1
        for rows in replies
        if isinstance(rows, list) and any(marker in row["name"] for row in rows)
    )


async def test_more_subscriptions_than_connections_stay_served_and_idle(
    serve: Serve, receiver: Receiver, redis_config: dict[str, Any]
) -> None:
    await create_many(redis_config, receiver.url("/many"))
    process = await serve()
    pid = process.process.pid

    async def all_consuming() -> bool:
        return await consuming(redis_config, process) == SUBSCRIPTIONS

    await until(all_consuming, within_s=120, what="a receive loop per subscription")
    assert sockets(pid) < 100, "Redis connections must not grow with subscriptions"

    # Idle: no traffic, yet every subscription has a loop; the process must rest.
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(4)  # the measurement window itself, not a synchronisation
    idle = (cpu_seconds(pid) - before) / (time.monotonic() - started)
    assert idle < IDLE_CPU_BOUND, f"idle process used {idle:.0%} of a core"

    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        assert (await client.get("/readyz")).status_code == 200
        # A publish to one of them is delivered promptly (no poll interval to wait out).
        sent = time.monotonic()
        reply = await client.post("/v1/topics/many.537/messages", json={"data": {"n": 537}})
        assert reply.status_code == 202, reply.text
        [request] = await receiver.wait_for(1, "/many/537", within_s=10)
        assert request.json()["data"] == {"n": 537}
        assert time.monotonic() - sent < 2.0
        # Subscription changes are answered and followed.
        created = await client.post(
            "/v1/subscriptions",
            json={"id": unique("late"), "topic": "many.late", "url": receiver.url("/late")},
        )
        assert created.status_code == 201, created.text
        late_id = created.json()["id"]
        paused = await client.post("/v1/subscriptions/idle-1/pause")
        assert paused.status_code == 200, paused.text
        reply = await client.post("/v1/topics/many.late/messages", json={"data": {"n": 1}})
        assert reply.status_code == 202, reply.text
        await receiver.wait_for(1, "/late", within_s=10)
        assert (await client.delete(f"/v1/subscriptions/{late_id}")).status_code == 204
        assert (await client.get("/v1/topics", params={"limit": 10})).status_code == 200

    # A second instance on the same registry starts and is ready.
    started = time.monotonic()
    second = await serve()
    assert time.monotonic() - started < 30
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
        assert (await client.get("/readyz")).status_code == 200
        reply = await client.post("/v1/topics/many.42/messages", json={"data": {"n": 42}})
        assert reply.status_code == 202, reply.text
    await receiver.wait_for(1, "/many/42", within_s=10)
