"""Secret rotation with overlap, end to end on every adapter: during the grace period a
receiver holding the old secret and one holding the new one both verify (Standard Webhooks
allows several signatures in one header); after it, only the new one does.
"""

from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.models import now_ms
from tests.backends import unique
from tests.harness import Hookline, eventually
from tests.receiver import Received, Receiver

GRACE_MS = 3000
"""Long enough for a delivery to land inside it on a loaded machine, short enough to wait."""


def _headers(got: Received) -> dict[str, str]:
    return {k.lower(): v for k, v in got.headers.items()}


def _verifies(secret: str, got: Received) -> bool:
    try:
        Webhook(secret).verify(got.body, _headers(got))
    except WebhookVerificationError:
        return False
    return True


async def _rotate(hookline: Hookline, sub_id: str, **body: Any) -> dict[str, Any]:
    response = await hookline.client.post(
        f"/v1/subscriptions/{sub_id}/rotate-secret", json=body if body else None
    )
    assert response.status_code == 200, response.text
    rotated: dict[str, Any] = response.json()
    # Publish only once this instance's delivery loop signs with the new secret.
    await eventually(
        lambda: (
            hookline.runtime.dispatcher._workers[sub_id].subscription.secret == rotated["secret"]
        )
    )
    return rotated


async def _deliver(hookline: Hookline, receiver: Receiver, topic: str, n: int) -> Received:
    await hookline.publish(topic, {"n": n})
    got = await receiver.wait_for(n, "/hook")
    return got[n - 1]


async def test_old_and_new_secret_both_verify_during_grace_then_only_new(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("rotating")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    old = sub["secret"]
    assert sub["previous_secret_expires_at"] is None

    before = now_ms()
    rotated = await _rotate(hookline, sub["id"], grace_ms=GRACE_MS)
    new = rotated["secret"]
    assert new != old
    expires_at = rotated["previous_secret_expires_at"]
    assert before + GRACE_MS <= expires_at <= now_ms() + GRACE_MS

    during = await _deliver(hookline, receiver, topic, 1)
    signatures = _headers(during)["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    assert _verifies(old, during), "a receiver still on the old secret must verify"
    assert _verifies(new, during), "a receiver already on the new secret must verify"
    assert Webhook(new).verify(during.body, _headers(during))["data"] == {"n": 1}

    # Wait for the grace period to end, as the API reports it.
    async def grace_over() -> bool:
        current = await hookline.client.get(f"/v1/subscriptions/{sub['id']}")
        return bool(current.json()["previous_secret_expires_at"] is None)

    await eventually(grace_over, within_s=GRACE_MS / 1000 + 10, every_s=0.05)
    assert now_ms() >= expires_at

    after = await _deliver(hookline, receiver, topic, 2)
    assert len(_headers(after)["webhook-signature"].split(" ")) == 1
    assert _verifies(new, after)
    assert not _verifies(old, after)


async def test_zero_grace_and_the_default(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("rotating")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    old = sub["secret"]

    rotated = await _rotate(hookline, sub["id"], grace_ms=0)
    assert rotated["previous_secret_expires_at"] is None
    got = await _deliver(hookline, receiver, topic, 1)
    assert _verifies(rotated["secret"], got)
    assert not _verifies(old, got)

    # No body at all: the default grace of 24 hours for the secret just replaced.
    before = now_ms()
    again = await _rotate(hookline, sub["id"])
    day = 24 * 3600 * 1000
    assert before + day <= again["previous_secret_expires_at"] <= now_ms() + day
    got = await _deliver(hookline, receiver, topic, 2)
    assert _verifies(again["secret"], got)
    assert _verifies(rotated["secret"], got)
    assert not _verifies(old, got), "only the secret just replaced keeps signing"


async def test_previous_secret_is_never_shown(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("rotating")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    old = sub["secret"]
    rotated = await _rotate(hookline, sub["id"], grace_ms=60_000)
    assert old not in str(rotated)
    client = hookline.client
    for response in (
        await client.get(f"/v1/subscriptions/{sub['id']}"),
        await client.get("/v1/subscriptions", params={"topic": topic}),
        await client.post(f"/v1/subscriptions/{sub['id']}/pause"),
        await client.patch(f"/v1/subscriptions/{sub['id']}", json={"timeout_ms": 2000}),
    ):
        assert response.status_code == 200, response.text
        assert old not in response.text
        assert rotated["secret"] not in response.text
        assert 'previous_secret"' not in response.text
    fetched = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert fetched["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]


async def test_replace_keeps_the_grace_and_setting_a_secret_ends_it(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("rotating")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    old = sub["secret"]
    rotated = await _rotate(hookline, sub["id"], grace_ms=60_000)
    client = hookline.client
    replaced = await client.put(
        f"/v1/subscriptions/{sub['id']}",
        json={"topic": topic, "url": receiver.url(), "retry": {"retry_delay_ms": 20}},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    await eventually(
        lambda: (
            hookline.runtime.dispatcher._workers[sub["id"]].subscription.updated_at
            == replaced.json()["updated_at"]
        )
    )
    got = await _deliver(hookline, receiver, topic, 1)
    assert _verifies(old, got)
    assert _verifies(rotated["secret"], got)

    chosen = "whsec_" + "C" * 32
    patched = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"secret": chosen})
    assert patched.status_code == 200, patched.text
    assert patched.json()["previous_secret_expires_at"] is None
    await eventually(
        lambda: hookline.runtime.dispatcher._workers[sub["id"]].subscription.secret == chosen
    )
    got = await _deliver(hookline, receiver, topic, 2)
    assert _verifies(chosen, got)
    assert not _verifies(rotated["secret"], got)


@pytest.mark.parametrize(
    "body",
    [{"grace_ms": -1}, {"grace_ms": 30 * 24 * 3600 * 1000 + 1}, {"grace_ms": "5"}, {"grace": 5}],
)
async def test_bad_grace_is_a_422_and_changes_nothing(
    hookline: Hookline, body: dict[str, Any]
) -> None:
    sub = await hookline.subscribe(topic=unique("rotating"), url="http://127.0.0.1:9/x")
    response = await hookline.client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "grace" in error["message"]
    fetched = (await hookline.client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert fetched["secret"].endswith(sub["secret"][-4:])
    assert fetched["updated_at"] == sub["updated_at"]
