"""Private redis-server processes for tests that restart Redis or need a cluster.

They run on free loopback ports, in a temporary directory, and are stopped by pid;
the shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.backends import backends_required


def require_binaries(*names: str) -> None:
    """Skip (fail in CI) when the Redis binaries are not installed."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed"
    if backends_required():
        pytest.fail(f"{message} and HOOKLINE_REQUIRE_BACKENDS=1")
    pytest.skip(f"{message}; install redis-server to run these tests")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port P with P and P + 10000 (the cluster bus) both free."""
    for _ in range(200):
        port = random.randint(20_000, 29_999)
        if _port_free(port) and _port_free(port + 10_000):
            return port
    raise RuntimeError("no free port pair found")


def wait_until(condition: object, within_s: float, what: str) -> None:
    """Poll a callable until it returns truthy; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)  # polling interval of a deadline-bounded wait
    raise AssertionError(f"{what} did not happen within {within_s}s")


def cli(port: int, *args: str) -> str:
    """``redis-cli -p port args...`` (empty string when it cannot connect)."""
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout.strip()


class RedisServer:
    """One redis-server; ``persistent`` keeps every acknowledged write across a SIGKILL."""

    def __init__(
        self, directory: Path, port: int | None = None, persistent: bool = True, *extra: str
    ) -> None:
        self.directory = directory
        self.port = port or free_port_pair()
        self.persistent = persistent
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--save", ""]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen([*args, *self.extra], stdout=log, stderr=log)
        wait_until(lambda: cli(self.port, "ping") == "PONG", 10, f"redis on {self.port}")

    def kill(self) -> None:
        """SIGKILL: Redis dies without any chance to save."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


class RedisClusterNodes:
    """Three master nodes on loopback, joined with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                None,
                False,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            )
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in self.nodes:
            wait_until(
                lambda n=node: "cluster_state:ok" in cli(n.port, "cluster", "info"),
                30,
                f"cluster node {node.port} ready",
            )

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
