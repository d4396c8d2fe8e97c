"""Issue 12: script calls of one loop turn share a pipeline, each keeping its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import exceptions as rexc

from app.adapters.kit.settings import parse_settings
from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.connection import LuaScript, RedisConnection
from app.adapters.redis.settings import RedisSettings
from app.core.ports import OutgoingMessage
from tests.adapter_helpers import make_msg, make_sub
from tests.redis.conftest import OpenAdapter

INCR = LuaScript("test-incr", "return redis.call('INCR', KEYS[1])")


@pytest.fixture
async def connection(redis_config: dict[str, Any]) -> AsyncIterator[RedisConnection]:
    """A connection to the test Redis (keys under the test's own prefix)."""
    conn = RedisConnection(parse_settings(RedisSettings, redis_config))
    try:
        yield conn
    finally:
        await conn.close()


async def test_calls_of_one_turn_share_a_round_trip(
    connection: RedisConnection, redis_config: dict[str, Any]
) -> None:
    """50 concurrent calls: every reply is the caller's own, in far fewer round trips."""
    scripts = ScriptCoalescer(connection)
    prefix = redis_config["key_prefix"]
    replies = await asyncio.gather(
        *(scripts.run(INCR, [f"{prefix}:n{i % 5}"], []) for i in range(50))
    )
    assert sorted(replies) == sorted(list(range(1, 11)) * 5)
    assert scripts.round_trips < 10


async def test_one_failing_call_fails_alone(
    connection: RedisConnection, redis_config: dict[str, Any]
) -> None:
    """A call whose key has the wrong type gets its error; the others of its pipeline succeed."""
    prefix = redis_config["key_prefix"]
    await connection.client.set(f"{prefix}:text", "not a number")
    scripts = ScriptCoalescer(connection)
    good = [scripts.run(INCR, [f"{prefix}:ok{i}"], []) for i in range(5)]
    bad = scripts.run(INCR, [f"{prefix}:text"], [])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:5] == [1] * 5
    assert isinstance(results[5], rexc.ResponseError)
    assert scripts.round_trips == 1


async def test_concurrent_single_publishes_are_all_stored(open_redis: OpenAdapter) -> None:
    """The adapter's publishes go through the coalescer: 40 at once, 40 stored, in order."""
    async with open_redis() as adapter:
        await adapter.create_subscription(make_sub("coalesced"))
        messages = [OutgoingMessage(make_msg("coalesced", {"n": i})) for i in range(40)]
        await asyncio.gather(*(adapter.publish([m]) for m in messages))
        assert adapter.writer.scripts.round_trips < 40
        stream = adapter.names.topic("coalesced").stream
        entries = await adapter.connection.client.xrange(stream)
        assert len(entries) == 40
