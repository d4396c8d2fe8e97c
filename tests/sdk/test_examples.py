"""Every example in ``examples/`` against a real hookline: its handlers see what the
engine's Queue documentation says they see.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hookline import Client

from examples import conditions, dlq, email_queue, queue_triggers, retries
from tests.leftovers import MARKER
from tests.process import ServeProcess, free_port, until
from tests.sdk.conftest import serving

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(hookline_server: ServeProcess, monkeypatch: pytest.MonkeyPatch) -> int:
    """Point the examples (which read the environment, as a user's app would) at the test
    server; the port their triggers are served on.
    """
    port = free_port()
    monkeypatch.setenv("HOOKLINE_URL", hookline_server.url)
    monkeypatch.setenv("HOOKLINE_PUBLIC_URL", f"http://127.0.0.1:{port}")
    return port


async def run_example(
    example: ModuleType, port: int, caplog: pytest.LogCaptureFixture, *expected: str
) -> list[str]:
    """Serve the example's triggers, run its demo, wait for ``expected`` log lines."""
    caplog.set_level(logging.INFO, logger="examples")
    async with serving(example.triggers.asgi_app(), port):
        async with example.triggers.client() as client:
            await example.demo(client)

        async def logged() -> bool:
            return all(any(line in m for m in caplog.messages) for line in expected)

        await until(logged, within_s=30, what=f"log lines {expected}")
    return [r.getMessage() for r in caplog.records if r.name.startswith("examples")]


async def test_on_user_created_and_on_order_placed(
    env: int, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await run_example(
        queue_triggers, env, caplog, "User created: {'id': 'u_", "Order placed: {'order_id': 'o_1'}"
    )
    assert any("'email': 'ada@example.com'" in line for line in lines)


async def test_process_order_retries_then_handle_failed_orders(
    env: int, caplog: pytest.LogCaptureFixture, hookline_server: ServeProcess
) -> None:
    lines = await run_example(
        retries, env, caplog, "Order o_ok paid", "Failed order o_bad after 4 attempts"
    )
    attempts = [line for line in lines if line.startswith("Processing order o_bad")]
    assert attempts == [f"Processing order o_bad (attempt {n})" for n in (1, 2, 3, 4)]
    failed = next(line for line in lines if line.startswith("Failed order o_bad"))
    assert "card declined for order o_bad" in failed

    # the DLQ example: queue.dlq_count, then queue.redrive_dlq
    with Client(hookline_server.url) as client:
        assert await asyncio.to_thread(dlq.redrive, client, "order.process") == (1, 1)
        assert client.call("queue.dlq_count", {"topic": "order.process"}) == 0


async def test_high_priority_orders_condition(env: int, caplog: pytest.LogCaptureFixture) -> None:
    lines = await run_example(conditions, env, caplog, "Urgent order: o_high")
    assert not any("o_low" in line for line in lines)


async def test_email_queue_and_log_failed_emails(
    env: int, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await run_example(
        email_queue, env, caplog, "Sent 'Welcome' to ada@example.com", "Email to nobody failed"
    )
    assert not any("Email to ada@example.com failed" in line for line in lines)


@pytest.mark.parametrize("name", ["queue_triggers", "conditions", "email_queue"])
def test_example_runs_as_a_script(hookline_server: ServeProcess, name: str) -> None:
    """``python -m examples.<name>`` as the README says, against a running hookline."""
    expected = {
        "queue_triggers": "Order placed",
        "conditions": "Urgent order: o_high",
        "email_queue": "Email to nobody failed",
    }[name]
    run = subprocess.run(
        [sys.executable, "-m", f"examples.{name}", "--port", str(free_port()), "--exit-after", "5"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOOKLINE_URL": hookline_server.url, **_marker()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert expected in run.stderr, run.stderr


def _marker() -> dict[str, str]:
    """The suite's marker, so a script left running would be caught."""
    return {MARKER: os.environ[MARKER]}
