"""A costly condition cannot stall a real ``hookline serve`` process (issue 11, item 3)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.process import ServeProcess, write_config
from tests.receiver import Receiver

QUADRATIC = "data.l.all(a, data.l.all(b, a + b >= 0))"


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s}s")
        await asyncio.sleep(0.02)


async def test_costly_condition_and_message_never_stall_the_process(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            # The condition: five nested .all() over a 50-element list.
            fifty = "[" + ", ".join(str(i) for i in range(50)) + "]"
            costly = (
                f"{fifty}.all(a, {fifty}.all(b, {fifty}.all(c, {fifty}.all(d, "
                f"{fifty}.all(e, a + b + c + d + e >= 0)))))"
            )
            refused = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": receiver.url(), "condition": costly}
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "invalid_condition"

            guarded = await client.post(
                "/v1/subscriptions",
                json={"topic": "t", "url": receiver.url("/costly"), "condition": QUADRATIC},
            )
            assert guarded.status_code == 201, guarded.text
            sub_id = guarded.json()["id"]
            cheap = await client.post(
                "/v1/subscriptions",
                json={"topic": "t", "url": receiver.url("/cheap"), "condition": "data.n >= 0"},
            )
            assert cheap.status_code == 201, cheap.text

            slowest = 0.0
            failures: list[str] = []
            stop = asyncio.Event()

            async def watch_health() -> None:
                nonlocal slowest
                async with httpx.AsyncClient(base_url=server.url, timeout=1.0) as probe:
                    while not stop.is_set():
                        started = time.monotonic()
                        try:
                            response = await probe.get("/healthz")
                            if response.status_code != 200:
                                failures.append(f"status {response.status_code}")
                        except httpx.HTTPError as exc:
                            failures.append(repr(exc))
                        slowest = max(slowest, time.monotonic() - started)
                        await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch_health())
            # 29 KB of data: 5,000 numbers, 25 million steps for the quadratic condition.
            big = {"n": 1, "l": list(range(5000))}
            assert 25_000 < len(json.dumps(big)) < 40_000
            for data in (big, {"n": 2, "l": [1, 2, 3]}):
                published = await client.post("/v1/topics/t/messages", json={"data": data})
                assert published.status_code == 202, published.text

            await receiver.wait_for(2, "/cheap")
            [small] = await receiver.wait_for(1, "/costly")
            assert small.json()["data"]["n"] == 2

            async def dead_lettered() -> bool:
                dlq = (await client.get("/v1/topics/t/dlq")).json()
                return len(dlq["entries"]) == 1

            await _until(dead_lettered, 10, "the costly message in the DLQ")
            [entry] = (await client.get("/v1/topics/t/dlq")).json()["entries"]
            assert entry["subscription_id"] == sub_id
            assert entry["data"]["n"] == 1
            assert entry["last_error"]["reason"] == "condition_error"
            assert "exceeded its cost budget" in entry["last_error"]["body_excerpt"]

            metrics = (await client.get("/metrics")).text
            labels = f'kind="budget",subscription="{sub_id}",topic="t"'
            assert f"hookline_condition_errors_total{{{labels}}} 1.0" in metrics
            stop.set()
            await watcher
            assert failures == []
            assert slowest < 1.0
            assert len(receiver.requests("/costly")) == 1

        evaluators = _children(server.process.pid)
        assert evaluators, "a condition with macros runs in an evaluator process"
        started = time.monotonic()
        code = await asyncio.to_thread(server.terminate, 15)
        assert code in (0, -15), server.log()
        assert time.monotonic() - started < 10

        async def evaluators_gone() -> bool:
            return not any(_alive(pid) for pid in evaluators)

        await _until(evaluators_gone, 5, "the evaluators' exit")
    finally:
        server.close()
