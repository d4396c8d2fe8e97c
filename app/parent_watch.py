"""Worker processes end when their supervisor dies.

``hookline serve --workers N`` runs uvicorn's supervisor, which spawns the workers. When
the supervisor is SIGKILLed or OOM-killed nothing tells them: orphaned workers would keep
serving on the port and keep taking Redis leases and RabbitMQ deliveries with nobody
managing them. Two guards, either one is enough:

* Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), delivered by the
  kernel the moment the parent goes;
* a portable watch thread that notices the parent pid change (the orphan is re-parented
  to init or a subreaper).

Both ask for the usual graceful shutdown (SIGTERM: in-flight deliveries finish or are
handed back); if that has not ended the process after ``grace_s``, it exits hard.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

logger = logging.getLogger("hookline.parent_watch")

PR_SET_PDEATHSIG = 1
"""From ``<linux/prctl.h>``."""


def set_parent_death_signal(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the Linux kernel to send ``sig`` when the parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, poll_s: float, grace_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)  # a daemon thread's polling interval, not a synchronisation
    logger.warning("supervisor %d is gone: this worker shuts down", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    logger.error("graceful shutdown took longer than %.0fs: exiting now", grace_s)
    os._exit(1)


def exit_with_parent(parent_pid: int, grace_s: float, poll_s: float = 0.5) -> None:
    """Make this process shut down once ``parent_pid`` is no longer its parent.

    Safe against the parent dying before this is called: the watch compares with the pid
    the parent had, so a process already re-parented stops at the first poll.
    """
    set_parent_death_signal(signal.SIGTERM)
    threading.Thread(
        target=_watch,
        args=(parent_pid, poll_s, grace_s),
        name="hookline-parent-watch",
        daemon=True,
    ).start()


def exit_with_supervisor(grace_s: float) -> bool:
    """In a process spawned by a supervisor (uvicorn ``--workers``), follow it in death.

    Returns False in a process that has no multiprocessing parent (``hookline serve``
    with one worker), where nothing is set up.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return False
    exit_with_parent(parent.pid, grace_s)
    return True
