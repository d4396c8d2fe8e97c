"""A process tied to its parent ends when the parent is SIGKILLed, with or without prctl.

Real processes: the test starts a parent, the parent starts a child that calls
:func:`app.parent_watch.exit_with_parent`, the test SIGKILLs the parent and waits for the
child to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.leftovers import wait_gone

pytestmark = pytest.mark.slow

CHILD = """
import os, signal, sys, time
from app import parent_watch
if sys.argv[1] == "watch-only":
    parent_watch.set_parent_death_signal = lambda sig=None: False  # the portable path alone
if sys.argv[1] == "prctl-only":
    parent_watch._watch = lambda *args: None  # the kernel's signal alone
if sys.argv[2] == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a shutdown that never ends
parent_watch.exit_with_parent(os.getppid(), grace_s=0.3, poll_s=0.02)
print("READY", flush=True)
while True:
    time.sleep(1)
"""

PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE)
assert child.stdout.readline() == b"READY\\n"
print(child.pid, flush=True)
child.wait()
"""


@pytest.mark.parametrize(
    ("guards", "child_sigterm"),
    [
        ("prctl+watch", "default"),
        pytest.param(
            "prctl-only",
            "default",
            marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
        ),
        ("watch-only", "default"),
        ("watch-only", "ignore-sigterm"),  # the hard exit after the grace period
    ],
)
def test_child_ends_when_its_parent_is_killed(guards: str, child_sigterm: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, guards, child_sigterm],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert wait_gone([child_pid], 0) == [child_pid]  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_gone([child_pid], 15.0) == [], "the orphan is still running"
    finally:
        parent.kill()
        parent.wait(10)
