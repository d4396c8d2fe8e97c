"""Running ``hookline serve`` as a real process, for shutdown, crash and multi-instance tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.receiver import Receiver, Reply


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from ``/proc`` (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def write_config(
    path: Path, adapter_class: str, adapter_config: dict[str, Any], **extra: Any
) -> Path:
    """A config.yaml in the engine's module shape."""
    config = {"adapter": {"class": adapter_class, "config": adapter_config}, **extra}
    doc = {"modules": [{"class": "modules::queue::QueueModule", "config": config}]}
    path.write_text(yaml.safe_dump(doc))
    return path


class ServeProcess:
    """One ``hookline serve`` process on a free port, logging to a file."""

    def __init__(self, config: Path, log: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: close() ends workers too
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, within_s: float = 30.0) -> None:
        """Wait until /readyz answers 200."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hookline exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval of a deadline-bounded wait
        raise AssertionError(f"hookline not ready in {within_s}s:\n{self.log()}")

    def terminate(self, within_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within_s)

    def kill(self) -> None:
        """SIGKILL the supervisor only: a crash, no clean-up at all."""
        self.process.kill()
        self.process.wait(30)

    def children(self) -> list[int]:
        """Pids of the processes this one started (``--workers`` workers and helpers)."""
        return children_of(self.process.pid)

    def close(self) -> None:
        """SIGKILL the whole process group (supervisor, workers, helpers) and reap."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


# -- several processes on one backend: the shared harness of the broker suites ---------------

Serve = Callable[..., Awaitable[ServeProcess]]
"""``await serve(*cli_args)``: one more ``hookline serve`` on the suite's config, ready."""

Condition = Callable[[], Awaitable[bool]]


@contextmanager
def serving(config: Path, logs: Path) -> Iterator[Serve]:
    """Start processes on ``config`` (logs under ``logs``); every one is killed at the end."""
    started: list[ServeProcess] = []

    async def start(*args: str) -> ServeProcess:
        process = ServeProcess(config, logs / f"serve{len(started)}.log", *args)
        started.append(process)
        await asyncio.to_thread(process.wait_ready, 60.0)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


async def until(condition: Condition, within_s: float = 20.0, what: str = "condition") -> None:
    """Wait for ``condition`` to hold, failing after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {within_s}s"
        await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait


async def delivered(process: ServeProcess, sub_id: str) -> float:
    """Deliveries the process counted for ``sub_id`` (its /metrics)."""
    text = (await asyncio.to_thread(httpx.get, f"{process.url}/metrics", timeout=5)).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hookline_deliveries_total{") and f'subscription="{sub_id}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def subscribe(process: ServeProcess, topic: str, url: str, **extra: Any) -> str:
    """Create a subscription through the process's API; its id."""
    async with httpx.AsyncClient(base_url=process.url) as client:
        response = await client.post(
            "/v1/subscriptions", json={"topic": topic, "url": url, **extra}
        )
        assert response.status_code == 201, response.text
        sub_id: str = response.json()["id"]
        return sub_id


async def publish_batch(process: ServeProcess, topic: str, values: range) -> None:
    """Publish ``{"n": value}`` for each value, in one batch request."""
    async with httpx.AsyncClient(base_url=process.url) as client:
        body = {"messages": [{"data": {"n": n}} for n in values]}
        response = await client.post(f"/v1/topics/{topic}/messages/batch", json=body)
        assert response.status_code == 202, response.text


def numbers(receiver: Receiver, path: str) -> Counter[int]:
    """How often each ``n`` reached ``path``."""
    return Counter(r.json()["data"]["n"] for r in receiver.requests(path))


BothConsume = Callable[[str, str], Awaitable[None]]
"""``await both_consume(topic, sub_id)``: returns once both processes consume the subscription."""

HoldsLeases = Callable[[ServeProcess, str, str], Awaitable[bool]]
"""``await holds_leases(process, topic, sub_id)``: the process has deliveries under way."""


async def check_two_processes_share_work(
    serve: Serve, receiver: Receiver, both_consume: BothConsume
) -> None:
    """Two processes split two subscriptions' work; each message arrives once per subscription."""
    first, second = await serve(), await serve()
    receiver.default("/a", Reply(delay_s=0.01))
    receiver.default("/b", Reply(delay_s=0.01))
    topic = "orders.shared"
    sub_a = await subscribe(first, topic, receiver.url("/a"), max_in_flight=8)
    sub_b = await subscribe(second, topic, receiver.url("/b"), max_in_flight=8)
    for sub_id in (sub_a, sub_b):  # both processes follow both subscriptions
        await both_consume(topic, sub_id)
    await publish_batch(first, topic, range(150))
    await publish_batch(second, topic, range(150, 300))

    await receiver.wait_for(300, "/a", within_s=30)
    await receiver.wait_for(300, "/b", within_s=30)
    for sub_id in (sub_a, sub_b):

        async def caught_up(sub_id: str = sub_id) -> bool:
            return await delivered(first, sub_id) + await delivered(second, sub_id) == 300

        await until(caught_up, what="metrics caught up")
        shares = [await delivered(first, sub_id), await delivered(second, sub_id)]
        assert all(share > 0 for share in shares), shares  # both processes did work
    assert numbers(receiver, "/a") == Counter(range(300))  # each exactly once
    assert numbers(receiver, "/b") == Counter(range(300))


async def check_sigkill_mid_delivery_loses_nothing(
    serve: Serve, receiver: Receiver, both_consume: BothConsume, holds_leases: HoldsLeases
) -> None:
    """SIGKILL one of two processes while it delivers: the other delivers everything."""
    doomed, _survivor = await serve(), await serve()
    receiver.default("/slow", Reply(delay_s=0.3))
    topic = "orders.crash"
    sub_id = await subscribe(
        doomed, topic, receiver.url("/slow"), max_in_flight=10, timeout_ms=1000
    )
    await both_consume(topic, sub_id)
    await publish_batch(doomed, topic, range(60))

    async def doomed_is_delivering() -> bool:
        return await holds_leases(doomed, topic, sub_id)

    await until(doomed_is_delivering, what="the doomed process holding leases")
    doomed.kill()  # SIGKILL mid-delivery: its leases are never ended

    async def all_arrived() -> bool:
        return set(numbers(receiver, "/slow")) == set(range(60))

    await until(all_arrived, within_s=30, what="every message delivered")  # duplicates allowed
