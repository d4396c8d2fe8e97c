"""Subscription CRUD, secrets shown once, the engine's metadata, static subscriptions."""

from __future__ import annotations

from pathlib import Path

from app.config import load_settings
from app.core.models import Subscription
from tests.harness import running_hookline

HOOK = "http://127.0.0.1:9/hook"


async def test_crud_and_secret_handling() -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        created = (
            await client.post(
                "/v1/subscriptions",
                json={"id": "s1", "topic": "t", "url": "https://user:pw@example.com/h"},
            )
        ).json()
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert created["retry"] == {
            "max_retries": 3,
            "retry_delay_ms": 1000,
            "backoff": "exponential",
            "max_delay_ms": 300000,
            "jitter": 0.2,
        }
        assert created["timeout_ms"] == 10000
        fetched = (await client.get("/v1/subscriptions/s1")).json()
        assert fetched["secret"] != secret
        assert fetched["secret"].endswith(secret[-4:])
        assert fetched["url"] == "https://user:***@example.com/h"

        patched = (
            await client.patch(
                "/v1/subscriptions/s1", json={"max_in_flight": 3, "retry": {"max_retries": 7}}
            )
        ).json()
        assert patched["max_in_flight"] == 3
        assert patched["retry"]["max_retries"] == 7
        assert patched["retry"]["retry_delay_ms"] == 1000
        assert patched["url"] == "https://user:***@example.com/h"
        stored = await hookline.runtime.adapter.get_subscription("s1")
        assert stored is not None
        assert stored.secret == secret
        assert stored.url == "https://user:pw@example.com/h"

        replaced = (
            await client.put("/v1/subscriptions/s1", json={"topic": "t", "url": HOOK})
        ).json()
        assert replaced["max_in_flight"] == 10
        assert replaced["created_at"] == created["created_at"]
        stored = await hookline.runtime.adapter.get_subscription("s1")
        assert stored is not None
        assert stored.secret == secret

        rotated = (await client.post("/v1/subscriptions/s1/rotate-secret")).json()
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != secret

        await client.post("/v1/subscriptions", json={"topic": "other", "url": HOOK})
        listed = (await client.get("/v1/subscriptions", params={"topic": "t"})).json()
        assert [s["id"] for s in listed["subscriptions"]] == ["s1"]
        assert len((await client.get("/v1/subscriptions")).json()["subscriptions"]) == 2

        assert (await client.delete("/v1/subscriptions/s1")).status_code == 204
        assert (await client.get("/v1/subscriptions/s1")).status_code == 404


async def test_engine_metadata_means_the_same_as_retry_fields() -> None:
    async with running_hookline("builtin") as hookline:
        body = {
            "topic": "emails.send",
            "url": HOOK,
            "metadata": {
                "infrastructure": {
                    "queue": {
                        "max_retries": 5,
                        "retry_delay_ms": 2000,
                        "dead_letter_topic": "emails.failed",
                    }
                }
            },
        }
        created = (await hookline.client.post("/v1/subscriptions", json=body)).json()
        assert created["retry"]["max_retries"] == 5
        assert created["retry"]["retry_delay_ms"] == 2000
        assert created["dead_letter_topic"] == "emails.failed"
        assert created["metadata"] == body["metadata"]
        explicit = (
            await hookline.client.post(
                "/v1/subscriptions", json={**body, "retry": {"max_retries": 1}}
            )
        ).json()
        assert explicit["retry"]["max_retries"] == 1
        assert explicit["retry"]["retry_delay_ms"] == 2000


async def test_static_subscriptions_from_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """
modules:
  - class: modules::queue::QueueModule
    config:
      adapter: {class: modules::queue::BuiltinQueueAdapter}
      subscriptions:
        - id: send-email
          topic: emails.send
          url: http://localhost:3000/hooks/send-email
          condition: "data.priority == 'high'"
          metadata:
            infrastructure:
              queue: {max_retries: 5, retry_delay_ms: 2000, dead_letter_topic: emails.failed}
"""
    )
    settings = load_settings(str(config))
    async with running_hookline("builtin", subscriptions=settings.subscriptions) as hookline:
        runtime = hookline.runtime

        async def registered() -> Subscription | None:
            return await runtime.adapter.get_subscription("send-email")

        from tests.harness import eventually

        await eventually(lambda: _is_set(registered()))
        sub = await registered()
        assert sub is not None
        assert sub.retry.max_retries == 5
        assert sub.dead_letter_topic == "emails.failed"
        assert sub.secret is None
        await eventually(lambda: "send-email" in runtime.dispatcher._workers)


async def _is_set(awaitable: object) -> bool:
    return await awaitable is not None  # type: ignore[misc]
