"""A batch's ids are those consecutive single calls would give: sortable, distinct, in order."""

from __future__ import annotations

import pytest

from app.core import ids

MASK = (1 << 80) - 1
MILLIS = 2**40 + 123


def expected(rand: int, count: int) -> list[str]:
    return [f"msg_{MILLIS:012x}{(rand + step) & MASK:020x}" for step in range(count)]


@pytest.mark.parametrize("count", [2, 3, 100, 4096, 4097, 10_000])
@pytest.mark.parametrize("rand", [0, 0xFFE, 0xFFF, 0x1F00, 0x123456789ABCDEF01234, MASK - 5])
def test_a_batch_of_ids_counts_up_from_one_draw(
    monkeypatch: pytest.MonkeyPatch, rand: int, count: int
) -> None:
    """Whatever the draw (table blocks crossed, the 80-bit part wrapping), the ids are the
    ones ``new_id`` would have given one by one, and the next single id follows them."""

    def first(prefix: str) -> str:
        ids._last[:] = [MILLIS, rand]
        return f"{prefix}_{MILLIS:012x}{rand:020x}"

    monkeypatch.setattr(ids, "new_id", first)
    assert ids.new_message_ids(count) == expected(rand, count)
    assert ids._last == [MILLIS, (rand + count - 1) & MASK]


def test_real_batches_interleave_with_single_ids_in_order() -> None:
    made = [ids.new_message_id(), *ids.new_message_ids(500), ids.new_message_id()]
    made += ids.new_message_ids(3)
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert ids.new_message_ids(0) == []
    assert len(ids.new_message_ids(1)) == 1
