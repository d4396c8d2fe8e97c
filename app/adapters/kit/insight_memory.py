"""An in-memory :class:`app.core.ports.InsightStore`, bounded by time and by count.

The builtin adapter uses it as is; the RabbitMQ adapter folds its shared insight stream
into one per instance (every instance applies the same batches in the same order, so
every instance answers alike).

Bounds: a message not touched for ``retention_ms`` is forgotten, and so is the least
recently touched one beyond ``max_messages``; each (message, subscription) keeps its
newest ``max_attempts_per_message`` attempts, each subscription's log its newest
``max_attempts_per_subscription`` attempts younger than ``retention_ms``.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
    StateMark,
)
from app.core.models import Envelope, now_ms


@dataclass(slots=True)
class _Message:
    envelope: Envelope | None = None
    marks: dict[str, StateMark] = field(default_factory=dict)
    attempts: dict[str, list[AttemptRecord]] = field(default_factory=dict)
    """Newest last, at most ``max_attempts_per_message`` (a list: most hold one attempt,
    and an empty deque alone costs over 600 bytes)."""
    touched_at: int = 0


class MemoryInsightStore:
    """Insight kept in this process's memory."""

    def __init__(self, settings: InsightSettings) -> None:
        """Bounds come from ``settings``."""
        self._settings = settings
        self._messages: OrderedDict[str, _Message] = OrderedDict()
        self._logs: dict[str, deque[tuple[int, AttemptRecord]]] = {}
        self._log_order: OrderedDict[str, int] = OrderedDict()
        """Subscription ids by their log's last append (and its start time): expiry pops
        from the stale end instead of visiting every subscription's log per batch."""
        self._seq = itertools.count(1)

    async def open(self) -> None:
        """Nothing to follow."""

    async def close(self) -> None:
        """Nothing to release."""

    async def write(self, batch: InsightBatch) -> None:
        """Apply one batch."""
        self.apply(batch)

    def apply(self, batch: InsightBatch, at: int | None = None) -> None:
        """Apply one batch synchronously (the RabbitMQ follower calls this per event)."""
        now = now_ms() if at is None else at
        for envelope in batch.messages:
            self._touch(envelope.id, now).envelope = envelope
        cap = self._settings.max_attempts_per_message
        for record in batch.attempts:
            entry = self._touch(record.message_id, now)
            kept = entry.attempts.get(record.subscription_id)
            if kept is None:
                entry.attempts[record.subscription_id] = [record]
            else:
                kept.append(record)
                if len(kept) > cap:
                    del kept[: len(kept) - cap]
            log = self._logs.get(record.subscription_id)
            if log is None:
                log = self._logs[record.subscription_id] = deque(
                    maxlen=self._settings.max_attempts_per_subscription
                )
            log.append((next(self._seq), record))
            self._log_order[record.subscription_id] = record.started_at
            self._log_order.move_to_end(record.subscription_id)
        for mark in batch.marks:
            self._touch(mark.message_id, now).marks[mark.subscription_id] = mark
        self._expire(now)

    def _touch(self, message_id: str, now: int) -> _Message:
        entry = self._messages.get(message_id)
        if entry is None:
            entry = self._messages[message_id] = _Message()
        else:
            self._messages.move_to_end(message_id)
        entry.touched_at = now
        return entry

    def _expire(self, now: int) -> None:
        """Forget what is past retention; costs what it forgets, not what is held (it runs
        on every batch, and thousands of subscriptions may each have a log).
        """
        horizon = now - self._settings.retention_ms
        messages = self._messages
        while messages:
            oldest = next(iter(messages.values()))
            if oldest.touched_at >= horizon and len(messages) <= self._settings.max_messages:
                break
            messages.popitem(last=False)
        order = self._log_order
        while order:
            sub_id, newest = next(iter(order.items()))
            if newest >= horizon:
                break
            del order[sub_id]
            self._logs.pop(sub_id, None)

    def _log(self, subscription_id: str) -> deque[tuple[int, AttemptRecord]]:
        """One subscription's log without its attempts past retention (trimmed on read)."""
        log = self._logs.get(subscription_id)
        if log is None:
            return deque()
        horizon = now_ms() - self._settings.retention_ms
        while log and log[0][1].started_at < horizon:
            log.popleft()
        return log

    @property
    def message_count(self) -> int:
        """Messages held (for tests and the bench)."""
        return len(self._messages)

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """What is known of one message."""
        self._expire(now_ms())
        entry = self._messages.get(message_id)
        if entry is None:
            return None
        return MessageInsight(
            entry.envelope,
            dict(entry.marks),
            {sub: list(records) for sub, records in entry.attempts.items()},
        )

    async def list_attempts(
        self,
        topic: str,  # noqa: ARG002 - part of the contract (keyed stores need it)
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """Newest first; the cursor is the sequence number of the last attempt returned."""
        self._expire(now_ms())
        log = self._log(subscription_id)
        before = int(cursor) if cursor and cursor.isdigit() else None
        page: list[tuple[int, AttemptRecord]] = []
        for seq, record in reversed(log):
            if before is not None and seq >= before:
                continue
            if outcome is not None and record.outcome != outcome:
                continue
            page.append((seq, record))
            if len(page) > limit:
                break
        more = len(page) > limit
        page = page[:limit]
        return AttemptPage([r for _, r in page], str(page[-1][0]) if more and page else None)

    async def recent_attempts(
        self,
        topic: str,  # noqa: ARG002 - part of the contract
        subscription_id: str,
        limit: int,
    ) -> list[AttemptRecord]:
        """Newest first."""
        log = self._log(subscription_id)
        return [r for _, r in itertools.islice(reversed(log), limit)]
