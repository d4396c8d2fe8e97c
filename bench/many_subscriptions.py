"""Issue 11's "many subscriptions" scenario: ``python -m bench.many_subscriptions``.

For each adapter, one ``hookline serve`` with 10,000 subscriptions (1,000 of them on one
fan-out topic, the rest one topic each), and these figures against the issue's targets:

- idle CPU of the process, as a fraction of one core (target < 5 %);
- publish -> delivery latency to one of them, median and worst of a few (target < 100 ms);
- a second instance on the same backend ready (``/readyz`` 200) after start (< 10 s);
- fan-out of one message to 1,000 subscriptions: deliveries/s (>= 5,000 on builtin; the
  first, then a second one warm) and RSS after both against before (back within 50 MB);
- a healthy subscription's delivery rate beside a hung receiver (changed by < 10 %).

Options: ``--adapters builtin redis rabbitmq sqlite``, ``--subscriptions``, ``--fanout``,
``--idle-s``, ``--profile DIR`` (py-spy summaries of the create, idle and fan-out phases),
``--baseline DIR`` (measure another checkout's app first, adapter by adapter),
``--isolation N`` (a healthy subscription's rate over N messages, twice alone and once
beside a hung receiver holding 1,000 in flight; 0 skips it).
It prints a markdown table and one met/missed line per target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import Processes, busy_fraction
from bench.profiling import sampled, summarize
from bench.service import HOOKLINE_DIR, Hookline, adapter_setup, cleanup_backend

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Arrivals:
    """What the receiver saw: arrival times per path, and waiters on paths."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.fanout = 0
        self.fanout_last = 0.0
        self.fanout_goal = 0
        self.fanout_done = asyncio.Event()
        self.iso = 0
        self.iso_goal = 0
        self.iso_done = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[float]] = {}

    def arrived(self, path: str) -> None:
        now = time.monotonic()
        if path.startswith("/h/iso"):
            self.iso += 1
            if self.iso >= self.iso_goal:
                self.iso_done.set()
            return
        if path.startswith("/h/fan"):
            self.fanout += 1
            self.fanout_last = now
            if self.fanout >= self.fanout_goal:
                self.fanout_done.set()
            return
        self.times[path].append(now)
        waiter = self._waiters.pop(path, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    def expect(self, path: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[path] = future
        return future


class _Protocol(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server: 200 to everything, arrival recorded."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            del self.buffer[:total]
            parts = head[0].split(" ")
            self.arrivals.arrived(parts[1] if len(parts) > 1 else "/")
            replies += 1
        if replies and self.transport is not None:
            self.transport.write(OK * replies)


async def create_subscriptions(hookline: Hookline, base: str, total: int, fanout: int) -> None:
    """``fanout`` subscriptions on topic ``fan``, the rest on a topic each."""
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        fan = i < fanout
        body = {
            "id": f"many-{i}",
            "topic": "fan" if fan else f"many.{i}",
            "url": f"{base}/h/{'fan' if fan else 's'}{i}",
            "max_in_flight": 10,
        }
        async with semaphore:
            await hookline.call("POST", "/v1/subscriptions", json=body)

    await asyncio.gather(*(one(i) for i in range(total)))


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A receiver that reads requests and never answers."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass
    writer.close()


async def healthy_rate(hookline: Hookline, arrivals: Arrivals, count: int) -> float:
    """Deliveries/s of ``count`` messages to the healthy isolation subscription."""
    arrivals.iso, arrivals.iso_goal = 0, count
    arrivals.iso_done.clear()
    started = time.monotonic()
    for start in range(0, count, 1000):  # the API's batch limit
        messages = [{"data": {"i": i}} for i in range(start, min(count, start + 1000))]
        await hookline.call(
            "POST", "/v1/topics/iso.healthy/messages/batch", json={"messages": messages}
        )
    await asyncio.wait_for(arrivals.iso_done.wait(), 120)
    return count / (time.monotonic() - started)


async def isolation(
    hookline: Hookline, arrivals: Arrivals, base: str, count: int
) -> dict[str, Any]:
    """A healthy subscription's rate alone (twice: the noise) and beside a hung receiver
    holding 1,000 messages in flight (60 s timeout): the issue wants the change < 10 %.
    """
    hung_server = await asyncio.start_server(_hang, "127.0.0.1", 0)
    hung_url = f"http://127.0.0.1:{hung_server.sockets[0].getsockname()[1]}/hung"
    healthy = {"id": "iso-healthy", "topic": "iso.healthy", "url": f"{base}/h/iso"}
    hung = {
        "id": "iso-hung",
        "topic": "iso.hung",
        "url": hung_url,
        "max_in_flight": 1000,
        "timeout_ms": 60000,
    }
    try:
        await hookline.call("POST", "/v1/subscriptions", json={**healthy, "max_in_flight": 10})
        await healthy_rate(hookline, arrivals, 50)  # warm-up: worker, connections
        alone = [await healthy_rate(hookline, arrivals, count) for _ in range(2)]
        await hookline.call("POST", "/v1/subscriptions", json=hung)
        messages = [{"data": {"i": i}} for i in range(1000)]
        await hookline.call(
            "POST", "/v1/topics/iso.hung/messages/batch", json={"messages": messages}
        )
        await asyncio.sleep(1.0)  # let the hung subscription fill its connections
        beside = await healthy_rate(hookline, arrivals, count)
        await hookline.call("DELETE", "/v1/subscriptions/iso-hung")
    finally:
        hung_server.close()
    mean = sum(alone) / 2
    return {
        "iso_alone": mean,
        "iso_noise": abs(alone[0] - alone[1]) / mean,
        "iso_beside": beside,
        "iso_change": abs(beside - mean) / mean,
    }


async def settle(hookline: Hookline, within_s: float = 180.0) -> None:
    """Until the process stops working through its start-up (CPU under 10 % for 2 s)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = hookline.cpu()
        await asyncio.sleep(2)
        if (hookline.cpu() - before) / 2 < 0.10:
            return


async def measure(
    kind: str, args: argparse.Namespace, workdir: Path, label: str = ""
) -> dict[str, Any]:
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(arrivals), "127.0.0.1", 0, backlog=1024)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    processes = Processes(workdir)
    setup = adapter_setup(kind, uuid.uuid4().hex[:8])
    result: dict[str, Any] = {"adapter": kind}
    first = Hookline(processes, setup, workdir, f"{kind}-first")
    second = Hookline(processes, setup, workdir, f"{kind}-second")
    try:
        await first.start()
        started = time.monotonic()
        raw = workdir / f"{kind}-create.raw"
        async with sampled(first.pid, raw, args.profile is not None):
            await create_subscriptions(first, base, args.subscriptions, args.fanout)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            (args.profile / f"{kind}{label}-create.txt".replace(" ", "")).write_text(
                summarize(raw, 40)
            )
        result["create_s"] = time.monotonic() - started
        await settle(first)
        before = first.cpu()
        window = time.monotonic()
        raw = workdir / f"{kind}-idle.raw"
        async with sampled(first.pid, raw, args.profile is not None):
            await asyncio.sleep(args.idle_s)  # the measurement window
        if args.profile is not None:
            (args.profile / f"{kind}{label}-idle.txt".replace(" ", "")).write_text(
                summarize(raw, 40)
            )
        result["idle_cpu"] = (first.cpu() - before) / (time.monotonic() - window)
        result["rss_idle_mb"] = first.memory()[0]

        latencies = []
        for k in range(args.samples):
            i = args.fanout + (k * 7919) % (args.subscriptions - args.fanout)
            waiter = arrivals.expect(f"/h/s{i}")
            sent = time.monotonic()
            await first.call("POST", f"/v1/topics/many.{i}/messages", json={"data": {"k": k}})
            latencies.append((await asyncio.wait_for(waiter, 30)) - sent)
        result["latency_p50_ms"] = statistics.median(latencies) * 1000
        result["latency_max_ms"] = max(latencies) * 1000

        started = time.monotonic()
        await second.start()
        result["second_ready_s"] = time.monotonic() - started
        await second.stop()
        await settle(first, 60)

        rss_before = first.memory()[0]
        arrivals.fanout, arrivals.fanout_goal = 0, args.fanout
        arrivals.fanout_done.clear()
        raw = workdir / f"{kind}-fanout.raw"
        async with sampled(first.pid, raw, args.profile is not None):
            sent = time.monotonic()
            await first.call("POST", "/v1/topics/fan/messages", json={"data": {"fan": True}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.fanout_done.wait(), 60)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            (args.profile / f"{kind}{label}-fanout.txt".replace(" ", "")).write_text(
                summarize(raw, 40)
            )
        result["fanout_delivered"] = arrivals.fanout
        elapsed = max(arrivals.fanout_last - sent, 1e-6)
        result["fanout_per_s"] = arrivals.fanout / elapsed
        await settle(first, 30)
        # Again, warm: the first delivery to each subscription also creates its metric
        # series and connection-pool entries, once in the life of the process.
        arrivals.fanout = 0
        arrivals.fanout_done.clear()
        sent = time.monotonic()
        await first.call("POST", "/v1/topics/fan/messages", json={"data": {"fan": 2}})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.fanout_done.wait(), 60)
        elapsed = max(arrivals.fanout_last - sent, 1e-6)
        result["fanout_warm_per_s"] = arrivals.fanout / elapsed
        await settle(first, 30)
        result["rss_delta_mb"] = first.memory()[0] - rss_before
        if args.isolation:
            result.update(await isolation(first, arrivals, base, args.isolation))
    finally:
        await second.stop()
        await first.stop()
        server.close()
        try:
            result["cleanup"] = await cleanup_backend(setup)
        except Exception as exc:  # a failed clean-up must not discard the figures
            result["cleanup"] = f"failed: {type(exc).__name__}: {exc}"
    return result


def targets(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, figure) for one adapter's result."""
    kind = result["adapter"]
    rows = [
        ("idle CPU < 5 % of a core", result["idle_cpu"] < 0.05, f"{result['idle_cpu']:.1%}"),
        (
            "publish -> delivery < 100 ms",
            result["latency_max_ms"] < 100,
            f"p50 {result['latency_p50_ms']:.0f} ms, max {result['latency_max_ms']:.0f} ms",
        ),
        (
            "second instance ready < 10 s",
            result["second_ready_s"] < 10,
            f"{result['second_ready_s']:.1f} s",
        ),
        (
            "fan-out RSS back within 50 MB",
            result["rss_delta_mb"] < 50,
            f"{result['rss_delta_mb']:+.0f} MB",
        ),
    ]
    if "iso_change" in result:
        rows.append(
            (
                "hung receiver changes a healthy rate < 10 %",
                result["iso_change"] < 0.10,
                (
                    f"{result['iso_change']:.1%}: {result['iso_alone']:.0f}/s alone (runs "
                    f"{result['iso_noise']:.0%} apart), {result['iso_beside']:.0f}/s beside it"
                ),
            )
        )
    if kind == "builtin":
        rows.append(
            (
                "fan-out >= 5,000 deliveries/s",
                result["fanout_per_s"] >= 5000,
                f"{result['fanout_per_s']:.0f}/s first, {result['fanout_warm_per_s']:.0f}/s warm",
            )
        )
    return rows


def report(results: list[dict[str, Any]], subscriptions: int, fanout: int) -> str:
    head = (
        f"## many subscriptions ({subscriptions} on one instance, fan-out to {fanout})\n\n"
        "| adapter | create s | idle CPU | RSS idle MB | latency p50/max ms | 2nd ready s "
        "| fan-out /s (warm) | delivered | RSS delta MB |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['run']} | error: {r['error']} |")
            continue
        lines.append(
            f"| {r['run']} | {r['create_s']:.1f} | {r['idle_cpu']:.1%} "
            f"| {r['rss_idle_mb']:.0f} | {r['latency_p50_ms']:.0f}/{r['latency_max_ms']:.0f} "
            f"| {r['second_ready_s']:.1f} | {r['fanout_per_s']:.0f} ({r['fanout_warm_per_s']:.0f}) "
            f"| {r['fanout_delivered']} "
            f"| {r['rss_delta_mb']:+.0f} |"
        )
    lines.append("")
    for r in results:
        if "error" in r:
            continue
        for name, met, figure in targets(r):
            lines.append(f"- {r['run']}: {name}: {'met' if met else 'MISSED'} ({figure})")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    results = []
    checkouts: list[tuple[str, Path | None]] = [("", None)]
    if args.baseline is not None:  # baseline first, then this checkout, adapter by adapter
        checkouts.insert(0, (" (baseline)", args.baseline.resolve()))
    with tempfile.TemporaryDirectory(prefix="hookline-many-") as tmp:
        for kind in args.adapters:
            for label, checkout in checkouts:
                HOOKLINE_DIR["path"] = checkout
                print(f"[many-subscriptions] {kind}{label} ...", file=sys.stderr, flush=True)
                if await busy_fraction() > 0.5:
                    print("[many-subscriptions] note: the machine is busy", file=sys.stderr)
                try:
                    result = await measure(kind, args, Path(tmp), label)
                except Exception as exc:  # report the adapter, run the next
                    result = {"adapter": kind, "error": f"{type(exc).__name__}: {exc}"}
                result["run"] = f"{kind}{label}"
                results.append(result)
    print(report(results, args.subscriptions, args.fanout))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapters", nargs="+", default=["builtin", "redis", "rabbitmq", "sqlite"])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--fanout", type=int, default=1_000)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument(
        "--isolation",
        type=int,
        default=500,
        help="messages per healthy-rate measurement beside a hung receiver (0: skip)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy summaries of the create, idle and fan-out phases into this directory",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. a `git archive` of main): each adapter is measured "
        "with its app first, then with this one, for side-by-side figures",
    )
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
