"""Subscription CRUD, secrets shown once, the engine's metadata, static subscriptions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import load_settings
from app.core.models import Subscription
from tests.harness import running_hookline
from tests.process import ServeProcess, write_config

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


NOT_OBJECTS = ['"x"', "5", "[1]", "true"]


def _raw(body: str) -> dict[str, Any]:
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


@pytest.mark.parametrize("value", NOT_OBJECTS)
@pytest.mark.parametrize("where", ["infrastructure", "queue"])
async def test_metadata_blocks_that_are_not_objects_are_422(value: str, where: str) -> None:
    metadata = (
        f'{{"infrastructure": {value}}}'
        if where == "infrastructure"
        else f'{{"infrastructure": {{"queue": {value}}}}}'
    )
    field = "metadata.infrastructure" + (".queue" if where == "queue" else "")
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        await client.post("/v1/subscriptions", json={"id": "s", "topic": "t", "url": HOOK})
        for method, path, body in (
            (
                "POST",
                "/v1/subscriptions",
                f'{{"topic": "t", "url": "{HOOK}", "metadata": {metadata}}}',
            ),
            (
                "PUT",
                "/v1/subscriptions/s",
                f'{{"topic": "t", "url": "{HOOK}", "metadata": {metadata}}}',
            ),
            ("PATCH", "/v1/subscriptions/s", f'{{"metadata": {metadata}}}'),
        ):
            response = await client.request(method, path, **_raw(body))
            assert response.status_code == 422, (method, response.text)
            assert response.json()["error"]["message"].startswith(f"{field}:"), response.text
        listed = (await client.get("/v1/subscriptions")).json()["subscriptions"]
        assert [(s["id"], s["metadata"]) for s in listed] == [("s", {})]


async def test_engine_queue_metadata_takes_every_retry_field_and_refuses_unknown_ones() -> None:
    queue = {
        "max_retries": 2,
        "retry_delay_ms": 50,
        "backoff": "fixed",
        "max_delay_ms": 500,
        "jitter": 0,
        "dead_letter_topic": "t.failed",
    }
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        body = {"topic": "t", "url": HOOK, "metadata": {"infrastructure": {"queue": queue}}}
        created = (await client.post("/v1/subscriptions", json=body)).json()
        assert created["retry"] == {
            "max_retries": 2,
            "retry_delay_ms": 50,
            "backoff": "fixed",
            "max_delay_ms": 500,
            "jitter": 0,
        }
        assert created["dead_letter_topic"] == "t.failed"
        assert created["metadata"]["infrastructure"]["queue"] == queue

        for bad, field in (
            ({"bogus": 1}, "bogus"),
            ({"backoff": "linear"}, "backoff"),
            ({"jitter": 2}, "jitter"),
            ({"max_delay_ms": -1}, "max_delay_ms"),
            ({"max_retries": "3"}, "max_retries"),
            ({"dead_letter_topic": "bad topic"}, "dead_letter_topic"),
        ):
            refused = await client.post(
                "/v1/subscriptions",
                json={"topic": "t", "url": HOOK, "metadata": {"infrastructure": {"queue": bad}}},
            )
            assert refused.status_code == 422, (bad, refused.text)
            message = refused.json()["error"]["message"]
            assert message.startswith(f"metadata.infrastructure.queue.{field}:"), message
        # Other keys of metadata and of infrastructure stay free-form.
        free = {"team": "mail", "infrastructure": {"region": "eu", "queue": {"max_retries": 1}}}
        kept = await client.post(
            "/v1/subscriptions", json={"topic": "t", "url": HOOK, "metadata": free}
        )
        assert kept.status_code == 201, kept.text
        assert kept.json()["metadata"] == free
        assert len((await client.get("/v1/subscriptions")).json()["subscriptions"]) == 2


UNSENDABLE_HEADERS = [
    ('{"x-a": "\\ud800"}', "headers"),
    ('{"\\udc00": "v"}', "headers"),
    ('{"x-a": "\\u007f"}', "headers"),
    ('{"x-a": "a\\r\\nx-b: c"}', "headers"),
    ('{"x-a": "\\u0001"}', "headers"),
    ('{"x-a": "caf\\u00e9"}', "headers"),
    ('{"x-a": "\\u4e2d"}', "headers"),
    ('{"x-a": " padded"}', "headers"),
    ('{"x a": "v"}', "headers"),
    ('{"Content-Type": "text/plain"}', "headers"),
    ('{"WEBHOOK-SIGNATURE": "v1,x"}', "headers"),
]


@pytest.mark.parametrize(("headers", "field"), UNSENDABLE_HEADERS)
async def test_headers_that_can_never_be_sent_are_422_and_store_nothing(
    headers: str, field: str
) -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        await client.post("/v1/subscriptions", json={"id": "s", "topic": "t", "url": HOOK})
        body = f'{{"id": "new", "topic": "t", "url": "{HOOK}", "headers": {headers}}}'
        refused = await client.post("/v1/subscriptions", **_raw(body))
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["error"]["message"]
        patched = await client.patch("/v1/subscriptions/s", **_raw(f'{{"headers": {headers}}}'))
        assert patched.status_code == 422, patched.text
        listed = await client.get("/v1/subscriptions")
        assert listed.status_code == 200
        assert [s["id"] for s in listed.json()["subscriptions"]] == ["s"]
        assert (await client.get("/v1/subscriptions/s")).json()["headers"] == {}


async def test_a_lone_surrogate_anywhere_in_a_subscription_is_422() -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        for extra in (
            '"metadata": {"note": ["\\ud83d"]}',
            '"metadata": {"\\ud83d": 1}',
            '"condition": "data.x == \'\\udfff\'"',
            '"url": "http://127.0.0.1:9/\\ud800"',
        ):
            # A repeated key: the last one wins, as json.loads reads it.
            body = f'{{"topic": "t", "url": "{HOOK}", {extra}}}'
            refused = await client.post("/v1/subscriptions", **_raw(body))
            assert refused.status_code == 422, (extra, refused.text)
            assert "surrogate" in refused.json()["error"]["message"]
        assert (await client.get("/v1/subscriptions")).json()["subscriptions"] == []


async def test_a_stored_unrenderable_subscription_does_not_break_listing() -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        await client.post("/v1/subscriptions", json={"id": "good", "topic": "t", "url": HOOK})
        # Saved before the API refused it (or by an older version sharing the registry).
        broken = Subscription(id="broken", topic="t", url=HOOK, headers={"x-a": "\ud800"})
        await hookline.runtime.adapter.create_subscription(broken)
        for path in ("/v1/subscriptions", "/v1/subscriptions?topic=t"):
            listed = await client.get(path)
            assert listed.status_code == 200, listed.text
            by_id = {s["id"]: s for s in listed.json()["subscriptions"]}
            assert set(by_id) == {"good", "broken"}
            assert by_id["broken"]["headers"] == {"x-a": "\ufffd"}
        single = await client.get("/v1/subscriptions/broken")
        assert single.status_code == 200
        assert (await client.delete("/v1/subscriptions/broken")).status_code == 204


async def test_serve_answers_422_and_stores_nothing(tmp_path: Path) -> None:
    """The real ``hookline serve``: bad metadata and unsendable headers never reach storage."""
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            for extra in (
                '"metadata": {"infrastructure": "x"}',
                '"metadata": {"infrastructure": {"queue": true}}',
                '"metadata": {"infrastructure": {"queue": {"backoff": "fixed", "oops": 1}}}',
                '"headers": {"x-a": "\\ud800"}',
                '"headers": {"x-a": "\\u007f"}',
            ):
                body = f'{{"topic": "t", "url": "{HOOK}", {extra}}}'
                response = await client.post("/v1/subscriptions", **_raw(body))
                assert response.status_code == 422, (extra, response.text)
            for path in ("/v1/subscriptions", "/v1/subscriptions?topic=t"):
                listed = await client.get(path)
                assert listed.status_code == 200, listed.text
                assert listed.json()["subscriptions"] == []
            fixed = '"metadata": {"infrastructure": {"queue": {"backoff": "fixed"}}}'
            created = await client.post(
                "/v1/subscriptions", **_raw(f'{{"topic": "t", "url": "{HOOK}", {fixed}}}')
            )
            assert created.status_code == 201, created.text
            assert created.json()["retry"]["backoff"] == "fixed"
        assert "Traceback" not in server.log()
    finally:
        server.close()
