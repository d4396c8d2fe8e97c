"""Redis down at start and Redis killed mid-run: 503s meanwhile, nothing accepted lost."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from app.adapters.redis import RedisAdapter
from app.core.errors import BackendUnavailableError
from app.core.models import Delivery, now_ms
from tests.backends import unique
from tests.redis.helpers import make_msg, make_sub, publish, receive_n
from tests.redis.servers import RedisServer, require_binaries

FAST = {"visibility_timeout_ms": 300, "lease_margin_ms": 0, "claim_interval_ms": 20}


def config_for(server: RedisServer, **extra: object) -> dict[str, object]:
    """A private server is thrown away after the test: no key clean-up needed."""
    return {"redis_url": server.url, "key_prefix": unique("hookline-test"), **extra}


async def eventually_reachable(adapter: RedisAdapter, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await adapter.ping():
        assert time.monotonic() < deadline, "redis did not come back"
        await asyncio.sleep(0.02)  # polling interval of a deadline-bounded wait


async def test_start_while_redis_is_down_then_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binaries("redis-server", "redis-cli")
    server = RedisServer(tmp_path / "redis")  # not started yet
    caplog.set_level(logging.INFO, logger="hookline.redis")
    adapter = RedisAdapter.from_config(config_for(server))
    try:
        await adapter.start()  # must not raise
        assert await adapter.ping() is False
        topic = "early"
        sub = make_sub(topic)
        with pytest.raises(BackendUnavailableError):
            await adapter.create_subscription(sub)
        with pytest.raises(BackendUnavailableError):
            await publish(adapter, make_msg(topic, "refused"))
        started = time.monotonic()
        assert await adapter.receive(sub, 10, 200) == []  # waits, never raises
        assert time.monotonic() - started >= 0.15
        unreachable = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert len(unreachable) == 1, [r.getMessage() for r in caplog.records]
        assert "/readyz" in unreachable[0].getMessage()

        server.start()
        await eventually_reachable(adapter)
        assert any("redis reachable" in r.getMessage() for r in caplog.records)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "accepted"))
        [delivery] = await receive_n(adapter, sub, 1)
        assert delivery.message.data == "accepted"
        await adapter.ack([delivery])
    finally:
        await adapter.close()
        server.kill()


async def test_redis_killed_and_restarted_mid_run_loses_nothing_accepted(
    private_redis: RedisServer,
) -> None:
    adapter = RedisAdapter.from_config(config_for(private_redis, **FAST))
    await adapter.start()
    try:
        await eventually_reachable(adapter)
        topic = "outage"
        sub = make_sub(topic, timeout_ms=100)
        await adapter.create_subscription(sub)
        accepted = list(range(20))
        await publish(adapter, *[make_msg(topic, i) for i in accepted])
        leased = await receive_n(adapter, sub, 10)
        acked, unacked = leased[:5], leased[5:]
        await adapter.ack(acked)

        private_redis.kill()
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            await publish(adapter, make_msg(topic, "refused"))
        assert time.monotonic() - started < 2  # a prompt 503, not a hang
        with pytest.raises(BackendUnavailableError):
            await adapter.ack(unacked)
        assert await adapter.receive(sub, 10, 100) == []
        assert await adapter.ping() is False

        private_redis.start()  # same port, same data directory (AOF)
        await eventually_reachable(adapter)
        more = list(range(20, 30))
        await publish(adapter, *[make_msg(topic, i) for i in more])
        accepted += more

        delivered: list[Delivery] = []
        deadline = time.monotonic() + 10
        expected = set(accepted) - {d.message.data for d in acked}
        while not expected <= {d.message.data for d in delivered}:
            assert time.monotonic() < deadline, sorted({d.message.data for d in delivered})
            batch = await adapter.receive(sub, 50, 100)
            delivered += batch
            await adapter.ack(batch)
        assert "refused" not in {d.message.data for d in delivered}
        assert not {d.message.data for d in acked} & {d.message.data for d in delivered}
    finally:
        await adapter.close()


async def test_retries_scheduled_before_a_redis_restart_still_fire(
    private_redis: RedisServer,
) -> None:
    adapter = RedisAdapter.from_config(config_for(private_redis))
    await adapter.start()
    try:
        await eventually_reachable(adapter)
        topic = "outage-retry"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "again"))
        [first] = await receive_n(adapter, sub, 1)
        await adapter.retry_at(first, now_ms() + 300)
        private_redis.kill()
        private_redis.start()
        await eventually_reachable(adapter)
        [second] = await receive_n(adapter, sub, 1)
        assert (second.message.data, second.attempt) == ("again", 2)
        await adapter.ack([second])
    finally:
        await adapter.close()
