"""The RabbitMQ insight index: message id -> offset of the stream event that announced it,
found by the id's own timestamp, bounded by retention and by count (issue 12/13).
"""

from __future__ import annotations

import gc

from app.adapters.rabbitmq import insight_index
from app.adapters.rabbitmq.insight_index import PublishedIndex
from app.core.ids import new_message_id

HOUR_MS = 3600 * 1000


def msg_id(at_ms: int, n: int) -> str:
    """An id as :func:`app.core.ids.new_id` makes them, made at ``at_ms``."""
    return f"msg_{at_ms:012x}{n:020x}"


def test_each_message_is_found_at_its_events_offset() -> None:
    index = PublishedIndex(retention_ms=HOUR_MS, max_messages=1_000_000)
    start = 1_733_000_000_000
    expected: dict[str, int] = {}
    for event in range(500):  # 100 s of events, 20 messages each, 5 per second
        at = start + event * 200
        ids = [msg_id(at - 3, event * 20 + i) for i in range(20)]
        index.add(at, 7_000 + event, ids)
        expected |= dict.fromkeys(ids, 7_000 + event)
    assert len(index) == 10_000
    assert all(index.find(message_id) == offset for message_id, offset in expected.items())
    assert index.find(msg_id(start + 50_000, 999_999)) is None  # never announced
    assert index.find(new_message_id()) is None  # made now: searched, not there


def test_an_event_applied_minutes_after_its_ids_were_made_is_found() -> None:
    # A slow broker or a recorder behind: the event comes within AFTER_S of the id.
    index = PublishedIndex(retention_ms=HOUR_MS, max_messages=1_000_000)
    made = 1_733_000_000_000
    late = msg_id(made, 1)
    index.add(made + 5, 1, [msg_id(made, 0)])
    index.add(made + (insight_index.AFTER_S - 1) * 1000, 2, [late])
    assert index.find(late) == 2
    assert index.find(msg_id(made, 0)) == 1


def test_ids_of_another_shape_are_searched_everywhere() -> None:
    index = PublishedIndex(retention_ms=HOUR_MS, max_messages=1_000_000)
    index.add(1_733_000_000_000, 3, ["legacy-id-1"])
    index.add(1_733_000_900_000, 4, ["msg_zz", "other:2"])
    assert index.find("legacy-id-1") == 3
    assert index.find("msg_zz") == 4
    assert index.find("other:2") == 4
    assert index.find("other") is None  # whole ids only


def test_seconds_never_go_back_when_clocks_differ() -> None:
    # Another instance's clock behind ours: its event is stamped at our latest second
    # (later, never earlier), so a search from the id's second forward still finds it.
    index = PublishedIndex(retention_ms=HOUR_MS, max_messages=1_000_000)
    now = 1_733_000_000_000
    index.add(now, 1, [msg_id(now, 1)])
    behind = msg_id(now - 30_000, 2)
    index.add(now - 30_000, 2, [behind])
    assert index.find(behind) == 2


def test_retention_and_the_count_bound_forget_the_oldest() -> None:
    index = PublishedIndex(retention_ms=120_000, max_messages=1_000_000)
    start = 1_733_000_000_000
    old = msg_id(start, 1)
    index.add(start, 1, [old])
    index.add(start + 100_000, 2, [msg_id(start + 100_000, 2)])
    assert index.find(old) == 1
    index.expire(start + 200_000)  # the first span ended > 120 s ago
    assert index.find(old) is None
    assert len(index) == 1

    bounded = PublishedIndex(retention_ms=HOUR_MS, max_messages=insight_index.SPAN_MESSAGES)
    first = [msg_id(start, i) for i in range(insight_index.SPAN_MESSAGES)]
    bounded.add(start, 1, first)
    bounded.add(start + 1000, 2, [msg_id(start + 1000, 0)])
    assert bounded.find(first[0]) is None  # the oldest span went to keep the bound
    assert bounded.find(msg_id(start + 1000, 0)) == 2
    assert len(bounded) == 1


def test_an_index_is_a_few_objects_whatever_it_holds() -> None:
    # Issue 12: per-message objects kept the heap tens of MB larger after a burst.
    index = PublishedIndex(retention_ms=HOUR_MS, max_messages=1_000_000)
    start = 1_733_000_000_000
    gc.collect()
    before = len(gc.get_objects())
    for event in range(1_000):
        at = start + event * 10
        index.add(at, event, [msg_id(at, event * 100 + i) for i in range(100)])
    gc.collect()
    assert len(index) == 100_000
    assert len(gc.get_objects()) - before < 20
    spans = list(index._spans)
    assert len(spans) <= 100_000 // insight_index.SPAN_MESSAGES + 2
    assert sum(len(span.lines) for span in spans) < 100_000 * 50
