"""A full database (``max_bytes``, the same SQLITE_FULL as a full disk) refuses publishes
with 503 and keeps draining what it holds.
"""

from __future__ import annotations

import pytest

from app.adapters.sqlite import SqliteAdapter
from app.core.errors import BackendUnavailableError
from app.core.ports import OutgoingMessage
from tests.adapter_helpers import make_msg, make_sub, publish, receive_n
from tests.backends import unique
from tests.sqlite.conftest import OpenAdapter

BIG = "x" * 4000


async def fill(adapter: SqliteAdapter, topic: str) -> int:
    """Publish ~4 KB messages until refused; how many were accepted."""
    for i in range(1000):
        try:
            await adapter.publish([OutgoingMessage(make_msg(topic, {"i": i, "pad": BIG}))])
        except BackendUnavailableError:
            return i
    raise AssertionError("never full")


async def test_full_database_refuses_publishes_and_keeps_draining(
    open_sqlite: OpenAdapter,
) -> None:
    topic = unique("full")
    sub = make_sub(topic)
    async with open_sqlite(max_bytes=512 * 1024) as adapter:
        await adapter.create_subscription(sub)
        accepted = await fill(adapter, topic)
        assert 20 < accepted < 1000
        with pytest.raises(BackendUnavailableError, match="full"):
            await publish(adapter, *[make_msg(topic, BIG) for _ in range(10)])  # all or nothing
        assert await adapter.ping() is True

        drained = []
        while len(drained) < accepted:
            got = await receive_n(adapter, sub, 50)
            assert got, f"stuck after {len(drained)} of {accepted}"
            assert await adapter.ack(got) is True
            drained += [d.message.data["i"] for d in got]
        assert sorted(drained) == list(range(accepted))  # the refused batch left nothing
        await publish(adapter, make_msg(topic, "room again"))
        [got] = await receive_n(adapter, sub, 1)
        assert got.message.data == "room again"
