"""A real full disk (a small tmpfs) under a real ``hookline serve``: 503 to publishes, while
everything accepted is still delivered.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.process import ServeProcess, numbers, subscribe, until, write_config
from tests.receiver import Receiver
from tests.sqlite.mounts import tmpfs

pytestmark = pytest.mark.slow

PAD = "x" * 4000


async def test_disk_full_answers_503_and_keeps_draining(tmp_path: Path, receiver: Receiver) -> None:
    with tmpfs(tmp_path / "disk", "32m") as disk:
        adapter = {"path": str(disk / "hookline.db"), "min_free_disk_bytes": 16 * 1024 * 1024}
        config = write_config(tmp_path / "config.yaml", "modules::queue::SqliteAdapter", adapter)
        process = ServeProcess(config, tmp_path / "serve.log")
        try:
            await _fill_then_drain(process, receiver)
        finally:
            process.close()


async def _fill_then_drain(process: ServeProcess, receiver: Receiver) -> None:
    await asyncio.to_thread(process.wait_ready, 60.0)
    topic = "orders.full"
    sub_id = await subscribe(process, topic, receiver.url("/full"), paused=True)
    accepted = 0
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        for _ in range(200):
            body = {"messages": [{"data": {"n": accepted + i, "pad": PAD}} for i in range(50)]}
            response = await client.post(f"/v1/topics/{topic}/messages/batch", json=body)
            if response.status_code == 503:
                assert "full" in response.json()["error"]["message"]
                break
            assert response.status_code == 202, response.text
            accepted += 50
        else:
            raise AssertionError("the disk never filled")
        assert accepted > 0
        single = await client.post(f"/v1/topics/{topic}/messages", json={"data": {"n": -1}})
        assert single.status_code == 503  # never a 500, never a false 202
        assert (await client.get("/readyz")).status_code == 200
        resumed = await client.post(f"/v1/subscriptions/{sub_id}/resume")
        assert resumed.status_code == 200, resumed.text

    async def drained() -> bool:
        return set(numbers(receiver, "/full")) == set(range(accepted))

    await until(drained, within_s=60, what=f"all {accepted} accepted messages delivered")
    assert numbers(receiver, "/full") == Counter(range(accepted))
    assert "Traceback" not in process.log()
