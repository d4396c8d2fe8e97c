"""``hookline serve --workers 2``: when the supervisor is SIGKILLed, its workers go too.

Orphaned workers would keep serving on the port and taking Redis leases with no
supervisor (issue 9, item 17).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.leftovers import describe, wait_gone
from tests.process import ServeProcess, write_config

pytestmark = pytest.mark.slow


def spawned_workers(server: ServeProcess, count: int, within_s: float = 60.0) -> list[int]:
    """Wait until the supervisor has ``count`` uvicorn workers; return their pids."""
    deadline = time.monotonic() + within_s
    while True:
        workers = [
            pid
            for pid in server.children()
            if "multiprocessing.spawn" in describe(pid) and "resource_tracker" not in describe(pid)
        ]
        if len(workers) >= count or time.monotonic() > deadline:
            return workers
        time.sleep(0.05)  # polling interval of a deadline-bounded wait


def serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_workers_exit_when_the_supervisor_is_sigkilled(
    tmp_path: Path, redis_config: dict[str, Any]
) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::RedisAdapter", redis_config)
    server = ServeProcess(config, tmp_path / "serve.log", "--workers", "2")
    try:
        await asyncio.to_thread(server.wait_ready, 60.0)
        workers = await asyncio.to_thread(spawned_workers, server, 2)
        assert len(workers) == 2, [describe(pid) for pid in server.children()]
        helpers = server.children()  # the workers and multiprocessing's resource tracker
        server.kill()  # the supervisor only, as the OOM killer would
        left = await asyncio.to_thread(wait_gone, helpers, 30.0)
        assert left == [], f"still running: {[describe(p) for p in left]}\n{server.log()}"
        assert not serving(server.url), "the port is still served"
    finally:
        server.close()
