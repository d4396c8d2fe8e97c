"""What the delivery insight log adds to one delivery, in process, without HTTP (issue 13).

The drain scenario's on/off ratio moves with whatever else runs on a 2-core machine; this
measures only the log's share of a delivery's CPU: each round runs one fresh process per
implementation (this checkout, and the one under ``--baseline``, a directory holding an
``app/``), alternating, so both see the same load. A process publishes ``--messages``
1 KB messages to the builtin adapter (the recorder told of each, flushed, then the heap
frozen as at start), and drains them as the worker does: lease 64, an ``in_flight`` mark
per copy, the request body built, an attempt record per copy, ack, the recorder's flush
every ``--per-flush`` deliveries (the drain's batch size at ~14,000 deliveries/s and a 5 ms
flush). The same
loop with insight off (no recorder, as the worker then does) is the reference:
``added_us`` is process CPU per delivery, on minus off.

    python -m bench.insight_path --baseline /tmp/main-copy --rounds 3
    python -m bench.insight_path --baseline /tmp/main-copy --redis redis://127.0.0.1:6379/13

With ``--redis`` the recorder writes to a :class:`RedisInsightStore` on that server
(keys under a prefix unique to the run, deleted after) instead of the memory store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import asyncio, gc, json, sys, time, uuid
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from bench.common import make_data
from app.adapters.builtin import BuiltinQueueAdapter
from app.core.insight import AttemptRecord, InsightSettings, StateMark
from app.core.models import Envelope, Subscription, now_ms
from app.core.ports import OutgoingMessage
from app.dispatch.insight_recorder import InsightRecorder
from app.dispatch.payload import build_body

n, per_flush, mode, redis_url = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]


async def main():
    adapter = BuiltinQueueAdapter()
    settings = InsightSettings()
    store = None
    cleanup = None
    if mode == "on":
        if redis_url:
            from app.adapters.redis.adapter import RedisAdapter
            prefix = f"hlbench{uuid.uuid4().hex[:8]}"
            redis = RedisAdapter.from_config({"redis_url": redis_url, "key_prefix": prefix})
            await redis.start()
            store = redis.insight_store(settings)

            async def cleanup():
                client = redis.connection.client
                keys = [k async for k in client.scan_iter(match=f"*{prefix}*", count=1000)]
                for i in range(0, len(keys), 500):
                    await client.delete(*keys[i : i + 500])
                await redis.close()
        else:
            store = adapter.insight_store(settings)
        await store.open()
    recorder = InsightRecorder(store, settings)
    sub = Subscription(id="sub_bench", topic="bench", url="http://127.0.0.1:1/h")
    await adapter.create_subscription(sub)
    t = now_ms()
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            env = Envelope(id=f"msg_{uuid.uuid4().hex}", topic="bench", data=make_data(i),
                           published_at=t, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
            batch.append(OutgoingMessage(env))
        await adapter.publish(batch)
        if recorder.enabled:
            for out in batch:
                recorder.message(out.envelope)
            await recorder.flush()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    done = 0
    since_flush = 0
    cpu = time.process_time()
    wall = time.perf_counter()
    while done < n:
        leased = await adapter.receive(sub, 64, 0)
        if not leased:
            break
        insight = recorder if recorder.enabled else None
        for d in leased:
            if insight is not None:
                m = d.message
                if hasattr(insight, "leased"):  # as the worker does since it exists
                    insight.leased(m.id, m.topic, sub.id, d.attempt, now_ms())
                else:
                    insight.mark(StateMark(m.id, m.topic, sub.id, "in_flight", now_ms(), d.attempt))
        for d in leased:
            started = now_ms()
            clock = time.perf_counter()
            build_body(sub, d)  # what the sender does with the message (it warms it too)
            duration = (time.perf_counter() - clock) * 1000
            if insight is not None:
                m = d.message
                insight.attempt(AttemptRecord(
                    message_id=m.id, topic=m.topic, subscription_id=sub.id,
                    attempt=d.attempt, started_at=started, duration_ms=duration,
                    status=200, reason="delivered", next_step="delivered",
                    response_excerpt=None, next_attempt_at=None))
            since_flush += 1
            if since_flush >= per_flush and insight is not None:
                await recorder._flush(hold=True)
                since_flush = 0
        await adapter.ack(leased)
        done += len(leased)
    await recorder.flush()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    gc.collect()
    held = getattr(store, "message_count", None)
    if cleanup is not None:
        await cleanup()
    print(json.dumps({"us_per_delivery": cpu / max(1, done) * 1e6, "delivered": done,
                      "held": held, "wall_s": round(wall, 3)}))


asyncio.run(main())
"""


def measure(app_dir: Path, args: argparse.Namespace, mode: str) -> float:
    """CPU per delivery (microseconds) of one fresh process."""
    bench_root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(app_dir),
            str(bench_root),
            str(args.messages),
            str(args.per_flush),
            mode,
            args.redis or "",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result["us_per_delivery"]


def main() -> None:
    """Alternate baseline and this checkout, off and on, for ``--rounds`` rounds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--per-flush", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--redis", default="", help="a Redis URL: the Redis store instead")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    added: dict[str, list[float]] = {"baseline": [], "this": []}
    off_all: dict[str, list[float]] = {"baseline": [], "this": []}
    for round_no in range(args.rounds):
        for name, app_dir in (("baseline", args.baseline), ("this", here)):
            off = measure(app_dir, args, "off")
            on = measure(app_dir, args, "on")
            added[name].append(on - off)
            off_all[name].append(off)
            print(
                f"round {round_no + 1} {name:8s} off {off:6.2f} us, on {on:6.2f} us, "
                f"added {on - off:6.2f} us per delivery",
                flush=True,
            )
    for name in ("baseline", "this"):
        median = statistics.median(added[name])
        off = statistics.median(off_all[name])
        print(
            f"{name}: added {median:.2f} us per delivery (median of {args.rounds}, "
            f"min {min(added[name]):.2f}; off {off:.2f} us)"
        )


if __name__ == "__main__":
    main()
