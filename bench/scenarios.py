"""The scenarios of issue 5, each against one hookline adapter, plus the raw ceilings.

Every scenario returns a plain dict of figures and a list of message ids that were lost
(published, accepted with a 202, and neither delivered nor dead-lettered in time).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import PIN, PYTHON, Processes, make_data, percentile
from bench.loadgen import closed_loop, open_loop
from bench.profiling import sampled, summarize
from bench.rawhttp import Connection, build_request
from bench.receiver import fate
from bench.service import (
    AMQP_URL,
    REDIS_URL,
    Hookline,
    UnavailableError,
    adapter_setup,
    cleanup_backend,
)

UNAVAILABLE_EXIT = 3
"""``bench.ceilings`` exits with this when its client library is not installed."""

FAILURE_RETRY = {
    "max_retries": 2,
    "retry_delay_ms": 100,
    "backoff": "fixed",
    "max_delay_ms": 1000,
    "jitter": 0,
}
"""Retries for the failure scenario: 3 attempts in all, 100 ms apart (peers use the same)."""


@dataclass(frozen=True)
class Sizes:
    publish_single_n: int
    publish_batch_n: int
    publish_seconds: float
    drain_n: int
    backlog_n: int
    latency_rate: float
    latency_seconds: float
    latency_low_rate: float
    latency_low_seconds: float
    fanout_subs: int
    fanout_n: int
    failures_n: int
    receiver_n: int
    peer_n: int
    peer_failures_n: int
    sweep_rates: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0, 4000.0)
    sweep_seconds: float = 10.0
    settle_s: float = 0.5
    concurrency: int = 64
    publish_concurrency: int = 32
    batch_concurrency: int = 8
    insight_pairs: int = 5


FULL = Sizes(
    publish_single_n=40_000,
    publish_batch_n=400_000,
    publish_seconds=8.0,
    drain_n=50_000,
    backlog_n=100_000,
    latency_rate=1000.0,
    latency_seconds=30.0,
    latency_low_rate=250.0,
    latency_low_seconds=15.0,
    fanout_subs=10,
    fanout_n=3_000,
    failures_n=10_000,
    receiver_n=100_000,
    peer_n=20_000,
    peer_failures_n=5_000,
)
QUICK = Sizes(
    publish_single_n=200,
    publish_batch_n=2_000,
    publish_seconds=1.0,
    drain_n=500,
    backlog_n=1_000,
    latency_rate=200.0,
    latency_seconds=1.0,
    latency_low_rate=0.0,
    latency_low_seconds=0.0,
    fanout_subs=3,
    fanout_n=100,
    failures_n=500,
    receiver_n=2_000,
    peer_n=500,
    peer_failures_n=500,
    sweep_rates=(100.0, 200.0),
    sweep_seconds=1.0,
    settle_s=0.1,
    insight_pairs=1,
)


class ReceiverClient:
    """The bench receiver process and its control endpoints."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: Connection | None = None

    def url(self, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/h/{tag}"

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = await Connection.open("127.0.0.1", self.port)
        raw = build_request(
            method, "127.0.0.1", self.port, path, json.dumps(body).encode() if body else b""
        )
        status, reply = await asyncio.wait_for(self._conn.request(raw), 60)
        if status != 200:
            raise RuntimeError(f"receiver {path}: {status}")
        return json.loads(reply)

    async def reset(self, fail: bool = False) -> None:
        await self._call("POST", "/_bench/reset", {"fail": fail})

    async def stats(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/_bench/stats"))

    async def dump(self) -> dict[str, list[float]]:
        return dict(await self._call("GET", "/_bench/dump"))

    async def wait_for(
        self, unique_ok: int, within_s: float, always_fail_attempts: int = 0
    ) -> dict[str, Any]:
        """Poll until ``unique_ok`` distinct deliveries succeeded (and the always-failing ids
        were tried ``always_fail_attempts`` times in all); returns the last stats.
        """
        deadline = time.monotonic() + within_s
        while True:
            stats = await self.stats()
            done = (
                stats["unique_ok"] >= unique_ok
                and stats["always_fail_attempts"] >= always_fail_attempts
            )
            if done or time.monotonic() > deadline:
                stats["timed_out"] = not done
                return stats
            await asyncio.sleep(0.02)


@dataclass
class Context:
    processes: Processes
    receiver: ReceiverClient
    workdir: Path
    sizes: Sizes
    run_id: str
    share_process: bool = False
    profile: bool = False
    notes: list[str] = field(default_factory=list)
    shared: dict[str, Hookline] = field(default_factory=dict)

    def unique(self, what: str) -> str:
        return f"bench.{what}.{uuid.uuid4().hex[:8]}"

    def profiled(self, hookline: Hookline, phase: str) -> Any:
        """py-spy on hookline during a timed phase (with ``--profile``)."""
        return sampled(hookline.pid, self.profile_path(hookline, phase), self.profile)

    def profile_path(self, hookline: Hookline, phase: str) -> Path:
        return self.workdir / f"profile-{hookline.setup.kind}-{phase}.txt"

    def profile_summary(self, hookline: Hookline, phase: str, result: dict[str, Any]) -> None:
        if not self.profile:
            return
        text = summarize(self.profile_path(hookline, phase))
        out = self.workdir / f"profile-{hookline.setup.kind}-{phase}-summary.txt"
        out.write_text(text + "\n")
        result.setdefault("profiles", []).append(str(out))


def check_delivered(
    dump: dict[str, list[float]], tag: str, ids: list[str], dead: set[str] | None = None
) -> dict[str, Any]:
    """Lost = neither delivered (a 2xx answered) nor dead-lettered; duplicates = extra 2xx."""
    dead = dead or set()
    lost = []
    duplicates = 0
    delivered = 0
    for message_id in ids:
        record = dump.get(f"{tag} {message_id}")
        if record is not None and record[1] >= 1:
            delivered += 1
            duplicates += int(record[1]) - 1
        elif message_id not in dead:
            lost.append(message_id)
    return {"delivered": delivered, "lost": lost, "duplicates": duplicates}


async def start_hookline(
    ctx: Context,
    kind: str,
    name: str,
    extra_config: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Hookline:
    """A fresh process per scenario; in quick mode one per adapter (start-up is seconds).

    ``extra_config`` (keys of the QueueModule's config) always gets a process of its own.
    ``run_id``: a backend namespace of its own (two processes that must not share a
    registry), instead of the run's.
    """
    share = ctx.share_process and not extra_config and run_id is None
    if share and kind in ctx.shared:
        return ctx.shared[kind]
    if share:
        name = f"{kind}-shared"
    elif ctx.share_process and run_id is None:
        # Beside the shared process: a namespace of its own, or its clean-up at the end of
        # the scenario deletes the shared process's streams and keys under its feet.
        run_id = f"{ctx.run_id}-{uuid.uuid4().hex[:6]}"
    hookline = Hookline(
        ctx.processes,
        adapter_setup(kind, run_id or ctx.run_id),
        ctx.workdir,
        name,
        extra_config=dict(extra_config or {}),
    )
    await hookline.start()
    if share:
        ctx.shared[kind] = hookline
    return hookline


async def stop_hookline(ctx: Context, hookline: Hookline, final: bool = False) -> None:
    shared = ctx.shared.get(hookline.setup.kind) is hookline
    if ctx.share_process and not final and shared:
        return
    if shared:
        ctx.shared.pop(hookline.setup.kind, None)
    await hookline.stop()
    note = await cleanup_backend(hookline.setup)
    if note:
        ctx.notes.append(f"{hookline.name}: {note}")


def message_bodies(count: int) -> list[bytes]:
    return [json.dumps({"data": make_data(i)}).encode() for i in range(count)]


def batch_bodies(count: int, per_batch: int) -> list[bytes]:
    return [
        json.dumps(
            {"messages": [{"data": make_data(b * per_batch + i)} for i in range(per_batch)]}
        ).encode()
        for b in range(count)
    ]


# -- scenario 1: publish --------------------------------------------------------------------


async def publish(ctx: Context, kind: str) -> dict[str, Any]:
    """Closed-loop publishing to a topic with one paused subscription (so it is stored)."""
    sizes = ctx.sizes
    hookline = await start_hookline(ctx, kind, f"{kind}-publish")
    try:
        topic = ctx.unique("publish")
        sub = await hookline.subscribe(
            topic, ctx.receiver.url("publish"), paused=True, max_in_flight=sizes.concurrency
        )
        path = f"/v1/topics/{topic}/messages"
        singles = [
            build_request("POST", "127.0.0.1", hookline.port, path, b) for b in message_bodies(200)
        ]
        batches = [
            build_request("POST", "127.0.0.1", hookline.port, f"{path}/batch", b)
            for b in batch_bodies(8, 100)
        ]
        await closed_loop(
            "127.0.0.1", hookline.port, singles, 1, 8, min(500, sizes.publish_single_n), 5
        )
        cpu0 = hookline.cpu()
        async with ctx.profiled(hookline, "publish-single"):
            single = await closed_loop(
                "127.0.0.1",
                hookline.port,
                singles,
                1,
                sizes.publish_concurrency,
                sizes.publish_single_n,
                sizes.publish_seconds,
            )
        cpu1 = hookline.cpu()
        async with ctx.profiled(hookline, "publish-batch"):
            batch = await closed_loop(
                "127.0.0.1",
                hookline.port,
                batches,
                100,
                sizes.batch_concurrency,
                sizes.publish_batch_n,
                sizes.publish_seconds,
            )
        cpu2 = hookline.cpu()
        await hookline.delete_subscription(sub)
        result = {
            "single_rate": single.rate,
            "single_cpu_per_1k": (cpu1 - cpu0) / max(1, single.messages) * 1000,
            "batch_cpu_per_1k": (cpu2 - cpu1) / max(1, batch.messages) * 1000,
            "single_errors": single.errors,
            "single_messages": single.messages,
            "batch_rate": batch.rate,
            "batch_errors": batch.errors,
            "batch_messages": batch.messages,
            "statuses": {**single.statuses, **batch.statuses},
            "lost": [],
        }
        ctx.profile_summary(hookline, "publish-single", result)
        ctx.profile_summary(hookline, "publish-batch", result)
        return result
    finally:
        await stop_hookline(ctx, hookline)


# -- scenario 2: drain ----------------------------------------------------------------------


async def prequeue(
    hookline: Hookline, topic: str, count: int, subs: list[str], keys: int | None = None
) -> list[str]:
    """Publish ``count`` messages through the batch API while the subscriptions are paused
    (``keys``: spread over that many ordering keys, round robin).
    """
    del subs
    ids: list[str] = []
    step = 10_000
    for start in range(0, count, step):
        chunk = [make_data(i) for i in range(start, min(count, start + step))]
        batches = await hookline.publish_batches(topic, chunk, batch=1000, parallel=2, keys=keys)
        ids.extend(batches)
    return ids


def drain_timeout(count: int) -> float:
    return 60 + count / 300


async def drain(
    ctx: Context,
    kind: str,
    extra_config: dict[str, Any] | None = None,
    ordering_keys: int | None = None,
) -> dict[str, Any]:
    """N x 1 KB queued behind a paused subscription; resume; time until all are received.

    ``ordering_keys``: the messages carry that many ordering keys (round robin) and the
    subscription is ``ordering: key``.
    """
    n = ctx.sizes.drain_n
    tag = "-".join(f"{k}" for k in extra_config or {})
    if ordering_keys:
        tag += f"ordered{ordering_keys}"
    hookline = await start_hookline(ctx, kind, f"{kind}-drain{tag}", extra_config)
    try:
        topic = ctx.unique("drain")
        sub = await hookline.subscribe(
            topic,
            ctx.receiver.url("drain"),
            paused=True,
            max_in_flight=ctx.sizes.concurrency,
            ordering="key" if ordering_keys else None,
        )
        ids = await prequeue(hookline, topic, n, [sub], keys=ordering_keys)
        await ctx.receiver.reset(fail=False)
        await asyncio.sleep(ctx.sizes.settle_s)
        # One profile per variant (the insight scenario drains with the log off, then on).
        phase = "drain" + "".join(
            f"-{key}-{'on' if value.get('enabled', True) else 'off'}"
            for key, value in (extra_config or {}).items()
            if isinstance(value, dict)
        )
        async with ctx.profiled(hookline, phase):
            cpu_before = hookline.cpu()
            started = time.monotonic()
            await hookline.resume(sub)
            stats = await ctx.receiver.wait_for(n, drain_timeout(n))
            cpu = hookline.cpu() - cpu_before
        rss, hwm = hookline.memory()
        seconds = (stats["last_new_ok_t"] or time.monotonic()) - started
        checked = check_delivered(await ctx.receiver.dump(), "drain", ids)
        await hookline.delete_subscription(sub)
        result = {
            "n": n,
            "rate": checked["delivered"] / seconds if seconds > 0 else 0.0,
            "seconds": seconds,
            "cpu_per_1k": cpu / max(1, checked["delivered"]) * 1000,
            "rss_mb": rss,
            "peak_rss_mb": hwm,
            "duplicates": checked["duplicates"],
            "lost": checked["lost"],
        }
        ctx.profile_summary(hookline, phase, result)
        return result
    finally:
        await stop_hookline(ctx, hookline)


# -- backlog RSS ----------------------------------------------------------------------------


async def backlog(
    ctx: Context, kind: str, extra_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """RSS of hookline holding N x 1 KB for a paused subscription."""
    n = ctx.sizes.backlog_n
    tag = "-".join(f"{k}" for k in extra_config or {})
    hookline = await start_hookline(ctx, kind, f"{kind}-backlog{tag}", extra_config)
    try:
        topic = ctx.unique("backlog")
        sub = await hookline.subscribe(
            topic, ctx.receiver.url("backlog"), paused=True, max_in_flight=ctx.sizes.concurrency
        )
        _, base = hookline.memory()
        await prequeue(hookline, topic, n, [sub])
        await asyncio.sleep(ctx.sizes.settle_s * 2)
        rss, hwm = hookline.memory()
        stats = await hookline.call("GET", f"/v1/topics/{topic}")
        await hookline.delete_subscription(sub)
        return {
            "n": n,
            "rss_mb": rss,
            "peak_rss_mb": hwm,
            "start_rss_mb": base,
            "topic_stats": stats,
            "lost": [],
        }
    finally:
        await stop_hookline(ctx, hookline)


# -- scenario 3: latency --------------------------------------------------------------------


async def latency(ctx: Context, kind: str) -> dict[str, Any]:
    """Open loop at a fixed rate; from when each publish was due to its first receipt.

    With ``latency_low_rate`` set, a shorter point at that lower rate runs first: when the
    main rate overloads hookline, it shows the latency of a process that keeps up.
    """
    sizes = ctx.sizes
    hookline = await start_hookline(ctx, kind, f"{kind}-latency")
    try:
        topic = ctx.unique("latency")
        sub = await hookline.subscribe(
            topic, ctx.receiver.url("lat"), paused=False, max_in_flight=sizes.concurrency
        )
        path = f"/v1/topics/{topic}/messages"
        bodies = message_bodies(2000)
        await ctx.receiver.reset(fail=False)
        warm = await open_loop(
            "127.0.0.1",
            hookline.port,
            path,
            lambda i: bodies[i % len(bodies)],
            200,
            min(1.0, sizes.latency_seconds / 2),
        )
        await ctx.receiver.wait_for(len(warm.sent_at), 30)
        low = None
        if sizes.latency_low_rate:
            low = await _latency_point(
                ctx, hookline, path, bodies, sizes.latency_low_rate, sizes.latency_low_seconds
            )
        async with ctx.profiled(hookline, "latency"):
            figures = await _latency_point(
                ctx, hookline, path, bodies, sizes.latency_rate, sizes.latency_seconds
            )
        if low is not None:
            figures["low_rate"] = low
            figures["lost"] = figures["lost"] + low.pop("lost")
        await hookline.delete_subscription(sub)
        ctx.profile_summary(hookline, "latency", figures)
        return figures
    finally:
        await stop_hookline(ctx, hookline)


async def _latency_point(
    ctx: Context, hookline: Hookline, path: str, bodies: list[bytes], rate: float, seconds: float
) -> dict[str, Any]:
    await ctx.receiver.reset(fail=False)
    cpu_before = hookline.cpu()
    result = await open_loop(
        "127.0.0.1", hookline.port, path, lambda i: bodies[i % len(bodies)], rate, seconds
    )
    ids = list(result.sent_at)
    await ctx.receiver.wait_for(len(ids), 60)
    cpu_s = hookline.cpu() - cpu_before
    dump = await ctx.receiver.dump()
    checked = check_delivered(dump, "lat", ids)
    latencies = []
    accepts = [(result.answered_at[i] - due) * 1000 for i, due in result.sent_at.items()]
    retried = 0
    for message_id, due in result.sent_at.items():
        record = dump.get(f"lat {message_id}")
        if record is None:
            continue
        if record[0] > 1 and record[3] != record[2]:
            retried += 1  # first attempt failed: not a first-attempt latency
            continue
        latencies.append((record[2] - due) * 1000)
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": result.sent,
        "accepted": len(ids),
        "publish_errors": result.errors,
        "unanswered": result.unanswered,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "accept_p50_ms": percentile(accepts, 0.50),
        "accept_p99_ms": percentile(accepts, 0.99),
        "loadgen_lag_p99_ms": percentile(result.lag_ms, 0.99),
        "cpu_ms_per_message": cpu_s * 1000 / len(ids) if ids else float("nan"),
        "cpu_share": cpu_s / seconds,
        "connections": result.connections,
        "retried": retried,
        "duplicates": checked["duplicates"],
        "lost": checked["lost"],
    }


SWEEP_P99_MS = 20.0
"""The sweep's bar: the highest rate whose p99 publish-to-receipt stays at or under it."""


async def sweep(ctx: Context, kind: str) -> dict[str, Any]:
    """Open loop at rising rates (issue 12); the highest rate with p99 <= 20 ms.

    A rate that overloads hookline (publishes not answered in time, or p99 over a second)
    ends the sweep: the rates above it would only measure a growing queue, for minutes.
    """
    sizes = ctx.sizes
    hookline = await start_hookline(ctx, kind, f"{kind}-sweep")
    try:
        topic = ctx.unique("sweep")
        sub = await hookline.subscribe(
            topic, ctx.receiver.url("lat"), paused=False, max_in_flight=sizes.concurrency
        )
        path = f"/v1/topics/{topic}/messages"
        bodies = message_bodies(2000)
        await ctx.receiver.reset(fail=False)
        warm = await open_loop(
            "127.0.0.1", hookline.port, path, lambda i: bodies[i % len(bodies)], 200, 1.0
        )
        await ctx.receiver.wait_for(len(warm.sent_at), 30)
        points: list[dict[str, Any]] = []
        lost: list[str] = []
        for rate in sizes.sweep_rates:
            phase = f"sweep-{rate:.0f}"
            async with ctx.profiled(hookline, phase):
                point = await _latency_point(ctx, hookline, path, bodies, rate, sizes.sweep_seconds)
            lost += point.pop("lost")
            points.append(point)
            ctx.profile_summary(hookline, phase, point)
            overloaded = point["accepted"] < point["sent"] or not point["p99_ms"] <= 1000
            if overloaded:
                break
        await hookline.delete_subscription(sub)
        kept = [
            p["rate"] for p in points if p["p99_ms"] <= SWEEP_P99_MS and p["accepted"] == p["sent"]
        ]
        return {
            "points": points,
            "best_rate": max(kept) if kept else 0.0,
            "p99_bar_ms": SWEEP_P99_MS,
            "lost": lost,
        }
    finally:
        await stop_hookline(ctx, hookline)


# -- scenario 4: fan-out --------------------------------------------------------------------


async def fanout(ctx: Context, kind: str) -> dict[str, Any]:
    """K paused subscriptions on one topic, N messages queued, all resumed: deliveries/s."""
    sizes = ctx.sizes
    hookline = await start_hookline(ctx, kind, f"{kind}-fanout")
    try:
        topic = ctx.unique("fanout")
        subs = [
            await hookline.subscribe(
                topic, ctx.receiver.url(f"f{k}"), paused=True, max_in_flight=sizes.concurrency
            )
            for k in range(sizes.fanout_subs)
        ]
        ids = await prequeue(hookline, topic, sizes.fanout_n, subs)
        await ctx.receiver.reset(fail=False)
        await asyncio.sleep(ctx.sizes.settle_s)
        expected = len(ids) * len(subs)
        cpu_before = hookline.cpu()
        started = time.monotonic()
        await asyncio.gather(*(hookline.resume(s) for s in subs))
        stats = await ctx.receiver.wait_for(expected, drain_timeout(expected))
        cpu = hookline.cpu() - cpu_before
        seconds = (stats["last_new_ok_t"] or time.monotonic()) - started
        dump = await ctx.receiver.dump()
        lost: list[str] = []
        delivered = duplicates = 0
        for k in range(len(subs)):
            checked = check_delivered(dump, f"f{k}", ids)
            lost.extend(f"f{k}:{i}" for i in checked["lost"])
            delivered += checked["delivered"]
            duplicates += checked["duplicates"]
        for sub in subs:
            await hookline.delete_subscription(sub)
        _, hwm = hookline.memory()
        return {
            "subscriptions": len(subs),
            "messages": len(ids),
            "deliveries": delivered,
            "rate": delivered / seconds if seconds > 0 else 0.0,
            "seconds": seconds,
            "cpu_per_1k": cpu / max(1, delivered) * 1000,
            "peak_rss_mb": hwm,
            "duplicates": duplicates,
            "lost": lost,
        }
    finally:
        await stop_hookline(ctx, hookline)


# -- scenario 5: failures -------------------------------------------------------------------


async def failures(ctx: Context, kind: str) -> dict[str, Any]:
    """9 % fail once, 1 % always fail: all delivered or dead-lettered, none lost."""
    n = ctx.sizes.failures_n
    hookline = await start_hookline(ctx, kind, f"{kind}-failures")
    try:
        topic = ctx.unique("failures")
        sub = await hookline.subscribe(
            topic,
            ctx.receiver.url("fail"),
            paused=True,
            max_in_flight=ctx.sizes.concurrency,
            retry=FAILURE_RETRY,
        )
        ids = await prequeue(hookline, topic, n, [sub])
        doomed = {i for i in ids if fate(i) == "always_fail"}
        attempts = FAILURE_RETRY["max_retries"] + 1
        await ctx.receiver.reset(fail=True)
        started = time.monotonic()
        await hookline.resume(sub)
        stats = await ctx.receiver.wait_for(
            len(ids) - len(doomed), drain_timeout(n), always_fail_attempts=attempts * len(doomed)
        )
        dead: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = await hookline.call("GET", f"/v1/topics/{topic}/dlq/count")
            if count["count"] >= len(doomed):
                break
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - started
        dead = await hookline.dlq_message_ids(topic)
        checked = check_delivered(await ctx.receiver.dump(), "fail", ids, set(dead))
        wrongly_dead = sorted(set(dead) - doomed)
        await hookline.delete_subscription(sub)
        return {
            "n": len(ids),
            "delivered": checked["delivered"],
            "dead_lettered": len(dead),
            "expected_dead": len(doomed),
            "wrongly_dead": len(wrongly_dead),
            "duplicates": checked["duplicates"],
            "attempts": stats["requests"],
            "seconds": seconds,
            "lost": checked["lost"],
        }
    finally:
        await stop_hookline(ctx, hookline)


async def insight_cost(ctx: Context, kind: str) -> dict[str, Any]:
    """Issue 13: drain with the delivery insight log off and on; the log may cost at most
    15 % of drain throughput.

    One pair of drains moves by 10-30 % with whatever else the machine does in those
    seconds, more than the difference measured, so the scenario runs ``insight_pairs``
    pairs, alternating which half goes first (drift cancels), each drain in a fresh
    process, and reports the median of the pairs' ratios with every pair beside it.
    """
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for index in range(ctx.sizes.insight_pairs):
        order = (False, True) if index % 2 == 0 else (True, False)
        halves = {
            enabled: await drain(ctx, kind, {"insight": {"enabled": enabled}}) for enabled in order
        }
        pairs.append((halves[False], halves[True]))
    ratios = [on["rate"] / off["rate"] if off["rate"] else 0.0 for off, on in pairs]
    cpu_added = [
        on["cpu_per_1k"] / off["cpu_per_1k"] - 1 if off["cpu_per_1k"] else 0.0 for off, on in pairs
    ]
    ratio = statistics.median(ratios)
    return {
        "n": pairs[0][1]["n"],
        "pairs": len(pairs),
        "rate": statistics.median(on["rate"] for _, on in pairs),
        "rate_off": statistics.median(off["rate"] for off, _ in pairs),
        "on_vs_off": ratio,
        "on_vs_off_pairs": ratios,
        "cost_pct": (1 - ratio) * 100,
        "cpu_per_1k": statistics.median(on["cpu_per_1k"] for _, on in pairs),
        "cpu_per_1k_off": statistics.median(off["cpu_per_1k"] for off, _ in pairs),
        "cpu_added_pct": statistics.median(cpu_added) * 100,
        "pair_rates": [(off["rate"], on["rate"]) for off, on in pairs],
        "pair_cpu_per_1k": [(off["cpu_per_1k"], on["cpu_per_1k"]) for off, on in pairs],
        "lost": [lost for off, on in pairs for lost in on["lost"] + off["lost"]],
        "duplicates": sum(on["duplicates"] + off["duplicates"] for off, on in pairs),
    }


async def duel(
    ctx: Context, variants: dict[str, tuple[str, dict[str, Any] | None]]
) -> dict[str, Any]:
    """Two processes drain at once on the same core (``--pinned``: CPU 0), each with its own
    backend namespace and N messages behind a paused subscription, resumed together. The
    core is shared fairly while both drain, so what each delivered until the first one
    finished is in the ratio of their throughputs, and whatever slows the machine in those
    seconds slows both alike (sequential drains here drift by 10-30 %).

    ``variants``: tag -> (adapter kind, extra config), two of them; the result has each
    tag's deliveries in the common window and the lost/duplicate checks of both.
    """
    n = ctx.sizes.drain_n
    processes: dict[str, Hookline] = {}
    try:
        subs: dict[str, str] = {}
        ids: dict[str, list[str]] = {}
        for tag, (kind, extra) in variants.items():
            hookline = await start_hookline(
                ctx, kind, f"{kind}-duel-{tag}", extra or {}, run_id=f"{ctx.run_id}-{tag}"
            )
            processes[tag] = hookline
            topic = ctx.unique(tag)
            subs[tag] = await hookline.subscribe(
                topic, ctx.receiver.url(tag), paused=True, max_in_flight=ctx.sizes.concurrency
            )
            ids[tag] = await prequeue(hookline, topic, n, [subs[tag]])
        await ctx.receiver.reset(fail=False)
        await asyncio.sleep(ctx.sizes.settle_s)
        await asyncio.gather(*(processes[tag].resume(subs[tag]) for tag in variants))
        await ctx.receiver.wait_for(2 * n, drain_timeout(2 * n))
        dump = await ctx.receiver.dump()
        times = {
            tag: sorted(
                record[3]
                for key, record in dump.items()
                if key.startswith(f"{tag} ") and record[1] >= 1
            )
            for tag in variants
        }
        start = max(stamps[0] for stamps in times.values())
        first_done = min(stamps[-1] for stamps in times.values())
        checks = {tag: check_delivered(dump, tag, ids[tag]) for tag in variants}
        return {
            "n": n,
            "delivered": {
                tag: sum(1 for t in stamps if start <= t <= first_done)
                for tag, stamps in times.items()
            },
            "window_seconds": first_done - start,
            "lost": [lost for check in checks.values() for lost in check["lost"]],
            "duplicates": sum(check["duplicates"] for check in checks.values()),
        }
    finally:
        for hookline in processes.values():
            await stop_hookline(ctx, hookline)


async def insight_duel(ctx: Context, kind: str) -> dict[str, Any]:
    """Issue 13: the log off and on, draining together on one core (:func:`duel`)."""
    result = await duel(
        ctx,
        {
            "duel-off": (kind, {"insight": {"enabled": False}}),
            "duel-on": (kind, {"insight": {"enabled": True}}),
        },
    )
    on, off = result["delivered"]["duel-on"], result["delivered"]["duel-off"]
    ratio = on / off if off else 0.0
    window = result["window_seconds"]
    return {
        **result,
        "delivered_on": on,
        "delivered_off": off,
        "rate": on / window if window > 0 else 0.0,
        "rate_off": off / window if window > 0 else 0.0,
        "on_vs_off": ratio,
        "cost_pct": (1 - ratio) * 100,
    }


async def builtin_duel(ctx: Context, kind: str) -> dict[str, Any]:
    """Issue 15: an adapter's drain against the in-memory adapter's, draining together on
    one core (:func:`duel`): the ratio of their throughputs without the machine's drift.
    """
    if kind == "builtin":
        raise UnavailableError("the reference itself (run it for another adapter)")
    result = await duel(ctx, {"duel-this": (kind, None), "duel-builtin": ("builtin", None)})
    this, builtin = result["delivered"]["duel-this"], result["delivered"]["duel-builtin"]
    return {
        **result,
        "delivered_this": this,
        "delivered_builtin": builtin,
        "vs_builtin": this / builtin if builtin else 0.0,
    }


async def insight_backlog(ctx: Context, kind: str) -> dict[str, Any]:
    """Issue 12/13: the backlog's peak RSS with the delivery insight log off, then on (the
    log's copy of every held message is what it adds).
    """
    off = await backlog(ctx, kind, {"insight": {"enabled": False}})
    on = await backlog(ctx, kind, {"insight": {"enabled": True}})
    return {
        "n": on["n"],
        "peak_rss_mb": on["peak_rss_mb"],
        "peak_rss_mb_off": off["peak_rss_mb"],
        "rss_on_vs_off": on["peak_rss_mb"] / off["peak_rss_mb"] if off["peak_rss_mb"] else 0.0,
        "rss_mb": on["rss_mb"],
        "rss_mb_off": off["rss_mb"],
        "start_rss_mb": on["start_rss_mb"],
        "lost": [],
    }


ORDERED_KEYS = 1_000
"""Issue 14: keys of the ordered drain (each key's messages go one at a time)."""


async def ordered_drain(ctx: Context, kind: str) -> dict[str, Any]:
    """Issue 14: drain with 1,000 ordering keys on an ``ordering: key`` subscription vs the
    same drain unordered, in one run; target: ordered >= 0.6 of unordered.
    """
    unordered = await drain(ctx, kind)
    ordered = await drain(ctx, kind, ordering_keys=ORDERED_KEYS)
    ratio = ordered["rate"] / unordered["rate"] if unordered["rate"] else 0.0
    return {
        "n": ordered["n"],
        "keys": ORDERED_KEYS,
        "rate": ordered["rate"],
        "rate_unordered": unordered["rate"],
        "ordered_vs_unordered": ratio,
        "cpu_per_1k": ordered["cpu_per_1k"],
        "cpu_per_1k_unordered": unordered["cpu_per_1k"],
        "lost": ordered["lost"] + unordered["lost"],
        "duplicates": ordered["duplicates"] + unordered["duplicates"],
    }


SCENARIOS = {
    "publish": publish,
    "ordered": ordered_drain,
    "insight": insight_cost,
    "insight-duel": insight_duel,
    "builtin-duel": builtin_duel,
    "insight-backlog": insight_backlog,
    "drain": drain,
    "backlog": backlog,
    "latency": latency,
    "fanout": fanout,
    "failures": failures,
    "sweep": sweep,
}


# -- raw ceilings ---------------------------------------------------------------------------

CEILING_OF = {
    "builtin": "pyreqwest",  # the sender's client, in a bare loop
    "redis": "redis",
    "rabbitmq": "rabbitmq",
    "sqlite": "pyreqwest",  # no server: the bare sending loop is its ceiling, as for builtin
    "sqlite-full": "pyreqwest",
}


async def ceiling(ctx: Context, adapter: str) -> dict[str, Any]:
    """The backend's bare loop, in its own process, draining ``drain_n`` messages."""
    return await bare_loop(ctx, CEILING_OF[adapter], ctx.sizes.drain_n)


async def bare_loop(ctx: Context, kind: str, n: int) -> dict[str, Any]:
    """``bench.ceilings KIND`` on hookline's core (pinned mode), delivering ``n`` messages."""
    await ctx.receiver.reset(fail=False)
    argv = [
        *PIN["server"],
        PYTHON,
        "-m",
        "bench.ceilings",
        kind,
        "--n",
        str(n),
        "--url",
        ctx.receiver.url("ceil"),
        "--concurrency",
        str(ctx.sizes.concurrency),
        "--redis-url",
        REDIS_URL,
        "--amqp-url",
        AMQP_URL,
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), drain_timeout(n) * 2)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode == UNAVAILABLE_EXIT:
        raise UnavailableError(err.decode().strip().splitlines()[-1])
    if process.returncode != 0:
        raise RuntimeError(f"ceiling {kind} failed: {err.decode()[-500:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    stats = await ctx.receiver.stats()
    result["receiver_unique_ok"] = stats["unique_ok"]
    result["lost"] = []
    return result


async def receiver_ceiling(ctx: Context) -> dict[str, Any]:
    """The receiver alone, hammered by the raw client (no hookline, no aiohttp)."""
    await ctx.receiver.reset(fail=False)
    n = ctx.sizes.receiver_n
    body = json.dumps({"data": make_data(0)}).encode()
    requests = [
        build_request(
            "POST", "127.0.0.1", ctx.receiver.port, "/h/rc", body, {"webhook-id": f"rc-{i}"}
        )
        for i in range(n)
    ]
    result = await closed_loop("127.0.0.1", ctx.receiver.port, requests, 1, 32, n, 60, ok=200)
    await ctx.receiver.reset(fail=False)
    return {"rate": result.rate, "requests": result.requests, "errors": result.errors, "lost": []}
