"""Item 13 of issue 9: a delivery that cannot be built ends in the DLQ, on every adapter.

Whatever makes the body or the signature impossible to build, the message is dead-lettered
with reason ``build_error`` on its first attempt: never left leased (builtin in flight
forever, Redis taken over and failing forever, RabbitMQ unacked forever).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.core.publisher import PublishRequest
from app.dispatch import payload, worker
from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver


def failing(*_: Any, **__: Any) -> bytes:
    raise RuntimeError("injected: cannot build this delivery")


async def settled(hookline: Hookline, topic: str) -> bool:
    info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
    return bool(info["backlog"] == 0 and info["in_flight"] == 0 and info["scheduled"] == 0)


@pytest.mark.parametrize(
    ("where", "builder"), [(worker, "build_body"), (payload.HeaderPlan, "headers")]
)
async def test_a_failing_builder_dead_letters_with_build_error(
    hookline: Hookline,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    where: object,
    builder: str,
) -> None:
    topic = unique("unbuildable")
    await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 3})
    monkeypatch.setattr(where, builder, failing)
    published = await hookline.publish(topic, {"n": 1})
    await eventually(lambda: hookline.dlq_count(topic))
    [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    assert entry["message_id"] == published["id"]
    assert entry["attempts"] == 1
    assert entry["last_error"]["reason"] == "build_error"
    assert "injected: cannot build this delivery" in entry["last_error"]["body_excerpt"]
    await eventually(lambda: settled(hookline, topic))
    assert receiver.requests() == []
    metrics = (await hookline.client.get("/metrics")).text
    assert 'reason="build_error"' in metrics
    # Once the builder works again, a redrive delivers it.
    monkeypatch.undo()
    redriven = await hookline.client.post(f"/v1/topics/{topic}/dlq/redrive")
    assert redriven.json() == {"redriven": 1}
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == {"n": 1}


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
async def test_a_stored_lone_surrogate_is_dead_lettered_not_redelivered_forever(
    receiver: Receiver, kind: str
) -> None:
    """A message stored before the API refused lone surrogates (the publisher below the
    API does not check): its body has no UTF-8 form, so it goes to the DLQ at once."""
    async with running_hookline(kind) as hookline:
        topic = unique("surrogate")
        await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 3})
        await hookline.runtime.publisher.publish(topic, [PublishRequest({"bad": "\ud800"})])
        await eventually(lambda: hookline.dlq_count(topic))
        [entry] = (await hookline.runtime.adapter.dlq_list(topic, limit=10)).entries
        assert entry.last_error.reason == "build_error"
        assert entry.last_error.body_excerpt is not None
        assert "UnicodeEncodeError" in entry.last_error.body_excerpt
        assert entry.attempts == 1
        await eventually(lambda: settled(hookline, topic))
        assert receiver.requests() == []
