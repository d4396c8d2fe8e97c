"""Every 4xx path answers JSON ``{"error": {code, message, details?}}`` and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.harness import Hookline, running_hookline

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
async def hookline() -> AsyncIterator[Hookline]:
    async with running_hookline(
        "builtin",
        limits={"max_body_bytes": 4096, "max_batch": 3},
        adapter={"max_messages": 5},
    ) as running:
        yield running


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/topics/bad topic/messages", {"data": 1}),
        ("/v1/topics/.starts-with-dot/messages", {"data": 1}),
        ("/v1/topics/t/messages", {"data": 1, "delay_ms": -5}),
        ("/v1/topics/t/messages", {"data": 1, "unknown": True}),
        ("/v1/topics/t/messages", {"nodata": 1}),
        ("/v1/topics/t/messages", {"data": 1, "headers": {"bad name": "x"}}),
        ("/v1/topics/t/messages", {"data": 1, "delay_ms": 10**12}),
        ("/v1/topics/t/messages/batch", {"messages": []}),
        ("/v1/topics/t/messages/batch", {"messages": [{"data": i} for i in range(4)]}),
        ("/v1/topics/t/messages/batch", {"messages": [{"data": 1}, {"delay_ms": 1}]}),
        ("/v1/enqueue", {"topic": "has space", "data": 1}),
        ("/v1/subscriptions", {"topic": "t"}),
        ("/v1/subscriptions", {"topic": "t", "url": "ftp://example.com/x"}),
        ("/v1/subscriptions", {"topic": "t", "url": "not a url"}),
        ("/v1/subscriptions", {"topic": "t", "url": "http://"}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "retry": {"max_retries": -1}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "retry": {"max_retries": 10**6}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "retry": {"retry_delay_ms": -1}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "retry": {"jitter": 3}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "retry": {"backoff": "linear"}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "timeout_ms": 0}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "max_in_flight": 0}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "payload": "xml"}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "secret": "short"}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "headers": {"webhook-id": "x"}}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "dead_letter_topic": "t"}),
        ("/v1/subscriptions", {"topic": "t", "url": HOOK, "id": "bad id!"}),
        (
            "/v1/subscriptions",
            {
                "topic": "t",
                "url": HOOK,
                "metadata": {"infrastructure": {"queue": {"max_retries": -2}}},
            },
        ),
        ("/v1/functions/queue.enqueue", {"data": 1}),
        ("/v1/functions/queue.dlq_count", {"topic": "a b"}),
        ("/v1/topics/t/dlq/redrive", {"ids": []}),
    ],
)
async def test_invalid_requests_are_422(hookline: Hookline, path: str, body: Any) -> None:
    response = await hookline.client.post(path, json=body)
    assert_error(response, 422, "validation_error")
    assert await hookline.runtime.adapter.list_subscriptions() == []
    assert await hookline.runtime.adapter.list_topics() in ([], ["t"])


async def test_bad_cel_is_422_with_the_parse_error(hookline: Hookline) -> None:
    response = await hookline.client.post(
        "/v1/subscriptions", json={"topic": "t", "url": HOOK, "condition": "data.x =="}
    )
    error = assert_error(response, 422, "invalid_condition")
    assert "Syntax error" in error["details"][0]["msg"]
    assert await hookline.runtime.adapter.list_subscriptions() == []


@pytest.mark.parametrize(
    ("condition", "kind", "reason"),
    [
        ("1 + 2", "cel_type", "must return a bool, this one returns int"),
        ("'text'", "cel_type", "must return a bool, this one returns string"),
        ("foo.bar == 1", "cel_type", "undeclared reference to 'foo'"),
        (
            "data.l.all(a, data.l.all(b, data.l.all(c, data.l.all(d, true))))",
            "cel_limit",
            "nests 4",
        ),
    ],
)
async def test_condition_that_cannot_work_is_422_at_save(
    hookline: Hookline, condition: str, kind: str, reason: str
) -> None:
    response = await hookline.client.post(
        "/v1/subscriptions", json={"topic": "t", "url": HOOK, "condition": condition}
    )
    error = assert_error(response, 422, "invalid_condition")
    assert reason in error["message"]
    assert error["details"] == [
        {"loc": ["condition"], "msg": error["details"][0]["msg"], "type": kind}
    ]
    assert reason in error["details"][0]["msg"]
    assert await hookline.runtime.adapter.list_subscriptions() == []
    created = await hookline.client.post(
        "/v1/subscriptions", json={"topic": "t", "url": HOOK, "condition": "data.x == 1"}
    )
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    patched = await hookline.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"condition": condition}
    )
    assert_error(patched, 422, "invalid_condition")
    stored = (await hookline.client.get(f"/v1/subscriptions/{sub_id}")).json()
    assert stored["condition"] == "data.x == 1"


async def test_malformed_json_is_422(hookline: Hookline) -> None:
    response = await hookline.client.post(
        "/v1/topics/t/messages",
        content=b'{"data": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


async def test_body_over_the_limit_is_413(hookline: Hookline) -> None:
    big = {"data": "x" * 5000}
    response = await hookline.client.post("/v1/topics/t/messages", json=big)
    assert_error(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    chunked = await hookline.client.post(
        "/v1/topics/t/messages", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(chunked, 413, "payload_too_large")


async def test_unknown_things_are_404_and_405(hookline: Hookline) -> None:
    assert_error(await hookline.client.get("/v1/subscriptions/nope"), 404, "not_found")
    assert_error(await hookline.client.delete("/v1/subscriptions/nope"), 404, "not_found")
    assert_error(await hookline.client.post("/v1/subscriptions/nope/pause"), 404, "not_found")
    assert_error(await hookline.client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await hookline.client.delete("/v1/topics/t/messages"), 405, "method_not_allowed")
    error = assert_error(
        await hookline.client.post("/v1/functions/queue.nope", json={}), 404, "unknown_function"
    )
    assert "queue.enqueue" in error["details"]["known"]


async def test_duplicate_id_and_topic_change_are_409(hookline: Hookline) -> None:
    body = {"id": "sub-1", "topic": "t", "url": HOOK}
    assert (await hookline.client.post("/v1/subscriptions", json=body)).status_code == 201
    assert_error(await hookline.client.post("/v1/subscriptions", json=body), 409, "conflict")
    moved = await hookline.client.put(
        "/v1/subscriptions/sub-1", json={"topic": "other", "url": HOOK}
    )
    assert_error(moved, 409, "conflict")
    assert (await hookline.client.get("/v1/subscriptions/sub-1")).json()["topic"] == "t"


async def test_builtin_capacity_answers_503_instead_of_growing(hookline: Hookline) -> None:
    await hookline.client.post(
        "/v1/subscriptions", json={"id": "held", "topic": "full", "url": HOOK, "paused": True}
    )
    for i in range(5):
        assert (
            await hookline.client.post("/v1/topics/full/messages", json={"data": i})
        ).status_code == 202
    response = await hookline.client.post("/v1/topics/full/messages", json={"data": 5})
    error = assert_error(response, 503, "capacity_exceeded")
    assert "full" in error["message"]
    assert response.headers["Retry-After"] == "1"
    topic = (await hookline.client.get("/v1/topics/full")).json()
    assert topic["backlog"] == 5


async def test_publish_to_a_topic_without_subscriptions_is_fine(hookline: Hookline) -> None:
    response = await hookline.client.post("/v1/topics/nobody.listens/messages", json={"data": 1})
    assert response.status_code == 202


async def test_api_keys_and_scopes() -> None:
    keys = "publisher-key-1:publish,admin-key-123:admin,dlq-reader-1:dlq"
    async with running_hookline("builtin", api_keys=keys) as hookline:
        client = hookline.client
        assert_error(
            await client.post("/v1/topics/t/messages", json={"data": 1}), 401, "unauthorized"
        )
        wrong = {"Authorization": "Bearer not-a-key"}
        assert_error(
            await client.post("/v1/topics/t/messages", json={"data": 1}, headers=wrong),
            401,
            "unauthorized",
        )
        publisher = {"Authorization": "Bearer publisher-key-1"}
        ok = await client.post("/v1/topics/t/messages", json={"data": 1}, headers=publisher)
        assert ok.status_code == 202
        assert_error(
            await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": HOOK}, headers=publisher
            ),
            403,
            "forbidden",
        )
        assert_error(
            await client.post(
                "/v1/functions/queue.dlq_count", json={"topic": "t"}, headers=publisher
            ),
            403,
            "forbidden",
        )
        dlq = {"Authorization": "Bearer dlq-reader-1"}
        assert (await client.get("/v1/topics/t/dlq/count", headers=dlq)).json()["count"] == 0
        admin = {"Authorization": "Bearer admin-key-123"}
        created = await client.post(
            "/v1/subscriptions", json={"topic": "t", "url": HOOK}, headers=admin
        )
        assert created.status_code == 201
        assert (await client.get("/healthz")).status_code == 200
        ready = (await client.get("/readyz")).json()
        assert ready["auth"] == "api_keys"
