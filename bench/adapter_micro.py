"""The broker adapters alone: CPU per publish, per batch and per delivery, no HTTP.

The end-to-end scenarios (``bench.run``) mix the API, the adapter and the delivery worker
on one core; this measures only what an adapter costs (``builtin``, ``sqlite``,
``sqlite-full``, ``redis``, ``rabbitmq``), so a change to it shows up above the noise of a
shared machine (CPU time of this process, not wall time, is the figure that matters).
Each phase also reports the bytes written per message (``/proc/self/io``: for SQLite, the
WAL's frames), the CPU per message of each thread (SQLite's writer and checkpointer apart
from the event loop) and, for SQLite, the commits per delivery. Each round runs in a fresh
process; ``--baseline DIR`` alternates rounds with another checkout's ``app/`` (e.g. ``git
archive main app | tar -x -C DIR``), so both see the same machine::

    .venv/bin/python -m bench.adapter_micro --adapters redis,rabbitmq --rounds 3 \
        --baseline /tmp/main-app

Phases, per adapter: ``single`` (32 concurrent one-message publishes), ``batch`` (8
concurrent publishes of 100), ``drain`` (N messages queued, then a worker-like loop: 64
slots, ``receive(free, 0)``, each delivery a loop turn, acks batched per loop turn).
Messages are ~1 KB, as in ``bench.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import make_data

REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ROOT = Path(__file__).resolve().parent.parent


def _envelope(topic: str, seq: int) -> Any:
    from app.core.ids import new_id
    from app.core.models import Envelope, now_ms

    return Envelope(id=new_id("msg"), topic=topic, data=make_data(seq), published_at=now_ms())


PROFILE: dict[str, Path | None] = {"dir": None}
"""``--profile DIR``: py-spy each timed phase into ``DIR/<adapter>-<phase>.txt``."""


async def _timed(name: str, run: Callable[[], Awaitable[int]]) -> dict[str, float]:
    from bench.profiling import sampled

    where = PROFILE["dir"]
    out = where / f"{name}.txt" if where is not None else Path(os.devnull)
    async with sampled(os.getpid(), out, where is not None):
        written0, threads0 = _written_bytes(), _thread_cpu()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        count = await run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        written, threads = _written_bytes() - written0, _thread_cpu()
    per = max(1, count)
    split = {
        name: round((spent - threads0.get(name, 0.0)) / per * 1e6, 2)
        for name, spent in threads.items()
    }
    return {
        "n": count,
        "rate": count / wall,
        "cpu_us": cpu / per * 1e6,
        "wbytes": written / per,
        "threads_us": split,
    }


def _thread_cpu() -> dict[str, float]:
    """CPU seconds spent so far by each thread of this process, by thread name."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task), "other")
        name = name.split("_")[0] if name.startswith("sqlite-reader") else name
        spent[name] = spent.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return spent


def _commits(adapter: Any) -> int:
    """Transactions the SQLite adapter's writer committed so far (0 for the others)."""
    database = getattr(adapter, "database", None)
    return int(getattr(database, "commits", 0))


