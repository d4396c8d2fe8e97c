"""Secret rotation with overlap on a real ``hookline serve``: a receiver on the old secret
and one on the new both verify during the grace period, only the new one after it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.process import ServeProcess, write_config
from tests.receiver import Received, Receiver

GRACE_MS = 4000


def _verifies(secret: str, got: Received) -> bool:
    headers = {k.lower(): v for k, v in got.headers.items()}
    try:
        Webhook(secret).verify(got.body, headers)
    except WebhookVerificationError:
        return False
    return True


async def _deliver_until(
    client: httpx.AsyncClient, receiver: Receiver, secret: str, within_s: float = 10.0
) -> Received:
    """Publish until a delivery verifies with ``secret``: the server's delivery loop picks
    a rotation up asynchronously, and nothing outside the process tells when.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        # Counted before publishing: the delivery can arrive before the 202 is read.
        count = len(receiver.requests("/hook")) + 1
        published = await client.post("/v1/topics/rot/messages", json={"data": 1})
        assert published.status_code == 202, published.text
        got = (await receiver.wait_for(count, "/hook"))[-1]
        if _verifies(secret, got):
            return got
    raise AssertionError(f"no delivery signed with the new secret in {within_s}s")


async def test_rotation_overlap_on_a_real_server(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": "rot", "url": receiver.url()}
            )
            assert created.status_code == 201, created.text
            sub = created.json()
            old = sub["secret"]
            rotated = await client.post(
                f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"grace_ms": GRACE_MS}
            )
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["secret"]

            during = await _deliver_until(client, receiver, new)
            assert len(during.headers["webhook-signature"].split(" ")) == 2
            assert _verifies(old, during)

            async def grace_over() -> bool:
                current = await client.get(f"/v1/subscriptions/{sub['id']}")
                return bool(current.json()["previous_secret_expires_at"] is None)

            deadline = time.monotonic() + GRACE_MS / 1000 + 10
            while not await grace_over():
                assert time.monotonic() < deadline, "the grace period did not end"
                await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait

            after = await _deliver_until(client, receiver, new)
            assert len(after.headers["webhook-signature"].split(" ")) == 1
            assert not _verifies(old, after)
        assert "Traceback" not in server.log()
    finally:
        server.close()
