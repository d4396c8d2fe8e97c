"""Topics: the name rules (shared by the API, the config loader and every adapter) and
the service listing topics with their figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.models import TopicStats
from app.core.ports import RegistryPort, StatsPort

TOPIC_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$"
_TOPIC_RE = re.compile(TOPIC_PATTERN)


def is_valid_topic(name: str) -> bool:
    """True for names like ``user.created`` or ``billing:invoice-paid`` (dots for hierarchies)."""
    return bool(_TOPIC_RE.fullmatch(name))


@dataclass(frozen=True, slots=True)
class TopicView:
    """What one topic holds, with whether each of its subscriptions is paused."""

    stats: TopicStats
    paused: dict[str, bool]


@dataclass(frozen=True, slots=True)
class TopicPage:
    """Topic names in name order; ``next_cursor`` is None on the last page."""

    names: list[str]
    next_cursor: str | None


class TopicsService:
    """Topics and their figures, from the adapter's stats and registry."""

    def __init__(self, stats: StatsPort, registry: RegistryPort) -> None:
        """Both are the adapter, seen through the two roles this needs."""
        self._stats = stats
        self._registry = registry

    async def page(self, limit: int, cursor: str | None = None) -> TopicPage:
        """Topic names after ``cursor`` (the last name of the previous page).

        Following ``next_cursor`` visits every topic that exists throughout exactly once,
        even while topics come and go.
        """
        names = sorted(await self._stats.list_topics())
        if cursor is not None:
            names = [n for n in names if n > cursor]
        page = names[:limit]
        return TopicPage(page, page[-1] if len(names) > limit else None)

    async def describe(self, topic: str) -> TopicView:
        """Figures of one topic, per subscription."""
        stats = await self._stats.topic_stats(topic)
        paused = {s.id: s.paused for s in await self._registry.list_subscriptions(topic)}
        return TopicView(stats, paused)
