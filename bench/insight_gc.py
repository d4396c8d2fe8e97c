"""What the in-memory insight store costs a full garbage collection (issue 12).

Each round fills one store per implementation (this checkout's, and the one under
``--baseline``, a directory holding an ``app/``) with ``--messages`` messages as the
builtin adapter records them (publish, in_flight mark, attempt, delivered mark), each in
its own fresh process, then times ``gc.collect()``. Implementations alternate within a
round, so both see the same machine load.

    python -m bench.insight_gc --messages 100000 --rounds 2 --baseline /tmp/memstore-base
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from app.adapters.kit.insight_memory import MemoryInsightStore
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import Envelope, now_ms

n = int(sys.argv[2])
store = MemoryInsightStore(InsightSettings())
t = now_ms()
gc.collect()
before = len(gc.get_objects())
apply_s = 0.0
for i in range(n):
    mid = f"msg-{i:08d}"
    env = Envelope(id=mid, topic="orders", data={"order": i, "lines": [{"sku": "a1", "qty": 2}]},
                   published_at=t, headers={"x-tenant": "acme"})
    rec = AttemptRecord(mid, "orders", "sub-1", 1, t, 3.2, 200, "delivered", "delivered")
    batches = [
        InsightBatch(messages=[env]),
        InsightBatch(marks=[StateMark(mid, "orders", "sub-1", "in_flight", t, 1)]),
        InsightBatch(attempts=[rec], marks=[rec.mark()]),
    ]
    start = time.perf_counter()
    for batch in batches:
        store.apply(batch, at=t)
    apply_s += time.perf_counter() - start
    del env, rec, batches
gc.collect()
tracked = len(gc.get_objects()) - before
times = []
for _ in range(5):
    start = time.perf_counter()
    gc.collect()
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"held": store.message_count, "tracked_delta": tracked,
                  "apply_us_per_message": apply_s / n * 1e6,
                  "full_gc_ms": sorted(times)[len(times) // 2]}))
"""


def measure(app_dir: Path, messages: int) -> dict[str, float]:
    """One fresh process filling one store from ``app_dir``'s implementation."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(app_dir), str(messages)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    """Alternate baseline and this checkout for ``--rounds`` rounds; print both and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, required=True)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for round_no in range(args.rounds):
        for name, app_dir in (("baseline", args.baseline), ("this", here)):
            result = measure(app_dir, args.messages)
            runs[name].append(result)
            print(f"round {round_no + 1} {name:8s} {json.dumps(result)}", flush=True)
    for key in ("full_gc_ms", "apply_us_per_message", "tracked_delta"):
        old = statistics.median(r[key] for r in runs["baseline"])
        new = statistics.median(r[key] for r in runs["this"])
        print(f"{key}: baseline {old:.2f}, this {new:.2f}, ratio {new / old if old else 0:.3f}")


if __name__ == "__main__":
    main()
