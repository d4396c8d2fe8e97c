"""Peers (Celery 5 + Redis, arq) in virtual environments of their own, made by the bench.

They pin other versions of ``redis`` than hookline, so each gets its own venv, by default
under ``~/.cache/hookline-bench/venvs`` (``HOOKLINE_BENCH_VENVS`` or ``--venvs`` moves it;
the cache outlives a fresh clone, so CI's quick mode does not reinstall every time). Both
use Redis db 14 with names unique to the run; afterwards the run's keys are deleted (no
FLUSHDB, so two bench runs can share the machine; never FLUSHALL).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, Processes
from bench.receiver import fate
from bench.scenarios import FAILURE_RETRY, Context, check_delivered, drain_timeout

PEER_REDIS_URL = "redis://127.0.0.1:6379/14"

REQUIREMENTS = {
    "celery": ["celery[redis]>=5.3,<6", "urllib3>=2"],
    "arq": ["arq>=0.25", "aiohttp>=3.9"],
}

CELERY_POOLS = [("threads", 32), ("prefork", 4)]


def default_venvs() -> Path:
    configured = os.environ.get("HOOKLINE_BENCH_VENVS")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hookline-bench" / "venvs"


async def ensure_venv(venvs: Path, peer: str, processes: Processes) -> Path:
    """Create (once) the peer's venv; returns its python. Raises RuntimeError on failure."""
    target = venvs / peer
    python = target / "bin" / "python"
    stamp = target / ".bench-requirements"
    wanted = "\n".join(REQUIREMENTS[peer])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [PYTHON, "-m", "venv", "--clear", str(target)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *REQUIREMENTS[peer],
        ],
    ]
    for argv in steps:
        process = await processes.start(f"venv-{peer}", argv)
        try:
            code = await asyncio.wait_for(process.wait(), 600)
        finally:
            await processes.stop(process)
        if code != 0:
            tail = processes.log_tail(f"venv-{peer}", 5)
            raise RuntimeError(f"building the {peer} venv failed: {tail[-300:]}")
    stamp.write_text(wanted)
    return python


async def delete_run_keys(run: str) -> int:
    """Delete the keys of one peer run (its queue, jobs, bindings) from db 14.

    No FLUSHDB: two bench runs may share the machine, and each only removes its own keys.
    """
    from redis.asyncio import Redis

    redis = Redis.from_url(PEER_REDIS_URL)
    deleted = 0
    try:
        keys = [k async for k in redis.scan_iter(match=f"*{run}*", count=1000)]
        for start in range(0, len(keys), 500):
            deleted += int(await redis.delete(*keys[start : start + 500]))
    finally:
        await redis.aclose()
    return deleted


def tree_cpu_and_rss(pid: int) -> tuple[float, float]:
    """CPU seconds and RSS (MB) of a process and all its descendants."""
    from bench.common import cpu_seconds, memory_mb

    seen = set()
    stack = [pid]
    cpu = rss = 0.0
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        cpu += cpu_seconds(current)
        rss += memory_mb(current)[0]
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                stack.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return cpu, rss


async def _produce(
    python: Path, module: str, n: int, run: str, env: dict[str, str], parallel: int = 2
) -> float:
    """Queue N messages with ``parallel`` producer processes (one per core); returns seconds."""
    started = time.monotonic()
    share = -(-n // parallel)
    processes = [
        await asyncio.create_subprocess_exec(
            str(python),
            "-m",
            module,
            "produce",
            "--n",
            str(min(share, n - first)),
            "--first",
            str(first),
            "--run",
            run,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            cwd=str(ROOT),
        )
        for first in range(0, n, share)
    ]
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in processes)), 60 + n / 200
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    for process, (_, err) in zip(processes, outcomes, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"{module} produce failed: {err.decode()[-400:]}")
    return time.monotonic() - started


async def run_peer(
    ctx: Context,
    peer: str,
    python: Path,
    n: int,
    fail: bool,
    worker_argv: list[str],
    label: str,
) -> dict[str, Any]:
    """Queue N messages in the peer, start its worker, wait until everything is handled."""
    run = uuid.uuid4().hex[:8]
    tag = f"{peer}{run}"
    env = {
        "BENCH_BROKER": PEER_REDIS_URL,
        "BENCH_QUEUE": f"bench-{peer}-{run}",
        "BENCH_RECEIVER": ctx.receiver.url(tag),
        "BENCH_RETRY_S": str(FAILURE_RETRY["retry_delay_ms"] / 1000),
        "BENCH_MAX_RETRIES": str(FAILURE_RETRY["max_retries"]),
        "BENCH_MAX_JOBS": str(ctx.sizes.concurrency),
        "PYTHONPATH": str(ROOT),
    }
    ids = [f"{peer}-{run}-{i}" for i in range(n)]
    doomed = {i for i in ids if fail and fate(i) == "always_fail"}
    attempts = FAILURE_RETRY["max_retries"] + 1
    try:
        produce_s = await _produce(python, f"bench.peers.{peer}_peer", n, run, env)
        await ctx.receiver.reset(fail=fail)
        worker = await ctx.processes.start(f"{peer}-{label}", [str(python), *worker_argv], env=env)
        try:
            started = time.monotonic()
            stats = await ctx.receiver.wait_for(
                n - len(doomed), drain_timeout(n) * 2, always_fail_attempts=attempts * len(doomed)
            )
            cpu, rss = tree_cpu_and_rss(worker.pid)
        finally:
            await ctx.processes.stop(worker, grace_s=20)
        dump = await ctx.receiver.dump()
        exhausted = {i for i in doomed if dump.get(f"{tag} {i}", [0])[0] >= attempts}
        checked = check_delivered(dump, tag, ids, exhausted)
        first = stats["first_t"] or started
        seconds = (stats["last_new_ok_t"] or time.monotonic()) - first
        return {
            "peer": peer,
            "config": label,
            "n": n,
            "rate": checked["delivered"] / seconds if seconds > 0 else 0.0,
            "seconds": seconds,
            "produce_seconds": produce_s,
            "startup_seconds": first - started,
            "cpu_per_1k": cpu / max(1, checked["delivered"]) * 1000,
            "rss_mb": rss,
            "delivered": checked["delivered"],
            "dead_lettered": len(exhausted),
            "expected_dead": len(doomed),
            "duplicates": checked["duplicates"],
            "attempts": stats["requests"],
            "lost": checked["lost"],
        }
    finally:
        await delete_run_keys(run)


def celery_worker_argv(pool: str, concurrency: int, queue_hint: str) -> list[str]:
    del queue_hint
    return [
        "-m",
        "celery",
        "-A",
        "bench.peers.celery_peer",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]


async def celery(ctx: Context, python: Path, n: int, fail: bool, pool: str, conc: int) -> dict:
    argv = celery_worker_argv(pool, conc, "")
    return await run_peer(ctx, "celery", python, n, fail, argv, f"{pool}-c{conc}")


async def arq(ctx: Context, python: Path, n: int, fail: bool) -> dict[str, Any]:
    argv = ["-m", "bench.peers.arq_peer", "work"]
    return await run_peer(ctx, "arq", python, n, fail, argv, f"max_jobs={ctx.sizes.concurrency}")
