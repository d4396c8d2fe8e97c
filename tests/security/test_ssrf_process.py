"""The production SSRF setting in a real ``hookline serve`` / ``hookline check-config``.

``allow_private_networks: false`` once stopped hookline from starting (the guarded resolver
was built outside any event loop); tests building the app inside their own loop never saw
it. These run the real entry points, from the config file and from the environment.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.process import ServeProcess, write_config
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

BUILTIN = "modules::queue::BuiltinQueueAdapter"
STRICT_ENV = {"HOOKLINE_DELIVERY__ALLOW_PRIVATE_NETWORKS": "false"}


def check_config(
    config: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


async def dead_letter_reason(client: httpx.AsyncClient, topic: str, within_s: float = 20) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        entries = (await client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
        if entries:
            reason: str = entries[0]["last_error"]["reason"]
            return reason
        await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait
    raise AssertionError(f"nothing dead-lettered on {topic} within {within_s}s")


@pytest.mark.parametrize("source", ["file", "environment"])
def test_check_config_accepts_the_production_setting(tmp_path: Path, source: str) -> None:
    delivery: dict[str, Any] = {"allow_private_networks": False} if source == "file" else {}
    config = write_config(tmp_path / "config.yaml", BUILTIN, {}, delivery=delivery)
    result = check_config(config, STRICT_ENV if source == "environment" else None)
    assert result.returncode == 0, result.stderr
    assert "config ok" in result.stdout
    assert "Traceback" not in result.stderr


async def test_serve_with_private_networks_refused(tmp_path: Path, receiver: Receiver) -> None:
    """Strict from the environment (nothing allowed) and from the file (localhost allowed).

    The strict one refuses a literal loopback URL at save and a name resolving to loopback
    at delivery (through the guarded resolver); the allowlisting one delivers to it.
    """
    strict = ServeProcess(
        write_config(tmp_path / "strict.yaml", BUILTIN, {}), tmp_path / "strict.log", env=STRICT_ENV
    )
    allowing = ServeProcess(
        write_config(
            tmp_path / "allowing.yaml",
            BUILTIN,
            {},
            delivery={"allow_private_networks": False, "allowed_hosts": ["localhost"]},
        ),
        tmp_path / "allowing.log",
    )
    by_name = f"http://localhost:{receiver.port}"
    try:
        await asyncio.gather(
            asyncio.to_thread(strict.wait_ready), asyncio.to_thread(allowing.wait_ready)
        )
        async with httpx.AsyncClient(base_url=strict.url, timeout=10) as client:
            literal = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": receiver.url("/literal")}
            )
            assert literal.status_code == 422
            assert literal.json()["error"]["code"] == "blocked_destination"
            named = await client.post(
                "/v1/subscriptions",
                json={"topic": "t", "url": f"{by_name}/named"},
            )
            assert named.status_code == 201, named.text
            assert (await client.post("/v1/topics/t/messages", json={"data": 1})).status_code == 202
            assert await dead_letter_reason(client, "t") == "blocked_destination"
        async with httpx.AsyncClient(base_url=allowing.url, timeout=10) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": f"{by_name}/allowed"}
            )
            assert created.status_code == 201, created.text
            assert (await client.post("/v1/topics/t/messages", json={"data": 2})).status_code == 202
            [got] = await receiver.wait_for(1, "/allowed")
            assert got.json()["data"] == 2
        assert receiver.requests("/literal") == []
        assert receiver.requests("/named") == []
        for server in (strict, allowing):
            assert "Traceback" not in server.log()
    finally:
        strict.close()
        allowing.close()
