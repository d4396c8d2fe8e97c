"""Issue 12: script calls of one loop turn share a pipeline, each keeping its own outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import exceptions as rexc

from app.adapters.kit.settings import parse_settings
from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.connection import LuaScript, RedisConnection
from app.adapters.redis.settings import RedisSettings
from app.core.errors import BackendUnavailableError
from app.core.ports import OutgoingMessage
from tests.adapter_helpers import make_msg, make_sub
from tests.redis.conftest import OpenAdapter
from tests.redis.servers import RedisServer

INCR = LuaScript("test-incr", "return redis.call('INCR', KEYS[1])")


@pytest.fixture
async def connection(redis_config: dict[str, Any]) -> AsyncIterator[RedisConnection]:
    """A connection to the test Redis (keys under the test's own prefix)."""
    conn = RedisConnection(parse_settings(RedisSettings, redis_config))
    try:
        yield conn
    finally:
        await conn.close()


def _coalescer(connection: RedisConnection, path: str) -> ScriptCoalescer:
    """The coalescer on its own connection (``mux``) or on redis-py's pipelines (TLS)."""
    scripts = ScriptCoalescer(connection)
    if path == "pipeline":
        scripts._mux = None  # what a rediss:// URL gets
    return scripts


PATHS = pytest.mark.parametrize("path", ["mux", "pipeline"])


@PATHS
async def test_calls_of_one_turn_share_a_round_trip(
    connection: RedisConnection, redis_config: dict[str, Any], path: str
) -> None:
    """50 concurrent calls: every reply is the caller's own, in far fewer round trips."""
    scripts = _coalescer(connection, path)
    prefix = redis_config["key_prefix"]
    replies = await asyncio.gather(
        *(scripts.run(INCR, [f"{prefix}:n{i % 5}"], []) for i in range(50))
    )
    assert sorted(replies) == sorted(list(range(1, 11)) * 5)
    assert scripts.round_trips < 10


@PATHS
async def test_one_failing_call_fails_alone(
    connection: RedisConnection, redis_config: dict[str, Any], path: str
) -> None:
    """A call whose key has the wrong type gets its error; the others of its pipeline succeed."""
    prefix = redis_config["key_prefix"]
    await connection.client.set(f"{prefix}:text", "not a number")
    scripts = _coalescer(connection, path)
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
        assert adapter.scripts.round_trips < 40
        stream = adapter.names.topic("coalesced").stream
        entries = await adapter.connection.client.xrange(stream)
        assert len(entries) == 40


@PATHS
async def test_a_script_redis_does_not_know_is_loaded_on_the_way(
    connection: RedisConnection, path: str
) -> None:
    """NOSCRIPT in a batch (Redis restarted, or a new script): that call is retried with EVAL."""
    scripts = _coalescer(connection, path)
    fresh = LuaScript("test-fresh", f"return '{uuid.uuid4().hex}' .. ARGV[1]")
    replies = await asyncio.gather(*(scripts.run(fresh, [], [str(i)]) for i in range(3)))
    assert [r[-1] for r in replies] == ["0", "1", "2"]


async def test_a_failed_round_trip_fails_every_call_as_unavailable(
    private_redis: RedisServer,
) -> None:
    """Redis gone: each caller of the batch gets the adapter's 503 error, then it recovers."""
    conn = RedisConnection(parse_settings(RedisSettings, {"redis_url": private_redis.url}))
    scripts = ScriptCoalescer(conn)
    try:
        assert await scripts.run(INCR, ["n"], []) == 1
        private_redis.kill()
        results = await asyncio.gather(
            *(scripts.run(INCR, ["n"], []) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, BackendUnavailableError) for r in results)
        private_redis.start()
        assert await scripts.run(INCR, ["n"], []) == 2  # the AOF kept the first one
    finally:
        await scripts.close()
        await conn.close()


async def test_a_call_that_cannot_be_encoded_fails_alone(
    connection: RedisConnection, redis_config: dict[str, Any]
) -> None:
    prefix = redis_config["key_prefix"]
    scripts = ScriptCoalescer(connection)
    await scripts.run(INCR, [f"{prefix}:warm"], [])  # connected: calls are written at once
    good = scripts.run(INCR, [f"{prefix}:enc"], [])
    bad = scripts.run(INCR, [f"{prefix}:enc"], [True])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], rexc.DataError)
