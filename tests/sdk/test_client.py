"""Client and AsyncClient against a real ``hookline serve``: every call, typed results,
errors with hookline's codes, keys and URL from the environment.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookline import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    HooklineConnectionError,
    HooklineError,
    Message,
    NotFound,
    RetrySettings,
    Unauthorized,
    Unsupported,
    ValidationFailed,
)

from tests.process import ServeProcess, free_port
from tests.receiver import Receiver, Reply
from tests.sdk.conftest import start_hookline


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_publish_is_idempotent_and_typed(hookline_server: ServeProcess) -> None:
    topic = unique("user.created")
    with Client(hookline_server.url) as client:
        first = client.publish(topic, {"id": "u_1"}, idempotency_key="k-1")
        again = client.publish(topic, {"id": "u_1"}, idempotency_key="k-1")
        other = client.publish(topic, {"id": "u_1"})  # its own key: a new message
        assert (first.topic, first.duplicate) == (topic, False)
        assert (again.id, again.duplicate) == (first.id, True)
        assert other.id != first.id
        assert not other.duplicate
        results = client.publish_batch(
            topic, [Message({"n": 1}), {"data": {"n": 2}}, Message({"n": 3}, idempotency_key="b")]
        )
        assert [r.duplicate for r in results] == [False, False, False]
        assert client.publish_batch(topic, [Message(0, idempotency_key="b")])[0].id == results[2].id


def test_engine_functions_return_what_the_engine_does(hookline_server: ServeProcess) -> None:
    topic = unique("emails.send")
    with Client(hookline_server.url) as client:
        assert client.call("queue.enqueue", {"topic": topic, "data": {"to": "a@b"}}) is None
        assert client.call("queue.dlq_count", {"topic": topic}) == 0
        assert client.call("queue.redrive_dlq", {"topic": topic}) == 0
        with pytest.raises(ValueError, match=r"queue\.enqueue"):
            client.call("queue.nope", {})


def test_subscription_lifecycle(hookline_server: ServeProcess) -> None:
    topic, name = unique("orders"), unique("sub")
    with Client(hookline_server.url) as client:
        created = client.subscriptions.create(
            topic,
            "http://127.0.0.1:9/hook",
            id=name,
            max_retries=3,
            retry_delay_ms=1000,
            dead_letter_topic=unique("orders.failed"),
            condition="data.priority == 'high'",
        )
        assert created.secret is not None
        assert created.secret.startswith("whsec_")
        assert (created.retry.max_retries, created.retry.retry_delay_ms) == (3, 1000)
        assert created.condition == "data.priority == 'high'"
        got = client.subscriptions.get(name)
        assert got.secret != created.secret  # masked after creation
        assert [s.id for s in client.subscriptions.list(topic)] == [name]
        assert client.subscriptions.update(name, timeout_ms=2000).timeout_ms == 2000
        replaced = client.subscriptions.replace(name, topic, "http://127.0.0.1:9/other")
        assert replaced.condition is None
        assert replaced.url.endswith("/other")
        assert client.subscriptions.pause(name).paused
        assert not client.subscriptions.resume(name).paused
        rotated = client.subscriptions.rotate_secret(name, grace_ms=0)
        assert rotated.secret is not None
        assert rotated.secret.startswith("whsec_")
        with pytest.raises(Conflict) as taken:
            client.subscriptions.create(topic, "http://127.0.0.1:9/hook", id=name)
        assert taken.value.status == 409
        with pytest.raises(ValidationFailed) as bad:
            client.subscriptions.create(topic, "http://127.0.0.1:9/hook", condition="data.(")
        assert bad.value.code == "invalid_condition"
        assert bad.value.status == 422
        client.subscriptions.delete(name)
        with pytest.raises(NotFound) as missing:
            client.subscriptions.get(name)
        assert missing.value.code == "not_found"


async def test_dlq_count_list_redrive_purge(
    hookline_server: ServeProcess, receiver: Receiver
) -> None:
    topic = unique("jobs")
    receiver.default("/fail", Reply(status=500, body=b"boom"))
    async with AsyncClient(hookline_server.url) as client:
        sub = await client.subscriptions.create(
            topic, receiver.url("/fail"), max_retries=0, retry_delay_ms=10
        )
        for n in range(3):
            await client.publish(topic, {"n": n})
        deadline = time.monotonic() + 20
        while await client.dlq.count(topic) < 3:
            assert time.monotonic() < deadline, "messages did not reach the DLQ"
            await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait
        assert await client.dlq.count(topic, subscription=sub.id) == 3
        page = await client.dlq.list(topic, limit=2)
        assert len(page.entries) == 2
        assert page.next_cursor is not None
        rest = await client.dlq.list(topic, cursor=page.next_cursor)
        entries = page.entries + rest.entries
        assert sorted(e.data["n"] for e in entries) == [0, 1, 2]
        assert all(e.subscription_id == sub.id and e.last_error.status == 500 for e in entries)
        await client.subscriptions.pause(sub.id)  # redriven entries wait instead of failing
        assert await client.dlq.redrive(topic, ids=[entries[0].id]) == 1
        assert await client.call("queue.dlq_count", {"topic": topic}) == 2
        assert await client.dlq.purge(topic) == 2
        assert await client.dlq.count(topic) == 0


def test_message_lookup_on_a_server_without_it(hookline_server: ServeProcess) -> None:
    """This server predates GET /v1/messages/{id}: a clear Unsupported (a NotFound)."""
    with Client(hookline_server.url) as client:
        published = client.publish(unique("lookup"), 1)
        probe = client._http.get(f"/v1/messages/{published.id}")
        if probe.status_code != 404 or probe.json()["error"]["message"] != "Not Found":
            pytest.skip("this server has message lookup: covered by test_message_lookup")
        with pytest.raises(Unsupported) as unsupported:
            client.messages.get(published.id)
    assert isinstance(unsupported.value, NotFound)
    assert unsupported.value.code == "unsupported"
    assert "messages.get" in unsupported.value.message


def test_message_lookup(hookline_server: ServeProcess, receiver: Receiver) -> None:
    """Where the server has GET /v1/messages/{id}: a typed result, raw JSON kept."""
    topic = unique("lookup")
    with Client(hookline_server.url) as client:
        client.subscriptions.create(topic, receiver.url("/lookup"))
        published = client.publish(topic, {"n": 1}, headers={"k": "v"})
        try:
            info = client.messages.get(published.id)
        except Unsupported:
            pytest.skip("this server has no message lookup yet")
        assert info.id == published.id
        assert info.topic == topic
        assert info.data == {"n": 1}
        assert info.raw
        with pytest.raises(NotFound) as missing:
            client.messages.get("msg_does_not_exist")
        assert not isinstance(missing.value, Unsupported)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A hookline with API keys: an admin key and a publish-only key."""
    server = start_hookline(
        tmp_path_factory.mktemp("keyed"),
        auth={
            "api_keys": [
                {"key": "admin-key-123456", "scopes": ["admin"]},
                {"key": "publish-key-123456", "scopes": ["publish"]},
            ]
        },
    )
    try:
        yield server
    finally:
        server.close()


