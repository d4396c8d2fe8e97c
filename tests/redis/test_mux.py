"""The adapter's own pipelined connection: replies in order, AUTH and SELECT from the URL,
timeouts and losses fail what is in flight, and the next call reconnects."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from redis import exceptions as rexc

from app.adapters.kit.settings import parse_settings
from app.adapters.redis.mux import RedisMux, pack, supported
from app.adapters.redis.settings import RedisSettings
from tests.redis.servers import RedisServer, cli, require_binaries


def _mux(url: str, **extra: Any) -> RedisMux:
    return RedisMux(parse_settings(RedisSettings, {"redis_url": url, **extra}))


def test_pack_is_resp_as_redis_py_writes_it() -> None:
    assert pack(["SET", "k", "vé", 3, 1.5]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\xc3\xa9\r\n$1\r\n3\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(rexc.DataError):
        pack(["SET", "k", True])


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("redis://127.0.0.1:6379/13", True),
        ("redis://user:pw@h:1/2", True),
        ("unix:///tmp/redis.sock?db=3", True),
        ("rediss://h:6380/0", False),
        ("redis://h:1/0?socket_keepalive=true", False),
    ],
)
def test_only_plain_urls_use_it(url: str, ok: bool) -> None:
    assert supported(parse_settings(RedisSettings, {"redis_url": url})) is ok


async def test_replies_in_order_with_errors_in_place(redis_config: dict[str, Any]) -> None:
    mux = _mux(redis_config["redis_url"])
    key = f"{redis_config['key_prefix']}:mux"
    try:
        first, second = await asyncio.gather(
            mux.execute(pack(["SET", key, "1"]) + pack(["INCR", key]), 2),
            mux.execute(pack(["HGET", key, "f"]) + pack(["INCR", key]) + pack(["GET", key]), 3),
        )
        assert first == ["OK", 2]
        assert isinstance(second[0], rexc.ResponseError)  # WRONGTYPE, in its place
        assert second[1:] == [3, "3"]
        assert mux.writes == 2
    finally:
        await mux.close()


@pytest.fixture
def secured_redis(tmp_path: Path) -> Any:
    """A private redis-server with a password, killed by pid afterwards."""
    require_binaries("redis-server", "redis-cli")
    server = RedisServer(tmp_path / "redis", None, False, "--requirepass", "s3cret")
    server.start = _start_with_password(server)  # type: ignore[method-assign]
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _start_with_password(server: RedisServer) -> Any:
    import subprocess

    from tests.redis.servers import wait_until

    def start() -> None:
        args = ["redis-server", "--port", str(server.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(server.directory), "--save", "", "--appendonly", "no"]
        log = (server.directory / "redis.log").open("ab")
        server.process = subprocess.Popen([*args, *server.extra], stdout=log, stderr=log)
        wait_until(
            lambda: cli(server.port, "-a", "s3cret", "--no-auth-warning", "ping") == "PONG",
            10,
            f"redis on {server.port}",
        )

    return start


async def test_auth_and_db_from_the_url(secured_redis: RedisServer) -> None:
    good = _mux(f"redis://:s3cret@127.0.0.1:{secured_redis.port}/3")
    try:
        assert await good.execute(pack(["SET", "where", "db3"]), 1) == ["OK"]
    finally:
        await good.close()
    in_db3 = cli(secured_redis.port, "-a", "s3cret", "--no-auth-warning", "-n", "3", "get", "where")
    assert in_db3 == "db3"
    bad = _mux(f"redis://:wrong@127.0.0.1:{secured_redis.port}/0")
    try:
        with pytest.raises(rexc.ConnectionError):
            await bad.execute(pack(["PING"]), 1)
    finally:
        await bad.close()


async def test_a_late_reply_times_out_and_the_next_call_reconnects(
    private_redis: RedisServer,
) -> None:
    mux = _mux(private_redis.url, socket_timeout_ms=300)
    assert private_redis.process is not None
    try:
        assert await mux.execute(pack(["PING"]), 1) == ["PONG"]
        private_redis.process.send_signal(signal.SIGSTOP)  # a hung Redis
        try:
            with pytest.raises(rexc.TimeoutError):
                await mux.execute(pack(["PING"]), 1)
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        assert await mux.execute(pack(["PING"]), 1) == ["PONG"]
    finally:
        await mux.close()


async def test_a_lost_connection_fails_in_flight_calls_and_reconnects(
    private_redis: RedisServer,
) -> None:
    mux = _mux(private_redis.url)
    try:
        assert await mux.execute(pack(["PING"]), 1) == ["PONG"]
        private_redis.kill()
        with pytest.raises(rexc.ConnectionError):
            await mux.execute(pack(["PING"]), 1)
        private_redis.start()
        assert await mux.execute(pack(["PING"]), 1) == ["PONG"]
    finally:
        await mux.close()
