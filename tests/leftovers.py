"""Finding the processes a test session started, even after they were orphaned.

Every process the suite starts inherits :data:`MARKER` (set in ``tests/conftest.py`` to the
pytest process's pid), so it can be recognised by its environment even once its parent
died and it was re-parented to init: parent chains alone would miss exactly the orphans
this check exists for. Linux ``/proc`` only; elsewhere nothing is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARKER = "PYTEST_HOOKLINE_SUITE_PID"  # not HOOKLINE_*: tests clear those

DAEMONS = frozenset({"epmd"})
"""Brokers' helpers that outlive the broker by design (Erlang's port mapper)."""


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def describe(pid: int) -> str:
    """``pid (command line)``, for a failure message."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        cmdline = b"?"
    return f"{pid} ({cmdline.decode(errors='replace')[:200]})"


def started_by(owner_pid: int) -> list[int]:
    """Live processes (zombies aside) carrying ``MARKER=owner_pid``, the owner excluded."""
    needle = f"{MARKER}={owner_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == owner_pid:
            continue
        pid = int(entry.name)
        if needle not in _environ(pid).split(b"\0"):
            continue
        status = _status(pid)
        if status.get("State", "Z").startswith(("Z", "X")) or status.get("Name") in DAEMONS:
            continue
        found.append(pid)
    return found


def wait_gone(pids: list[int], within_s: float) -> list[int]:
    """Wait until none of ``pids`` is alive (zombies count as gone); return those left."""
    deadline = time.monotonic() + within_s
    while True:
        alive = [p for p in pids if not _status(p).get("State", "Z").startswith(("Z", "X"))]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)  # polling interval of a deadline-bounded wait


def leftovers(owner_pid: int, within_s: float = 10.0) -> list[str]:
    """Processes the session started that are still alive after ``within_s``.

    They are killed after being listed, so a failing check leaves nothing behind either.
    """
    left = wait_gone(started_by(owner_pid), within_s)
    described = [describe(pid) for pid in left]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return described
