"""RFC 6750: every 401 names the Bearer scheme in ``WWW-Authenticate``, in-process and on a
real ``hookline serve`` configured with ``HOOKLINE_API_KEYS``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.harness import running_hookline
from tests.process import ServeProcess, write_config

KEYS = "publisher-key-1:publish,admin-key-123:admin"
MISSING = 'Bearer realm="hookline"'
INVALID = 'Bearer realm="hookline", error="invalid_token"'


async def _check_challenges(client: httpx.AsyncClient) -> None:
    """Missing key, bad key, another scheme, lacking scope, good key, on several routers."""
    for method, path, body in (
        ("POST", "/v1/topics/t/messages", {"data": 1}),
        ("GET", "/v1/subscriptions", None),
        ("GET", "/v1/topics/t/dlq/count", None),
        ("POST", "/v1/functions/queue.enqueue", {"topic": "t", "data": 1}),
    ):
        missing = await client.request(method, path, json=body)
        assert missing.status_code == 401, missing.text
        assert missing.headers["WWW-Authenticate"] == MISSING
        assert missing.json()["error"]["code"] == "unauthorized"

        bad = await client.request(
            method, path, json=body, headers={"Authorization": "Bearer not-a-key"}
        )
        assert bad.status_code == 401, bad.text
        assert bad.headers["WWW-Authenticate"] == INVALID

        other_scheme = await client.request(
            method, path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
        assert other_scheme.status_code == 401
        assert other_scheme.headers["WWW-Authenticate"] == MISSING

    publisher = {"Authorization": "Bearer publisher-key-1"}
    lacking = await client.get("/v1/subscriptions", headers=publisher)
    assert lacking.status_code == 403
    assert lacking.headers["WWW-Authenticate"] == (
        'Bearer realm="hookline", error="insufficient_scope", scope="subscriptions"'
    )
    ok = await client.post("/v1/topics/t/messages", json={"data": 1}, headers=publisher)
    assert ok.status_code == 202
    assert "WWW-Authenticate" not in ok.headers


async def test_401_carries_the_bearer_challenge_in_process() -> None:
    async with running_hookline("builtin", api_keys=KEYS) as hookline:
        await _check_challenges(hookline.client)


async def test_401_carries_the_bearer_challenge_on_a_real_server(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log", env={"HOOKLINE_API_KEYS": KEYS})
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            await _check_challenges(client)
    finally:
        server.close()
