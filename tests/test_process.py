"""The real ``hookline serve`` process: graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.process import ServeProcess, write_config
from tests.receiver import Receiver, Reply


@pytest.mark.parametrize(
    ("grace_ms", "delay_s", "handed_back"), [(10_000, 1.0, False), (300, 5.0, True)]
)
async def test_sigterm_finishes_or_hands_back_in_flight_deliveries(
    tmp_path: Path, receiver: Receiver, grace_ms: int, delay_s: float, handed_back: bool
) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        "modules::queue::BuiltinQueueAdapter",
        {},
        delivery={"shutdown_grace_ms": grace_ms},
    )
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        receiver.default("/slow", Reply(delay_s=delay_s))
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": receiver.url("/slow")}
            )
            assert created.status_code == 201
            assert (await client.post("/v1/topics/t/messages", json={"data": 1})).status_code == 202
        await receiver.wait_for(1, "/slow")
        started = time.monotonic()
        code = await asyncio.to_thread(server.terminate)
        took = time.monotonic() - started
        log = server.log()
        assert code in (0, -15), log  # uvicorn re-raises SIGTERM after a clean shutdown
        assert "stopped" in log
        assert "Traceback" not in log
        if handed_back:
            assert "handing back 1 unfinished deliveries" in log
            assert took < delay_s
        else:
            assert "handing back" not in log
            assert took >= delay_s * 0.5
    finally:
        server.close()


async def test_cli_publish_and_check_config(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    checked = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "check-config",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await checked.communicate()
    assert checked.returncode == 0
    assert b"config ok: adapter builtin" in out
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            await client.post("/v1/subscriptions", json={"topic": "cli", "url": receiver.url()})
        published = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "publish",
            "cli",
            '{"from": "cli"}',
            "--url",
            server.url,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await published.communicate()
        assert published.returncode == 0
        assert json.loads(out)["topic"] == "cli"
        [got] = await receiver.wait_for(1)
        assert got.json()["data"] == {"from": "cli"}
    finally:
        server.close()


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["serve", "--port", "99999"], {}, "a port is 0-65535, not 99999"),
        (["serve", "--port", "http"], {}, "not a port number: 'http'"),
        (["serve"], {"HOOKLINE_PORT": "80a"}, "not a port number: '80a'"),
        (["serve", "--workers", "0"], {}, "--workers: must be at least 1, not 0"),
        (["publish", "t", "{}", "--delay-ms", "-5"], {}, "must be at least 0, not -5"),
    ],
)
async def test_the_cli_refuses_bad_arguments_in_one_line(
    argv: list[str], env: dict[str, str], says: str
) -> None:
    """Before this, ``--port 99999`` served on port 34463 (99999 mod 65536) without a word."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert says in err.decode()
    assert b"Traceback" not in err
    assert out == b""
