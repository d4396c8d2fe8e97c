"""A consumer that dies without acking loses nothing: the broker hands its messages out again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_msg, make_sub, publish, receive_n

CHILD = """
import asyncio, json, sys
from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.models import Subscription

async def main():
    config, sub = json.loads(sys.argv[1]), Subscription.from_dict(json.loads(sys.argv[2]))
    adapter = RabbitMQAdapter.from_config(config)
    await adapter.start()
    got = []
    while len(got) < int(sys.argv[3]):
        got += await adapter.receive(sub, 100, 200)
    print("LEASED", len(got), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_closed_consumer_gives_its_unacked_messages_back(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as survivor:
        topic = unique("crash")
        sub = make_sub(topic, max_in_flight=10)
        await survivor.create_subscription(sub)
        await publish(survivor, *[make_msg(topic, i) for i in range(5)])
        async with open_rabbit() as doomed:
            leased = await receive_n(doomed, sub, 5)
            assert len(leased) == 5
            # the survivor sees nothing while the doomed instance holds the leases
            assert await survivor.receive(sub, 5, 200) == []
        # connection closed without a single ack
        again = await receive_n(survivor, sub, 5)
        assert sorted(d.message.data for d in again) == [0, 1, 2, 3, 4]
        assert all(d.attempt == 1 for d in again)
        await doomed.ack(leased)  # void receipts of a dead instance: a harmless no-op
        await survivor.ack(again)
        assert await survivor.receive(sub, 5, 200) == []


async def test_sigkilled_process_loses_nothing(
    open_rabbit: OpenAdapter, rabbit_config: dict[str, Any]
) -> None:
    async with open_rabbit() as survivor:
        topic = unique("sigkill")
        sub = make_sub(topic, max_in_flight=20)
        await survivor.create_subscription(sub)
        await publish(survivor, *[make_msg(topic, i) for i in range(12)])
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            json.dumps(rabbit_config),
            json.dumps(sub.to_dict()),
            "12",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.split() == [b"LEASED", b"12"]
            assert await survivor.receive(sub, 12, 200) == []
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        again = await receive_n(survivor, sub, 12, within=15)
        assert sorted(d.message.data for d in again) == list(range(12))
        await survivor.ack(again)
