"""The registry's recent changes by version number, for adapters that count them in memory.

The dispatcher follows the registry by asking which subscriptions changed since the
version it last saw (:meth:`~app.core.ports.RegistryPort.registry_changes`): creating
thousands of subscriptions then costs one read per change instead of one read of the
whole registry per change. Only the newest ``keep`` changes are kept; a caller further
behind is told to read everything.
"""

from __future__ import annotations

from collections import deque

from app.core.ports import RegistryChanges

KEEP_CHANGES = 10_000
"""Changes remembered; a follower more than this far behind re-reads the whole registry."""


class ChangeLog:
    """Version numbers 1, 2, 3... each naming the subscription it changed."""

    def __init__(self, keep: int = KEEP_CHANGES) -> None:
        """``keep``: how many of the newest changes can be asked for."""
        self.version = 0
        self._entries: deque[tuple[int, str]] = deque(maxlen=keep)

    def record(self, subscription_id: str) -> None:
        """One change of ``subscription_id`` (created, updated or deleted)."""
        self.version += 1
        self._entries.append((self.version, subscription_id))

    def since(self, since: str) -> RegistryChanges | None:
        """Ids changed after version ``since``, oldest first; None when not known."""
        if not since.isdigit():
            return None
        seen = int(since)
        if seen > self.version:
            return None
        oldest = self._entries[0][0] if self._entries else self.version + 1
        if seen < self.version and seen + 1 < oldest:
            return None
        ids: list[str] = []
        for version, subscription_id in reversed(self._entries):
            if version <= seen:
                break
            ids.append(subscription_id)
        ids.reverse()
        return RegistryChanges(str(self.version), list(dict.fromkeys(ids)))
