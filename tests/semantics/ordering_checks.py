"""What "in order" means, checked on what a receiver got (shared by the in-process and the
multi-process ordering tests).

Every message carries ``{"key": k, "seq": n}`` in its data, ``n`` counting from 0 per key
in publish order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from tests.receiver import Received


def key_seq(request: Received) -> tuple[str, int]:
    """(key, seq) of one delivery, from its envelope body."""
    body = json.loads(request.body)
    data: dict[str, Any] = body["data"]
    return str(data["key"]), int(data["seq"])


def keyed(request: Received) -> bool:
    """True for a delivery of a keyed test message."""
    body = json.loads(request.body)
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, dict) and "key" in data


def first_successes(requests: list[Received]) -> dict[str, list[int]]:
    """Per key, the seq of each message's first 2xx delivery, in arrival order."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, list[int]] = defaultdict(list)
    for request in requests:
        if not 200 <= request.status < 300 or not keyed(request):
            continue
        key, seq = key_seq(request)
        if (key, seq) not in seen:
            seen.add((key, seq))
            out[key].append(seq)
    return out


def assert_in_publish_order(requests: list[Received], keys: int, per_key: int) -> None:
    """Each key's first successful deliveries are exactly 0..per_key-1, in that order."""
    successes = first_successes(requests)
    assert len(successes) == keys, f"{len(successes)} keys delivered, expected {keys}"
    for key, seqs in successes.items():
        assert seqs == list(range(per_key)), f"key {key}: out of order or missing: {seqs}"


def assert_one_at_a_time(requests: list[Received]) -> None:
    """Within a key, attempts never go back to an earlier message once a later one started
    (one at a time, in order; a repeat of the current message is fine).
    """
    latest: dict[str, int] = {}
    for request in requests:
        key, seq = key_seq(request)
        assert seq >= latest.get(key, -1), f"key {key}: seq {seq} after {latest[key]}"
        latest[key] = seq


def keyed_batches(keys: int, per_key: int, batch: int = 100) -> list[list[dict[str, Any]]]:
    """Batch bodies publishing ``per_key`` messages of each of ``keys`` keys, keys
    interleaved (k0#0, k1#0, ..., k0#1, ...) so every key's messages are spread out.
    """
    messages = [
        {"data": {"key": f"k{k}", "seq": n}, "ordering_key": f"k{k}"}
        for n in range(per_key)
        for k in range(keys)
    ]
    return [messages[i : i + batch] for i in range(0, len(messages), batch)]
