"""A private RabbitMQ node on free ports, for tests that stop and restart the broker.

The shared broker on 5672 must never be stopped; these tests boot their own node (about
7 s), owned by the ``rabbitmq`` user in a temporary folder, and kill it by pid afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.backends import backends_required
from tests.process import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
BOOT_S = 60.0


def require_private_node() -> None:
    """Skip (or fail, in CI) when this machine cannot start a RabbitMQ node of our own."""
    reason = None
    if not SERVER.exists():
        reason = f"{SERVER} not found"
    elif os.geteuid() != 0:
        reason = "starting a private RabbitMQ node needs root (to run it as user rabbitmq)"
    else:
        try:
            pwd.getpwnam("rabbitmq")
        except KeyError:
            reason = "no rabbitmq user"
    if reason is None:
        return
    if backends_required():
        pytest.fail(f"{reason} and HOOKLINE_REQUIRE_BACKENDS=1")
    pytest.skip(reason)


class PrivateRabbitNode:
    """One RabbitMQ node with its own name, ports, data and logs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"hookline-test-{uuid.uuid4().hex[:8]}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="hookline-rabbit-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": pwd.getpwnam("rabbitmq").pw_dir,  # the shared Erlang cookie lives there
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def start(self) -> None:
        """Boot the node and wait until it accepts AMQP connections."""
        user = pwd.getpwnam("rabbitmq")
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        for path in [self.base, *self.base.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
        self.base.chmod(0o755)
        self.process = subprocess.Popen(
            [str(SERVER)],
            env=self._env(),
            user=user.pw_uid,
            group=user.pw_gid,
            cwd=self.base,
            stdout=(self.base / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_listening(True)

    def ctl(self, *args: str) -> None:
        """Run ``rabbitmqctl -n <our node> ...``."""
        subprocess.run(
            [CTL, "-n", self.node, *args], check=True, capture_output=True, timeout=BOOT_S
        )

    def stop_app(self) -> None:
        """Stop the broker application (connections drop, the port closes); the VM stays."""
        self.ctl("stop_app")
        self.wait_listening(False)

    def start_app(self) -> None:
        """Start the application again (no-op if it runs) and wait for the port."""
        self.ctl("start_app")
        self.wait_listening(True)

    def listening(self) -> bool:
        """True when the AMQP port accepts connections."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def wait_listening(self, up: bool) -> None:
        """Poll the port until it is open (``up``) or closed."""
        deadline = time.monotonic() + BOOT_S
        while self.listening() != up:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"RabbitMQ node exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"RabbitMQ node not {'up' if up else 'down'}: {self.log_tail()}"
                )
            time.sleep(0.1)  # polling interval of a deadline-bounded wait

    def log_tail(self) -> str:
        """The end of the node's console output, for failure messages."""
        with contextlib.suppress(OSError):
            return (self.base / "stdout.log").read_text(errors="replace")[-2000:]
        return ""

    def destroy(self) -> None:
        """Stop the node (by its own pid group if it will not stop) and delete its folder."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("stop")
        if self.process is not None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)
