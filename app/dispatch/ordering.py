"""Per-key order inside one worker: one delivery of a key at a time, the rest waiting.

An ``ordering: key`` subscription's messages are leased in publish order by one instance
(the owner, see :class:`app.core.ports.OrderingPort`); this gate keeps them in that order
while delivering many keys at once. A key with a delivery in progress (being attempted,
or waiting for its retry) is *busy*: later leases of that key wait in the key's own
queue, every other key and every unkeyed message goes on at once. So a failing key only
holds back itself, never the others (no head-of-line blocking across keys).

What the worker holds is bounded: leased but not finished deliveries (in progress plus
waiting) stay below :func:`hold_bound` ``(max_in_flight)``; past it the worker leases no
more until something finishes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from app.core.models import Delivery
from app.core.ordering import hold_bound

__all__ = ["KeyGate", "hold_bound"]


class KeyGate:
    """Which keys are busy, and the deliveries waiting behind each, in lease order."""

    def __init__(self) -> None:
        """No key busy."""
        self._waiting: dict[str, deque[Delivery]] = {}
        self.held = 0
        """Deliveries waiting behind a busy key (not yet started)."""

    def admit(self, delivery: Delivery) -> bool:
        """True if ``delivery`` may start now (unkeyed, or its key was idle: now busy);
        False if it was queued behind its key's delivery in progress.
        """
        key = delivery.message.ordering_key
        if key is None:
            return True
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = deque()
            return True
        waiting.append(delivery)
        self.held += 1
        return False

    def finish(self, delivery: Delivery) -> Delivery | None:
        """``delivery`` is finished (delivered, filtered, dead-lettered, handed back): the
        next delivery of its key, which is now the one in progress, or None (key idle).
        """
        key = delivery.message.ordering_key
        if key is None:
            return None
        waiting = self._waiting.get(key)
        if waiting is None:
            return None
        if not waiting:
            del self._waiting[key]
            return None
        self.held -= 1
        return waiting.popleft()

    def take_key(self, delivery: Delivery) -> list[Delivery]:
        """Everything waiting behind ``delivery``'s key, in order; the key becomes idle.

        For handing a key back whole (a pause), so it is leased again in the same order.
        """
        key = delivery.message.ordering_key
        if key is None:
            return []
        waiting = self._waiting.pop(key, None)
        if not waiting:
            return []
        self.held -= len(waiting)
        return list(waiting)

    def take_all(self, first: Iterable[Delivery] = ()) -> list[Delivery]:
        """Every waiting delivery, each key's in order, after ``first`` (the in-progress
        deliveries being handed back): a release of this list keeps every key's order.
        """
        out = list(first)
        for waiting in self._waiting.values():
            out.extend(waiting)
        self._waiting.clear()
        self.held = 0
        return out

    def busy(self) -> int:
        """Keys with a delivery in progress."""
        return len(self._waiting)
