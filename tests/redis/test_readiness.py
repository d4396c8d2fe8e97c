"""A hung Redis (``DEBUG SLEEP``): ``/readyz`` and publishes answer 503 within their bounds.

Runs on a private redis-server: putting the shared one to sleep would stall every other test.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import require_backend
from tests.harness import eventually, running_hookline
from tests.redis.servers import RedisServer, require_binaries

SLEEP_S = 4
SOCKET_TIMEOUT_MS = 1500
READINESS_TIMEOUT_MS = 300


@pytest.fixture
def sleepy_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that accepts ``DEBUG SLEEP``, killed by pid afterwards."""
    require_binaries("redis-server", "redis-cli")
    server = RedisServer(tmp_path / "redis", None, False, "--enable-debug-command", "yes")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def put_to_sleep(server: RedisServer, seconds: int) -> subprocess.Popen[bytes]:
    """``DEBUG SLEEP seconds`` from another client: Redis answers nobody meanwhile."""
    return subprocess.Popen(
        ["redis-cli", "-p", str(server.port), "debug", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_readyz_and_publish_answer_503_in_time_while_redis_hangs(
    sleepy_redis: RedisServer,
) -> None:
    require_backend("redis")
    async with running_hookline(
        "redis",
        adapter={"redis_url": sleepy_redis.url, "socket_timeout_ms": SOCKET_TIMEOUT_MS},
        observability={"readiness_timeout_ms": READINESS_TIMEOUT_MS},
    ) as hookline:

        async def ready() -> bool:
            return (await hookline.client.get("/readyz")).status_code == 200

        await eventually(ready)
        sleeper = put_to_sleep(sleepy_redis, SLEEP_S)
        try:
            # The sleep has begun once a plain PING from another client goes unanswered.
            await eventually(lambda: _asleep(sleepy_redis.port), within_s=5)
            started = time.monotonic()
            response = await hookline.client.get("/readyz")
            took = time.monotonic() - started
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "unavailable"
            assert f"within {READINESS_TIMEOUT_MS} ms" in body["reason"]
            assert took < 1.0, f"/readyz took {took:.2f}s"

            started = time.monotonic()
            published = await hookline.client.post("/v1/topics/t/messages", json={"data": 1})
            took = time.monotonic() - started
            assert published.status_code == 503, published.text
            assert published.json()["error"]["code"] == "backend_unavailable"
            # One socket timeout, never a second one for a retry.
            assert took < SOCKET_TIMEOUT_MS / 1000 + 0.8, f"publish took {took:.2f}s"
        finally:
            await asyncio.to_thread(sleeper.wait, SLEEP_S + 10)
        await eventually(ready, within_s=10)
        assert "reason" not in (await hookline.client.get("/readyz")).json()


async def _asleep(port: int) -> bool:
    return not await asyncio.to_thread(_answers_ping, port)


def _answers_ping(port: int) -> bool:
    try:
        result = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"],
            capture_output=True,
            text=True,
            timeout=0.3,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.stdout.strip() == "PONG"
