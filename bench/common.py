"""Shared pieces of the bench: message data, processes, /proc readings, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

PIN: dict[str, list[str]] = {"server": []}
"""``--pinned``: the prefix that puts a process on hookline's core (``taskset -c 0``).

The bench process itself (load generator) is moved to core 1 with ``sched_setaffinity``;
what it starts without this prefix (the receiver, the peers) inherits core 1.
"""


def on_server_core(argv: Sequence[str]) -> list[str]:
    """``argv`` run on hookline's core in pinned mode (unchanged otherwise)."""
    return [*PIN["server"], *argv]


def pin_cores() -> str | None:
    """Pinned mode: hookline's core 0, everything of the bench on core 1.

    Returns why it cannot be done here (fewer than 2 CPUs, no ``taskset``), or None.
    """
    import shutil

    taskset = shutil.which("taskset")
    cpus = os.sched_getaffinity(0)
    if taskset is None:
        return "taskset is not installed (util-linux)"
    if not {0, 1} <= cpus:
        return f"pinned mode needs CPUs 0 and 1, this process may use {sorted(cpus)}"
    os.sched_setaffinity(0, {1})
    PIN["server"] = [taskset, "-c", "0"]
    return None


_PAD = "lorem ipsum dolor sit amet consectetur adipiscing elit " * 20


def make_data(seq: int, size: int = 1000) -> dict[str, object]:
    """A realistic message of about ``size`` bytes of JSON (nested objects, a list, text)."""
    data: dict[str, object] = {
        "seq": seq,
        "event": "order.created",
        "customer": {"id": f"cus_{seq:08d}", "email": f"user{seq}@example.com", "tier": "gold"},
        "items": [
            {"sku": f"SKU-{seq % 97:04d}-{i}", "qty": i + 1, "price_cents": 1999 + i}
            for i in range(3)
        ],
        "currency": "EUR",
        "paid": True,
        "note": "",
    }
    missing = size - len(json.dumps(data, separators=(",", ":")))
    data["note"] = _PAD[: max(0, missing)]
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an unsorted sequence (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


# -- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc/<pid>/status."""
    rss = hwm = 0.0
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return rss, hwm
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


# -- processes ------------------------------------------------------------------------------


class Processes:
    """Every process the bench starts, so each one is stopped by its pid, also on errors."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[int, asyncio.subprocess.Process] = {}

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> asyncio.subprocess.Process:
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=str(cwd or ROOT),
                start_new_session=True,
            )
        finally:
            log.close()
        self.running[process.pid] = process
        return process

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, process: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
        """SIGTERM its process group (a Celery worker's children too), then SIGKILL."""
        self.running.pop(process.pid, None)
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def stop_all(self) -> None:
        for process in list(self.running.values()):
            await self.stop(process, grace_s=5.0)


async def wait_until(check: object, within_s: float, interval_s: float = 0.02) -> bool:
    """Poll an async predicate until true or the deadline passes."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return True
        await asyncio.sleep(interval_s)
    return False


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields), idle


async def busy_fraction(seconds: float = 0.5) -> float:
    """Share of the machine's CPU in use (by anything) over ``seconds``."""
    total0, idle0 = _cpu_times()
    await asyncio.sleep(seconds)
    total1, idle1 = _cpu_times()
    spent = total1 - total0
    return 1 - (idle1 - idle0) / spent if spent else 0.0


async def wait_for_quiet(max_busy: float, within_s: float) -> float:
    """Wait (bounded) until the machine is mostly idle; returns the last busy fraction.

    Other work on a 2-core machine (a test suite, a build) halves every figure; a scenario
    starting on a busy machine is flagged in the report instead of silently trusted.
    """
    deadline = time.monotonic() + within_s
    busy = await busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        busy = await busy_fraction(1.0)
    return busy
