"""Dead-letter routing that cannot loop: cycles refused at save, hops bounded at run time.

A ``dead_letter_topic`` is an edge from a subscription's topic to another topic. Edges
that close a cycle (``a -> b -> a``) turn one failing message into an endless storm, so a
subscription that would close one is refused when saved. Two instances saving at the
same moment can still build a cycle between them, so every dead letter also carries a
hop count, and a dead letter past ``max_hops`` is kept in the DLQ instead of republished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from app.core.errors import HooklineError
from app.core.models import Envelope, Subscription

DEFAULT_MAX_DEAD_LETTER_HOPS = 3
HOP_LIMIT_REASON = "dead_letter_hop_limit"
"""The DLQ reason (and metric label) of a dead letter kept instead of republished."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One dead-letter edge: ``subscription_id`` on ``topic`` dead-letters to ``to``."""

    subscription_id: str
    topic: str
    to: str


class DeadLetterCycleError(HooklineError):
    """Saving this subscription would make dead letters loop between topics (409)."""

    status = 409
    code = "dead_letter_cycle"

    def __init__(self, cycle: list[Hop]) -> None:
        """``cycle`` starts with the subscription being saved and ends back at its topic."""
        self.cycle = cycle
        path = " -> ".join([cycle[0].topic, *(f"{h.to} (via {h.subscription_id})" for h in cycle)])
        hops = [
            {"subscription_id": h.subscription_id, "topic": h.topic, "dead_letter_topic": h.to}
            for h in cycle
        ]
        super().__init__(
            f"dead_letter_topic {cycle[0].to!r} would loop dead letters back to "
            f"{cycle[0].topic!r}: {path}",
            details={"cycle": hops},
        )


def find_cycle(candidate: Subscription, others: Iterable[Subscription]) -> list[Hop] | None:
    """The cycle ``candidate`` would close among ``others``, or ``None``.

    ``others`` may include the stored version of ``candidate``; it is replaced by it.
    """
    if not candidate.dead_letter_topic:
        return None
    first = Hop(candidate.id, candidate.topic, candidate.dead_letter_topic)
    edges: dict[str, list[Hop]] = {}
    for sub in others:
        if sub.id != candidate.id and sub.dead_letter_topic:
            edges.setdefault(sub.topic, []).append(Hop(sub.id, sub.topic, sub.dead_letter_topic))
    came_from: dict[str, Hop | None] = {first.to: None}
    queue = deque([first.to])
    while queue:
        topic = queue.popleft()
        if topic == candidate.topic:
            return [first, *_path_to(topic, came_from)]
        for hop in sorted(edges.get(topic, ()), key=lambda h: h.subscription_id):
            if hop.to not in came_from:
                came_from[hop.to] = hop
                queue.append(hop.to)
    return None


def _path_to(topic: str, came_from: dict[str, Hop | None]) -> list[Hop]:
    path: list[Hop] = []
    hop = came_from[topic]
    while hop is not None:
        path.append(hop)
        hop = came_from[hop.topic]
    return path[::-1]


def hops_so_far(message: Envelope) -> int:
    """How many dead-letter topics ``message`` has already been republished through.

    A dead letter from before hops were counted counts as one.
    """
    if message.dead_letter is None:
        return 0
    hops = message.dead_letter.get("hops", 1)
    return hops if isinstance(hops, int) and hops >= 0 else 1
