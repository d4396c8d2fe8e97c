"""Running ``hookline serve`` as a real process, for shutdown, crash and multi-instance tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from ``/proc`` (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def write_config(
    path: Path, adapter_class: str, adapter_config: dict[str, Any], **extra: Any
) -> Path:
    """A config.yaml in the engine's module shape."""
    config = {"adapter": {"class": adapter_class, "config": adapter_config}, **extra}
    doc = {"modules": [{"class": "modules::queue::QueueModule", "config": config}]}
    path.write_text(yaml.safe_dump(doc))
    return path


class ServeProcess:
    """One ``hookline serve`` process on a free port, logging to a file."""

    def __init__(self, config: Path, log: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: close() ends workers too
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, within_s: float = 30.0) -> None:
        """Wait until /readyz answers 200."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hookline exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval of a deadline-bounded wait
        raise AssertionError(f"hookline not ready in {within_s}s:\n{self.log()}")

    def terminate(self, within_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within_s)

    def kill(self) -> None:
        """SIGKILL the supervisor only: a crash, no clean-up at all."""
        self.process.kill()
        self.process.wait(30)

    def children(self) -> list[int]:
        """Pids of the processes this one started (``--workers`` workers and helpers)."""
        return children_of(self.process.pid)

    def close(self) -> None:
        """SIGKILL the whole process group (supervisor, workers, helpers) and reap."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")
