"""The same adapter on a real 3-node Redis Cluster: the whole contract suite, plus slots.

The cluster is started by the ``redis_cluster`` fixture on free loopback ports and torn
down after the session; these tests skip only where redis-server is not installed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from app.adapters.redis import RedisAdapter
from app.core.models import now_ms
from app.core.ports import QueueAdapter
from tests.backend_redis import isolated_redis_config
from tests.contract import test_adapter_contract as contract
from tests.contract import test_insight_contract as insight_contract
from tests.redis.helpers import dlq_entry, make_msg, make_sub, publish, receive_n
from tests.redis.servers import RedisClusterNodes

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster_config(redis_cluster: RedisClusterNodes) -> AsyncIterator[dict[str, Any]]:
    async with isolated_redis_config(redis_cluster.url, cluster=True) as config:
        yield config


@pytest.fixture
async def adapter(cluster_config: dict[str, Any]) -> AsyncIterator[QueueAdapter]:
    """What the contract tests below run against: a cluster-mode Redis adapter."""
    opened = RedisAdapter.from_config(cluster_config)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


# Every test of the adapter contract suite, re-collected here against the cluster.
for _name in dir(contract):
    if _name.startswith("test_"):
        globals()[f"{_name}_on_cluster"] = getattr(contract, _name)
# ...and the insight store's (one script call per message and per log on a cluster).
for _name in (
    "test_message_marks_and_attempts_round_trip",
    "test_attempt_log_is_newest_first_filtered_and_paged",
):
    globals()[f"{_name}_on_cluster"] = getattr(insight_contract, _name)


async def test_every_key_of_a_topic_shares_one_slot(
    adapter: QueueAdapter, cluster_config: dict[str, Any]
) -> None:
    assert isinstance(adapter, RedisAdapter)
    topics = [f"slot.{i}" for i in range(6)]  # hash tags spread these over the nodes
    for topic in topics:
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, 1), make_msg(topic, 2))
        await publish(adapter, make_msg(topic, "later"), at=now_ms() + 60_000)
        first, second = await receive_n(adapter, sub, 2)
        await adapter.retry_at(first, now_ms() + 60_000)
        await adapter.dead_letter(second, dlq_entry(second, topic))
        await adapter.claim_idempotency_key(topic, "k", "msg_x", 60_000)

    client = RedisCluster.from_url(cluster_config["redis_url"], decode_responses=True)
    try:
        slots: dict[str, set[int]] = defaultdict(set)
        async for key in client.scan_iter(match=f"{cluster_config['key_prefix']}:*"):
            tag = key[key.index("{") + 1 : key.index("}")]
            slots[tag].add(key_slot(key.encode()))
        owners = [client.get_node_from_key(f"x{{{t}}}") for t in topics]
        nodes = {node.name for node in owners if node is not None}
    finally:
        await client.aclose()
    assert set(topics) <= set(slots)
    assert all(len(s) == 1 for s in slots.values()), slots
    assert len(nodes) > 1  # the topics really live on different nodes
