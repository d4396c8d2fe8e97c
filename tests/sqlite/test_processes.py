"""Real ``hookline serve`` processes on one SQLite file: shared work, crashes, restarts."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.process import (
    Serve,
    ServeProcess,
    delivered,
    numbers,
    publish_batch,
    serving,
    subscribe,
    until,
    write_config,
)
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.slow

LEASES = {"visibility_timeout_ms": 1000, "lease_margin_ms": 500, "poll_interval_ms": 20}


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hookline.db"


@pytest.fixture
def config_path(tmp_path: Path, db_file: Path) -> Path:
    adapter = {"path": str(db_file), **LEASES}
    return write_config(tmp_path / "config.yaml", "modules::queue::SqliteAdapter", adapter)


@pytest.fixture
def serve(tmp_path: Path, config_path: Path) -> Iterator[Serve]:
    with serving(config_path, tmp_path) as start:
        yield start


def lease_owners(db_file: Path, sub_id: str) -> Counter[str]:
    """Leased copies of ``sub_id`` per owner (``host:pid``), read from the file itself."""
    with sqlite3.connect(db_file, timeout=5) as conn:
        rows = conn.execute(
            "SELECT lease_owner, count(*) FROM copies WHERE sub_id = ? AND lease_token "
            "IS NOT NULL GROUP BY lease_owner",
            (sub_id,),
        ).fetchall()
    return Counter({str(owner): int(n) for owner, n in rows})


async def warm_up(processes: list[ServeProcess], topic: str, sub_id: str) -> None:
    """Publish ``{"n": -k}`` until every process has delivered some: all of them consume."""
    k = 0

    async def all_deliver() -> bool:
        nonlocal k
        k += 1
        # Each process in turn: a publish wakes its own process at once and the others only
        # at their next look at the file, so publishing through one would starve the rest.
        await publish_batch(processes[k % len(processes)], topic, range(-k, -k + 1))
        return all([await delivered(p, sub_id) > 0 for p in processes])

    await until(all_deliver, what=f"every process delivering {sub_id}")


def measured(receiver: Receiver, path: str) -> Counter[int]:
    """Deliveries of the measured messages (warm-ups have negative numbers)."""
    return Counter({n: c for n, c in numbers(receiver, path).items() if n >= 0})


async def test_two_processes_share_work_without_double_delivery(
    serve: Serve, receiver: Receiver
) -> None:
    first, second = await serve(), await serve()
    receiver.default("/a", Reply(delay_s=0.01))
    topic = "orders.shared"
    sub_id = await subscribe(first, topic, receiver.url("/a"), max_in_flight=8)
    await warm_up([first, second], topic, sub_id)
    before = [await delivered(first, sub_id), await delivered(second, sub_id)]
    await publish_batch(first, topic, range(150))
    await publish_batch(second, topic, range(150, 300))
    await receiver.wait_for(300, "/a", within_s=30)

    async def caught_up() -> bool:
        return len(measured(receiver, "/a")) == 300

    await until(caught_up, what="every message delivered")
    assert measured(receiver, "/a") == Counter(range(300))  # each exactly once
    warm = Counter({n: c for n, c in numbers(receiver, "/a").items() if n < 0})
    assert set(warm.values()) == {1}
    after = [await delivered(first, sub_id), await delivered(second, sub_id)]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


async def test_sigkill_of_one_process_mid_delivery_loses_nothing(
    serve: Serve, receiver: Receiver, db_file: Path
) -> None:
    doomed, survivor = await serve(), await serve()
    receiver.default("/slow", Reply(delay_s=0.3))
    topic = "orders.crash"
    sub_id = await subscribe(
        doomed, topic, receiver.url("/slow"), max_in_flight=10, timeout_ms=1000
    )
    await warm_up([doomed, survivor], topic, sub_id)
    await publish_batch(doomed, topic, range(60))
    owner = f":{doomed.process.pid}"

    async def doomed_holds_leases() -> bool:
        return any(o.endswith(owner) for o in lease_owners(db_file, sub_id))

    await until(doomed_holds_leases, what="the doomed process holding leases")
    doomed.kill()

    async def all_arrived() -> bool:
        return set(measured(receiver, "/slow")) == set(range(60))

    await until(all_arrived, within_s=30, what="every message delivered")  # duplicates allowed


async def test_sigkill_mid_drain_of_5000_then_restart_delivers_every_one(
    serve: Serve, receiver: Receiver
) -> None:
    receiver.default("/drain", Reply(delay_s=0.002))
    topic = "orders.drain"
    process = await serve()
    max_in_flight = 20
    sub_id = await subscribe(
        process, topic, receiver.url("/drain"), max_in_flight=max_in_flight, paused=True
    )
    for start in range(0, 5000, 1000):
        await publish_batch(process, topic, range(start, start + 1000))
    async with httpx.AsyncClient(base_url=process.url) as client:
        response = await client.post(f"/v1/subscriptions/{sub_id}/resume")
        assert response.status_code == 200, response.text

    async def mid_drain() -> bool:
        return len(receiver.requests("/drain")) >= 1000

    await until(mid_drain, what="a fifth delivered")
    process.kill()  # SIGKILL: no clean-up, leases left in the file
    arrived_before = len(set(numbers(receiver, "/drain")))
    assert arrived_before < 5000

    await serve()  # same file

    async def everything() -> bool:
        return set(numbers(receiver, "/drain")) == set(range(5000))

    await until(everything, within_s=120, what="all 5,000 delivered after the restart")
    duplicates = sum(c - 1 for c in numbers(receiver, "/drain").values())
    # Only what was leased (or delivered with its ack not yet committed) when killed.
    assert duplicates <= 3 * max_in_flight, duplicates


async def test_workers_flag_shares_one_file(serve: Serve, receiver: Receiver) -> None:
    process = await serve("--workers", "2")
    topic = "orders.workers"
    await subscribe(process, topic, receiver.url("/w"), max_in_flight=5)
    await publish_batch(process, topic, range(100))
    await receiver.wait_for(100, "/w", within_s=60)
    assert numbers(receiver, "/w") == Counter(range(100))
