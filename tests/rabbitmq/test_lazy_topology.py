"""A starting instance does not re-declare every subscription queue (issue 11).

With 10,000 subscriptions the old connect-time loop (declare and bind each queue) kept a
second instance from being ready for over 30 s. Now each queue is healed (declared if
missing, bound again) before this instance first consumes it.
"""

from __future__ import annotations

import aio_pika

from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_msg, make_sub, publish, receive_n
from tests.rabbitmq.test_recovery import queue_exists


async def test_start_leaves_queues_alone_and_first_consume_heals_one(
    open_rabbit: OpenAdapter,
) -> None:
    topic = unique("lazy")
    kept, lost = make_sub(topic), make_sub(topic)
    async with open_rabbit() as first:
        await first.create_subscription(kept)
        await first.create_subscription(lost)
        lost_queue = first.subscription_queue(lost.id)
        assert lost_queue is not None
    # The queue goes missing behind hookline's back (an operator, a lost node).
    connection = await aio_pika.connect(first.settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(lost_queue)
    finally:
        await connection.close()

    async with open_rabbit() as second:
        assert await second.ping()  # ready...
        assert not await queue_exists(second, lost_queue)  # ...without declaring it
        assert await second.receive(lost, 10, 0) == []  # first consume heals it
        assert await queue_exists(second, lost_queue)
        await publish(second, make_msg(topic, "after"))
        [delivery] = await receive_n(second, lost, 1)
        assert delivery.message.data == "after"
        [other] = await receive_n(second, kept, 1)
        assert other.message.data == "after"
