"""``--profile``: sample the hookline process with py-spy during a timed phase.

py-spy (``pip install py-spy`` into hookline's venv) records collapsed stacks without
pausing the process (``--nonblocking``); :func:`summarize` turns them into the share of
samples per function, self and inclusive, which is what the report quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import PYTHON

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(PYTHON).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def sampled(pid: int, out: Path, enabled: bool) -> AsyncIterator[None]:
    """Record ``pid`` into ``out`` (collapsed stacks) while the block runs."""
    binary = py_spy() if enabled else None
    if binary is None:
        yield
        return
    process = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--rate",
        os.environ.get("HOOKLINE_BENCH_PYSPY_RATE", "100"),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # attach before the timed phase starts
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.split("/work/main/", 1)[-1]
    return f"{match['func']} ({path})"


def summarize(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares of samples per function, from py-spy's raw output."""
    if not raw.exists():
        return f"no profile at {raw}"
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive (app code and the libraries it calls):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top * 2)]
    return "\n".join(lines)