def _written_bytes() -> int:
    """Bytes this process passed to write calls so far (``wchar``: the WAL's frames)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def _bodies(topic: str, per_call: int, calls: int) -> list[list[Any]]:
    from app.core.ports import OutgoingMessage

    return [
        [OutgoingMessage(_envelope(topic, i * per_call + j)) for j in range(per_call)]
        for i in range(calls)
    ]


async def _publish_phase(
    adapter: Any, bodies: list[list[Any]], n: int, per_call: int, tasks: int
) -> int:
    calls = n // per_call
    done = 0

    async def one() -> None:
        nonlocal done
        while done < calls:
            done += 1
            await adapter.publish(bodies[done % len(bodies)])

    await asyncio.gather(*(one() for _ in range(tasks)))
    return done * per_call


async def _drain_phase(adapter: Any, subscription: Any, n: int, slots: int = 64) -> int:
    """A worker-like loop: lease into free slots, 'deliver' in a loop turn, ack per turn."""
    delivered = 0
    in_flight = 0
    acks: list[Any] = []
    freed = asyncio.Event()
    ack_wake = asyncio.Event()

    async def deliver(delivery: Any) -> None:
        nonlocal in_flight, delivered
        await asyncio.sleep(0)
        acks.append(delivery)
        ack_wake.set()
        in_flight -= 1
        delivered += 1
        freed.set()

    stopping = False

    async def ack_loop() -> None:
        nonlocal acks
        while not stopping or acks:
            await ack_wake.wait()
            ack_wake.clear()
            while acks:
                batch, acks = acks, []
                await adapter.ack(batch)

    acker = asyncio.create_task(ack_loop())
    tasks: set[asyncio.Task[None]] = set()
    try:
        while delivered < n:
            free = slots - in_flight
            if free <= 0:
                freed.clear()
                await freed.wait()
                await asyncio.sleep(0)
                continue
            deliveries = await adapter.receive(subscription, free, 0)
            if not deliveries:
                await adapter.wait_for_work(subscription, 0.05)
                continue
            for delivery in deliveries:
                in_flight += 1
                task = asyncio.create_task(deliver(delivery))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        stopping = True
        ack_wake.set()
        await acker
    finally:
        acker.cancel()
    return delivered


async def _open(kind: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    if kind == "builtin":
        from app.adapters.builtin import BuiltinQueueAdapter

        builtin = BuiltinQueueAdapter()
        await builtin.start()
        return builtin, builtin.close
    if kind in ("sqlite", "sqlite-full"):
        import shutil
        import tempfile

        from app.adapters.sqlite import SqliteAdapter

        where = tempfile.mkdtemp(prefix="hookline-micro-")
        sync = "full" if kind == "sqlite-full" else "normal"
        lite = SqliteAdapter.from_config({"path": f"{where}/micro.db", "synchronous": sync})
        await lite.start()

        async def cleanup_sqlite() -> None:
            try:
                await lite.close()
            finally:
                shutil.rmtree(where, ignore_errors=True)

        return lite, cleanup_sqlite
    if kind == "redis":
        from app.adapters.redis import RedisAdapter

        prefix = f"hookline-micro-{uuid.uuid4().hex[:8]}"
        redis = RedisAdapter.from_config({"redis_url": REDIS_URL, "key_prefix": prefix})
        await redis.start()
        await redis.connection.wait_reachable(5)

        async def cleanup_redis() -> None:
            from redis.asyncio import Redis

            client = Redis.from_url(REDIS_URL)
            try:
                keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
                for key in keys:
                    await client.delete(key)
            finally:
                await client.aclose()
            await redis.close()

        return redis, cleanup_redis
    from app.adapters.rabbitmq import RabbitMQAdapter

    prefix = f"hlmicro{uuid.uuid4().hex[:8]}"
    rabbit = RabbitMQAdapter.from_config({"amqp_url": AMQP_URL, "prefix": prefix})
    await rabbit.start()

    async def cleanup_rabbit() -> None:
        try:
            await rabbit.destroy()
        finally:
            await rabbit.close()

    return rabbit, cleanup_rabbit


async def measure(kind: str, phases: list[str], n: int, drain_n: int) -> dict[str, Any]:
    """One round of every phase on a fresh adapter namespace."""
    from app.core.models import Subscription

    adapter, cleanup = await _open(kind)
    out: dict[str, Any] = {}
    try:
        topic = f"micro.{uuid.uuid4().hex[:6]}"
        paused = Subscription(
            id=f"sub_{uuid.uuid4().hex[:10]}",
            topic=topic,
            url="http://127.0.0.1:9/x",
            paused=True,
            max_in_flight=64,
        )
        await adapter.create_subscription(paused)
        singles, batches = _bodies(topic, 1, 200), _bodies(topic, 100, 40)
        await _publish_phase(adapter, singles, 2000, 1, 32)  # warm-up
        if "single" in phases:
            out["single"] = await _timed(
                f"{kind}-single", lambda: _publish_phase(adapter, singles, n, 1, 32)
            )
        if "batch" in phases:
            out["batch"] = await _timed(
                f"{kind}-batch", lambda: _publish_phase(adapter, batches, n * 5, 100, 8)
            )
        if "drain" in phases:
            dtopic = f"micro.d{uuid.uuid4().hex[:6]}"
            sub = Subscription(
                id=f"sub_{uuid.uuid4().hex[:10]}",
                topic=dtopic,
                url="http://127.0.0.1:9/x",
                max_in_flight=64,
            )
            await adapter.create_subscription(sub)
            await _publish_phase(adapter, _bodies(dtopic, 100, 40), drain_n, 100, 4)
            await asyncio.sleep(0.5)
            commits = _commits(adapter)
            out["drain"] = await _timed(
                f"{kind}-drain", lambda: _drain_phase(adapter, sub, drain_n)
            )
            out["drain"]["commits"] = (_commits(adapter) - commits) / max(1, drain_n)
    finally:
        await cleanup()
    return out


def _child(args: argparse.Namespace) -> None:
    import uvloop

    PROFILE["dir"] = args.profile
    result = uvloop.run(measure(args.child, args.phases.split(","), args.n, args.drain))
    print(json.dumps(result))


def _run_round(
    kind: str, args: argparse.Namespace, label: str, app_dir: Path | None
) -> dict[str, Any]:
    env = dict(os.environ)
    cwd = str(ROOT)
    if app_dir is not None:
        env["PYTHONPATH"] = f"{app_dir}:{ROOT}"
        cwd = str(app_dir)
    argv = [sys.executable, "-m", "bench.adapter_micro", "--child", kind]
    argv += ["--phases", args.phases, "--n", str(args.n), "--drain", str(args.drain)]
    if args.profile is not None:
        where = (args.profile / label).resolve()
        where.mkdir(parents=True, exist_ok=True)
        argv += ["--profile", str(where)]
    if args.cpu is not None:
        argv = ["taskset", "-c", str(args.cpu), *argv]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} round failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Alternate rounds of this checkout (and ``--baseline``), print a table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", default="redis,rabbitmq")
    parser.add_argument("--phases", default="single,batch,drain")
    parser.add_argument("--n", type=int, default=6000, help="single publishes per round")
    parser.add_argument("--drain", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--cpu", type=int, default=None, help="taskset the rounds to this CPU")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy each phase here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    labels: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline is not None:
        labels.insert(0, ("base", args.baseline.resolve()))
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_no in range(args.rounds):
        for kind in args.adapters.split(","):
            for label, app_dir in labels:
                result = _run_round(kind, args, label, app_dir)
                results.setdefault((kind, label), []).append(result)
                line = ", ".join(
                    f"{phase} {r['rate']:,.0f}/s {r['cpu_us']:.0f}us {r['wbytes']:,.0f}B"
                    + (f" {r['commits']:.3f} commits" if "commits" in r else "")
                    + f" {r['threads_us']}"
                    for phase, r in result.items()
                )
                print(f"round {round_no + 1} {kind:8} {label}: {line}", flush=True)
    print()
    print(
        "| adapter | phase | "
        + " | ".join(f"{lb} msg/s | {lb} CPU-us/msg" for lb, _ in labels)
        + " |"
    )
    print("| --- | --- | " + " | ".join("--- | ---" for _ in labels) + " |")
    for kind in args.adapters.split(","):
        for phase in args.phases.split(","):
            cells = []
            for label, _ in labels:
                rounds = [r[phase] for r in results[(kind, label)]]
                rates = sorted(r["rate"] for r in rounds)
                cpus = sorted(r["cpu_us"] for r in rounds)
                cells += [f"{rates[len(rates) // 2]:,.0f}", f"{cpus[len(cpus) // 2]:.1f}"]
            print(f"| {kind} | {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
