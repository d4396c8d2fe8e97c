"""Items 13 and 15 of issue 9: values JSON cannot carry are refused at every publish route.

Bodies are raw bytes: Python's ``json`` would write ``NaN`` or escape a surrogate its own way,
and the point is what a hostile or careless client actually sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver

TOPIC = "hostile"

HOSTILE = {
    "nan": (b"NaN", "NaN is not a JSON number"),
    "infinity": (b"Infinity", "Infinity is not a JSON number"),
    "minus-infinity": (b"-Infinity", "-Infinity is not a JSON number"),
    "1e400": (b"1e400", "1e400 is beyond the range of a JSON number"),
    "nested-nan": (b'{"a": [1, NaN]}', "NaN is not a JSON number"),
    "surrogate": (b'"\\ud800"', "lone UTF-16 surrogate (\\ud800)"),
    "low-surrogate-in-list": (b'["ok", "x\\udfff"]', "lone UTF-16 surrogate (\\udfff)"),
    "surrogate-key": (b'{"\\ud800": 1}', "lone UTF-16 surrogate (\\ud800)"),
    "raw-surrogate-bytes": (b'"\xed\xa0\x80"', "lone UTF-16 surrogate (\\ud800)"),
    "huge-integer": (b"9" * 5000, "an integer of 5000 digits is longer than the 4300"),
}
"""A value placed where ``data`` goes, and what the error must say about it."""

ROUTES = {
    "single": ("/v1/topics/hostile/messages", b'{"data": %s}', "data"),
    "batch": (
        "/v1/topics/hostile/messages/batch",
        b'{"messages": [{"data": 1}, {"data": %s}]}',
        "messages.1.data",
    ),
    "enqueue": ("/v1/enqueue", b'{"topic": "hostile", "data": %s}', "data"),
    "function": ("/v1/functions/queue.enqueue", b'{"topic": "hostile", "data": %s}', "data"),
}
"""Every publish route: its path, a body with a hole for the value, where the value sits."""

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def hookline(receiver: Receiver) -> AsyncIterator[Hookline]:
    """Builtin hookline with one subscription on the topic under attack."""
    async with running_hookline("builtin") as running:
        await running.subscribe(topic=TOPIC, url=receiver.url())
        yield running


async def nothing_was_accepted(hookline: Hookline, receiver: Receiver) -> None:
    """A good message still goes through, alone: nothing hostile was stored before it."""
    await hookline.publish(TOPIC, "canary")
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == "canary"

    async def settled() -> bool:
        info = (await hookline.client.get(f"/v1/topics/{TOPIC}")).json()
        return bool(info["backlog"] == 0 and info["in_flight"] == 0 and info["scheduled"] == 0)

    await eventually(settled)
    assert len(receiver.requests()) == 1
    assert await hookline.dlq_count(TOPIC) == 0


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("value", list(HOSTILE))
async def test_unrepresentable_data_is_422_on_every_route(
    hookline: Hookline, receiver: Receiver, route: str, value: str
) -> None:
    path, template, where = ROUTES[route]
    raw, problem = HOSTILE[value]
    response = await hookline.client.post(path, content=template % raw, headers=JSON)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(where)
    assert problem in error["message"]
    assert error["details"][0]["loc"][0] == "body"
    await nothing_was_accepted(hookline, receiver)


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/topics/hostile/messages", b'{"data": 1, "headers": {"x-a": "\\ud800"}}', "headers"),
        (
            "/v1/topics/hostile/messages/batch",
            b'{"messages": [{"data": 1, "headers": {"x-a": "\\udbff"}}]}',
            "messages.0.headers.x-a",
        ),
        ("/v1/topics/hostile/messages", b'{"data": 1, "headers": {"\\ud800": "v"}}', "headers"),
    ],
)
async def test_lone_surrogates_in_message_headers_are_422(
    hookline: Hookline, receiver: Receiver, path: str, body: bytes, where: str
) -> None:
    response = await hookline.client.post(path, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(where)
    assert "surrogate" in response.json()["error"]["message"]
    await nothing_was_accepted(hookline, receiver)


async def test_the_engine_function_refuses_them_without_a_json_content_type(
    hookline: Hookline, receiver: Receiver
) -> None:
    """``curl -d`` sends a form content type; the function still reads (and checks) JSON."""
    response = await hookline.client.post(
        "/v1/functions/queue.enqueue",
        content=b'{"topic": "hostile", "data": {"n": NaN}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("data.n: NaN")
    await nothing_was_accepted(hookline, receiver)


async def test_what_json_can_carry_is_delivered_exactly(
    hookline: Hookline, receiver: Receiver
) -> None:
    """No over-refusal: surrogate pairs, huge integers, tiny and negative-zero numbers."""
    body = (
        b'{"data": {"emoji": "\\ud83d\\ude00", "big": 123456789012345678901234567890,'
        b' "tiny": 1e-400, "max": 1.7976931348623157e308, "text": "na\xc3\xafve"}}'
    )
    response = await hookline.client.post(
        f"/v1/topics/{TOPIC}/messages", content=body, headers=JSON
    )
    assert response.status_code == 202, response.text
    [got] = await receiver.wait_for(1)
    assert b"123456789012345678901234567890" in got.body
    assert got.json()["data"] == {
        "emoji": "\U0001f600",
        "big": 123456789012345678901234567890,
        "tiny": 0.0,
        "max": 1.7976931348623157e308,
        "text": "naïve",
    }


async def test_malformed_json_is_still_the_usual_422(hookline: Hookline) -> None:
    response = await hookline.client.post(
        "/v1/enqueue", content=b'{"topic": "hostile", "data": NaN', headers=JSON
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] == "json_invalid"
