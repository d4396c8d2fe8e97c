"""Triggers against a real ``hookline serve``: delivery, retries then the dead-letter topic,
Discard, forged and stale signatures, sync handlers, FastAPI mounting, re-registration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hookline import AsyncClient, Conflict, Discard, MessageContext, Triggers, new_webhook_secret

from tests.process import ServeProcess, free_port, until
from tests.sdk.conftest import serving

FAST = {"retry_delay_ms": 20, "backoff": "fixed", "jitter": 0.0}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def make(server: ServeProcess, port: int, **kwargs: Any) -> Triggers:
    return Triggers(server.url, f"http://127.0.0.1:{port}", **kwargs)


async def test_handler_gets_data_and_context(hookline_server: ServeProcess) -> None:
    port, topic, name = free_port(), unique("user.created"), unique("on-user")
    triggers = make(hookline_server, port)
    seen: list[tuple[Any, MessageContext]] = []

    @triggers.queue(name, topic=topic)
    async def handle(data: Any, ctx: MessageContext) -> None:
        seen.append((data, ctx))

    async with serving(triggers.asgi_app(), port), AsyncClient(hookline_server.url) as client:
        published = await client.publish(topic, {"id": "u_1"}, headers={"tier": "gold"})

        async def handled() -> bool:
            return bool(seen)

        await until(handled, what="the handler ran")
        data, ctx = seen[0]
        assert data == {"id": "u_1"}
        assert ctx.message_id == published.id == ctx.headers["webhook-id"]
        assert (ctx.topic, ctx.trigger, ctx.attempt) == (topic, name, 1)
        assert ctx.message_headers == {"tier": "gold"}
        assert ctx.traceparent
        assert await client.dlq.count(topic) == 0
        sub = await client.subscriptions.get(name)
        assert sub.url == f"http://127.0.0.1:{port}/hooks/{name}"


async def test_raising_handler_is_retried_then_dead_lettered(
    hookline_server: ServeProcess,
) -> None:
    port, topic, failed = free_port(), unique("orders"), unique("orders.failed")
    triggers = make(hookline_server, port)
    attempts: list[int | None] = []
    dead: list[tuple[Any, MessageContext]] = []

    @triggers.queue(
        "process-" + topic, topic=topic, max_retries=2, dead_letter_topic=failed, **FAST
    )
    def process(data: Any, ctx: MessageContext) -> None:  # a sync handler, in a thread
        assert threading.current_thread() is not threading.main_thread()
        attempts.append(ctx.attempt)
        raise RuntimeError("payment service down")

    @triggers.queue("handle-" + failed, topic=failed)
    async def handle_failed(data: Any, ctx: MessageContext) -> None:
        dead.append((data, ctx))

    async with serving(triggers.asgi_app(), port), AsyncClient(hookline_server.url) as client:
        await client.publish(topic, {"order": 7})

        async def dead_lettered() -> bool:
            return bool(dead)

        await until(dead_lettered, what="the dead-letter topic's handler ran")
        assert attempts == [1, 2, 3]  # max_retries 2: three attempts in all
        data, ctx = dead[0]
        assert data == {"order": 7}
        assert ctx.dead_letter is not None
        assert ctx.dead_letter["source_topic"] == topic
        assert ctx.dead_letter["attempts"] == 3
        entries = (await client.dlq.list(topic)).entries
        assert [e.data for e in entries] == [{"order": 7}]
        assert entries[0].last_error.status == 500
        assert "payment service down" in (entries[0].last_error.body_excerpt or "")


async def test_discard_dead_letters_at_once(hookline_server: ServeProcess) -> None:
    port, topic = free_port(), unique("spam")
    triggers = make(hookline_server, port)
    calls: list[int | None] = []

    @triggers.queue(unique("refuse"), topic=topic, max_retries=5, **FAST)
    async def refuse(data: Any, ctx: MessageContext) -> None:
        calls.append(ctx.attempt)
        raise Discard("not for us")

    async with serving(triggers.asgi_app(), port), AsyncClient(hookline_server.url) as client:
        await client.publish(topic, "junk")

        async def in_dlq() -> bool:
            return await client.dlq.count(topic) == 1

        await until(in_dlq, what="the discarded message in the DLQ")
        [entry] = (await client.dlq.list(topic)).entries
        assert entry.last_error.status == 410
        assert calls == [1]


def _signed(secret: str, msg_id: str, stamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def test_forged_or_stale_signature_is_refused(hookline_server: ServeProcess) -> None:
    port, topic, name = free_port(), unique("secure"), unique("secure")
    secret = new_webhook_secret()
    triggers = make(hookline_server, port, secret=secret)
    ran: list[Any] = []

    @triggers.queue(name, topic=topic)
    async def handle(data: Any, ctx: MessageContext) -> None:
        ran.append(data)

    body = json.dumps({"id": "msg_x", "topic": topic, "data": 1, "attempt": 1}).encode()
    now = int(time.time())
    cases = {
        "forged": {"webhook-signature": _signed(new_webhook_secret(), "msg_x", now, body)},
        "stale": {
            "webhook-signature": _signed(secret, "msg_x", now - 600, body),
            "webhook-timestamp": str(now - 600),
        },
        "unsigned": {"webhook-signature": ""},
        "garbage": {"webhook-signature": "nonsense"},
    }
    async with serving(triggers.asgi_app(), port) as url, httpx.AsyncClient() as http:
        for case, headers in cases.items():
            sent = {"webhook-id": "msg_x", "webhook-timestamp": str(now), **headers}
            answer = await http.post(f"{url}/hooks/{name}", content=body, headers=sent)
            assert answer.status_code == 401, case
            assert answer.json()["error"]["code"] == "invalid_signature"
        good = {"webhook-id": "msg_x", "webhook-timestamp": str(now)}
        good["webhook-signature"] = _signed(secret, "msg_x", now, body)
        answer = await http.post(f"{url}/hooks/{name}", content=body, headers=good)
        assert answer.status_code == 200
    assert ran == [1]  # only the genuine request reached the handler


async def test_reregistration_on_restart_changes_nothing(hookline_server: ServeProcess) -> None:
    port, topic, name = free_port(), unique("emails.send"), unique("send-email")
    secret = new_webhook_secret()
    options: dict[str, Any] = {
        "max_retries": 5,
        "retry_delay_ms": 2000,
        "dead_letter_topic": unique("emails.failed"),
        "condition": "data.to != ''",
        "headers": {"x-app": "mailer"},
    }
    received: list[Any] = []

    def app_instance() -> Triggers:  # what one start of the app declares
        triggers = make(hookline_server, port, secret=secret)

        @triggers.queue(name, topic=topic, **options)
        async def send_email(data: Any) -> None:  # the engine's one-argument handler
            received.append(data)

        return triggers

    first = app_instance()
    async with AsyncClient(hookline_server.url) as client:
        [registered] = await first.sync()
        assert registered.secret == secret  # created with the triggers' own secret
        before = await client.subscriptions.get(name)
        await client.subscriptions.pause(name)  # an operator pauses it meanwhile

        restarted = app_instance()
        await restarted.sync()
        await restarted.sync()
        after = await client.subscriptions.get(name)
        assert after.paused  # the operator's pause survives the restart, and says why
        assert after.raw["paused_reason"] == "manual"
        unchanged = {"updated_at": 0, "paused": False, "paused_reason": None}
        assert after.raw | unchanged == before.raw | unchanged
        assert [s.id for s in await client.subscriptions.list(topic)] == [name]

        await client.subscriptions.resume(name)
        async with serving(restarted.asgi_app(), port):
            await client.publish(topic, {"to": "ada@example.com"})

            async def delivered() -> bool:  # signed with the same secret: verifies
                return bool(received)

            await until(delivered, what="delivery after the restart")
        assert received == [{"to": "ada@example.com"}]


async def test_topic_change_is_a_clear_conflict(hookline_server: ServeProcess) -> None:
    name = unique("moving")
    old = make(hookline_server, free_port())
    old.queue(name, topic=unique("old"))(lambda data: None)
    await old.sync()
    new = make(hookline_server, free_port())
    new.queue(name, topic=unique("new"))(lambda data: None)
    with pytest.raises(Conflict, match="delete the subscription") as raised:
        await new.sync()
    assert raised.value.code == "topic_changed"


async def test_mount_on_fastapi_registers_at_startup(hookline_server: ServeProcess) -> None:
    port, topic, name = free_port(), unique("order.placed"), unique("on-order-placed")
    triggers = make(hookline_server, port)
    orders: list[Any] = []

    @triggers.queue(name, topic=topic)
    async def on_order_placed(data: Any, ctx: MessageContext) -> None:
        orders.append(data)

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    triggers.mount(app)
    async with serving(app, port) as url, AsyncClient(hookline_server.url) as client:
        sub = await client.subscriptions.get(name)  # registered during start-up
        assert sub.url == f"{url}/hooks/{name}"
        assert (await httpx.AsyncClient().get(f"{url}/health")).json() == {"status": "ok"}
        await client.publish(topic, {"order_id": "o_1"})

        async def handled() -> bool:
            return bool(orders)

        await until(handled, what="the mounted handler ran")
    assert orders == [{"order_id": "o_1"}]


def test_trigger_options_that_triggers_own_are_refused() -> None:
    triggers = Triggers("http://127.0.0.1:1", "http://127.0.0.1:2")
    with pytest.raises(TypeError, match="secret"):
        triggers.queue("x", topic="t", secret="whsec_abc")  # type: ignore[call-arg]
