"""Pipelined publishing: frames as pamqp writes them, one write per loop turn, a result
per message (confirmed, returned), and every confirmed message really stored."""

from __future__ import annotations

import asyncio

import aiormq
import pamqp.frame
import pytest
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from app.adapters.rabbitmq import codec
from app.adapters.rabbitmq.connection import Outbound
from app.adapters.rabbitmq.frames import PublishEncoder, ack, nack
from app.core.errors import BackendUnavailableError
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_msg, make_sub, publish, receive_n


def _pamqp_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: Basic.Properties,
    body: bytes,
    frame_max: int,
) -> bytes:
    frames = [
        pamqp.frame.marshal(
            Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            channel,
        ),
        pamqp.frame.marshal(ContentHeader(0, len(body), properties), channel),
    ]
    step = frame_max - 8
    for start in range(0, len(body), step):
        frames.append(pamqp.frame.marshal(ContentBody(body[start : start + step]), channel))
    return b"".join(frames)


@pytest.mark.parametrize(
    ("exchange", "routing_key", "mandatory", "properties", "size"),
    [
        ("hl.topics", "orders.created", False, codec.PLAIN, 1000),
        ("hl.direct", "hl.sub.abc.123", True, codec.properties({"hl-attempt": 2}), 10),
        ("", "queue-é", False, codec.properties({"hl-due": 2**40, "hl-b3": 1}), 0),
        ("x", "y", True, Basic.Properties(message_id="m1", content_type="t"), 300_000),
    ],
)
def test_frames_are_what_pamqp_writes(
    exchange: str, routing_key: str, mandatory: bool, properties: Basic.Properties, size: int
) -> None:
    body = bytes(i % 251 for i in range(size))
    encoder = PublishEncoder(7, 131_072)
    for _ in range(2):  # the second time from the caches
        ours = b"".join(encoder.encode(exchange, routing_key, mandatory, properties, body))
        assert ours == _pamqp_frames(7, exchange, routing_key, mandatory, properties, body, 131_072)


def test_a_routing_key_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 255"):
        PublishEncoder(1, 131_072).encode("x", "k" * 256, False, codec.PLAIN, b"")


async def test_concurrent_publishes_share_writes_and_are_all_stored(
    open_rabbit: OpenAdapter,
) -> None:
    topic = unique("pipelined")
    sub = make_sub(topic, max_in_flight=500)
    async with open_rabbit() as adapter:
        await adapter.create_subscription(sub)
        session = await adapter.connection.session()
        publisher = await session.publisher()
        before = publisher.writes
        singles = [make_msg(topic, i) for i in range(100)]
        batches = [[make_msg(topic, 1000 + 10 * b + i) for i in range(10)] for b in range(10)]
        await asyncio.gather(
            *(publish(adapter, m) for m in singles), *(publish(adapter, *b) for b in batches)
        )
        # all 110 calls started in one loop turn: their frames went out in one payload
        assert publisher.writes - before == 1
        got = await receive_n(adapter, sub, 200)
        expected = {m.id for m in singles} | {m.id for b in batches for m in b}
        assert {d.message.id for d in got} == expected
        await adapter.ack(got)


async def test_each_message_gets_its_own_result(open_rabbit: OpenAdapter) -> None:
    topic = unique("results")
    sub = make_sub(topic)
    async with open_rabbit() as adapter:
        await adapter.create_subscription(sub)
        session = await adapter.connection.session()
        queue = adapter.subscription_queue(sub.id)
        assert queue is not None
        body = b'{"x":1}'
        routed = Outbound(adapter.names.direct, queue, body, codec.PLAIN)
        nowhere = Outbound(adapter.names.direct, "no-such-queue", body, codec.PLAIN)
        results = await session.publish_each([routed, nowhere, routed, nowhere])
        assert results[0] is None
        assert results[2] is None
        assert all(isinstance(r, aiormq.exceptions.PublishError) for r in results[1::2])
        # the shared properties were not given a message id on the way
        assert codec.PLAIN.message_id is None


async def test_a_publish_on_a_closed_connection_is_refused(open_rabbit: OpenAdapter) -> None:
    topic = unique("closed")
    async with open_rabbit() as adapter:
        await adapter.create_subscription(make_sub(topic))
        session = await adapter.connection.session()
        await session.publish_conn.close()
        with pytest.raises(BackendUnavailableError):
            await publish(adapter, make_msg(topic, 1))


@pytest.mark.parametrize("multiple", [False, True])
@pytest.mark.parametrize("tag", [1, 2**40 + 5])
def test_ack_and_nack_frames_are_what_pamqp_writes(tag: int, multiple: bool) -> None:
    assert ack(3, tag, multiple) == pamqp.frame.marshal(
        Basic.Ack(delivery_tag=tag, multiple=multiple), 3
    )
    for requeue in (False, True):
        assert nack(3, tag, requeue, multiple) == pamqp.frame.marshal(
            Basic.Nack(delivery_tag=tag, multiple=multiple, requeue=requeue), 3
        )