def test_keys_and_url_from_the_environment(
    keyed_server: ServeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKLINE_URL", keyed_server.url)
    with Client() as anonymous, pytest.raises(Unauthorized) as refused:
        anonymous.publish("t", 1)
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert "Bearer" in refused.value.headers.get("www-authenticate", "")

    monkeypatch.setenv("HOOKLINE_API_KEY", "publish-key-123456")
    with Client() as publisher:
        assert not publisher.publish("t", 1).duplicate
        with pytest.raises(Forbidden) as forbidden:
            publisher.dlq.count("t")
        assert forbidden.value.status == 403
    with Client(api_key="admin-key-123456") as admin:
        assert admin.dlq.count("t") == 0


def test_no_server_is_a_connection_error_after_bounded_retries() -> None:
    fast = RetrySettings(max_retries=2, backoff_s=0.01)
    started = time.monotonic()
    client = Client(f"http://127.0.0.1:{free_port()}", retry=fast)
    with client, pytest.raises(HooklineConnectionError) as failed:
        client.publish("t", 1)
    assert isinstance(failed.value, HooklineError)
    assert failed.value.status is None
    assert failed.value.code == "connection_error"
    assert time.monotonic() - started < 5


def test_write_config_is_used(tmp_path: Path) -> None:
    # start_hookline passes extra config through (the keyed server relies on it)
    server = start_hookline(tmp_path, limits={"max_body_bytes": 2048, "max_batch": 2})
    try:
        with Client(server.url) as client, pytest.raises(ValidationFailed, match="at most 2"):
            client.publish_batch("t", [Message(1), Message(2), Message(3)])
    finally:
        server.close()
