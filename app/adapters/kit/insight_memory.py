"""An in-memory :class:`app.core.ports.InsightStore`, bounded by time and by count.

The builtin adapter uses it as is; the RabbitMQ adapter folds its shared insight stream
into one per instance (every instance applies the same batches in the same order, so
every instance answers alike).

Bounds: a message not touched for ``retention_ms`` is forgotten, and so is the least
recently touched one beyond ``max_messages``; each (message, subscription) keeps its
newest ``max_attempts_per_message`` attempts, each subscription's log its newest
``max_attempts_per_subscription`` attempts younger than ``retention_ms``.

Layout (issue 12): up to ``max_messages`` messages are held for a day, so what is held
must cost a full garbage collection nothing. Every record is atomic (str, int, bytes) or
one flat tuple of atomic values (str, int, float, bool, None, bytes), which CPython's
collector stops tracking at the first collection that sees it (a nested tuple would take
one collection per level): per message its touch time, its envelope, its explicit marks
and its attempts (past ``_SPREAD`` subscriptions, dicts of flat rows), each in a dict keyed
by message id; per subscription its log, as two deques in step (sequence numbers, rows).
Containers are per store or per subscription (or per widely fanned-out message), never per
message, and the API's objects are built on read.

The envelope (issue 12/13: one copy of each message, not two) is kept as one of:

- the :class:`Envelope` object itself while the queue still holds that very object
  (``held``, the builtin adapter): the body is shared, not copied; the queue's
  :meth:`MemoryInsightStore.release` packs it when the queue lets go of it;
- its compact JSON (bytes, one untracked object) otherwise.

(The RabbitMQ follower gives it no envelopes: the stream holds them, see
:mod:`app.adapters.rabbitmq.insight`.)

Marks an attempt implies (``StateMark.implied``, the common case) are not stored: an
attempt clears its copy's explicit mark, and a copy without one reads its newest
attempt's mark.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from app.core.codec import decode_json, encode_json
from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
    StateMark,
    merge_marks,
)
from app.core.models import Envelope, now_ms

_Row = tuple[Any, ...]
"""A flat tuple of atomic values: nested tuples would need one collection per level
before the collector stops tracking them (it untracks inner ones last)."""

_MARK = 6
"""Stride of a message's marks: subscription, topic, state, at, attempt, next_attempt_at."""
_ATTEMPT = 9
"""Stride of a message's attempts: topic, attempt, started_at, duration_ms, status, reason,
next_step, response_excerpt, next_attempt_at (each subscription's run of them follows its
id and its count)."""
_STARTED_AT = 4
"""Index of ``started_at`` in a log row (an :class:`AttemptRecord`'s fields in order)."""
_STATUS = 6
"""Index of ``status`` in a log row."""


def _outcome(row: _Row) -> AttemptOutcome:
    status = row[_STATUS]
    return "succeeded" if status is not None and 200 <= status < 300 else "failed"


_Kept = bytes | Envelope
"""A message's envelope as kept: compact JSON, or the queue's own object."""


def _pack_envelope(e: Envelope) -> bytes:
    """Compact JSON: one untracked object (``data`` parsed back on read only).

    Copied out of orjson's buffer: kept as is, orjson's (over-allocated, then shrunk)
    buffers made glibc grow and trim the heap over and over (1.8 page faults per message
    kept, 6.7 vs 3.5 us per message in all).
    """
    return bytes(memoryview(encode_json(e.to_dict())))


def _unpack_envelope(kept: _Kept) -> Envelope:
    return Envelope.from_dict(decode_json(kept)) if isinstance(kept, bytes) else kept


_Spread = _Row | dict[str, _Row]
"""A message's marks or attempts: flat, or, once it reaches ``_SPREAD`` subscriptions, a
dict of each subscription's flat rows (so a fan-out's update costs one row, not a rebuild
of them all)."""
_SPREAD = 16
"""Subscriptions at which a message's marks and attempts become dicts: two tracked objects
for at least this many deliveries, where a flat tuple is rebuilt whole on each update."""


def _attempt_fields(record: AttemptRecord) -> _Row:
    return (
        record.topic,
        record.attempt,
        record.started_at,
        record.duration_ms,
        record.status,
        record.reason,
        record.next_step,
        record.response_excerpt,
        record.next_attempt_at,
    )


def _add_attempt(runs: _Spread, sub_id: str, fields: _Row, cap: int) -> _Spread:
    """``runs`` (flat: per subscription in first-seen order its id, its count, its attempts
    oldest first; or a dict of each subscription's attempts) with an attempt's ``fields``
    (:func:`_attempt_fields`) appended to ``sub_id``'s, which keeps its newest ``cap`` (>= 1,
    as the config requires).
    """
    if isinstance(runs, dict):
        rows = (*runs.get(sub_id, ()), *fields)
        runs[sub_id] = rows[_ATTEMPT:] if len(rows) > cap * _ATTEMPT else rows
        return runs
    i = seen = 0
    while i < len(runs):
        count = runs[i + 1]
        end = i + 2 + count * _ATTEMPT
        if runs[i] == sub_id:
            first = i + 2 + (_ATTEMPT if count >= cap else 0)
            kept = (count - (first - i - 2) // _ATTEMPT) + 1
            return (*runs[:i], sub_id, kept, *runs[first:end], *fields, *runs[end:])
        i = end
        seen += 1
    runs = (*runs, sub_id, 1, *fields)
    return _spread_attempts(runs) if seen + 1 >= _SPREAD else runs


def _spread_attempts(runs: _Row) -> dict[str, _Row]:
    out: dict[str, _Row] = {}
    i = 0
    while i < len(runs):
        end = i + 2 + runs[i + 1] * _ATTEMPT
        out[runs[i]] = runs[i + 2 : end]
        i = end
    return out


def _read_attempts(message_id: str, runs: _Spread) -> dict[str, list[AttemptRecord]]:
    spread = runs if isinstance(runs, dict) else _spread_attempts(runs)
    return {
        sub: [
            AttemptRecord(message_id, rows[j], sub, *rows[j + 1 : j + _ATTEMPT])
            for j in range(0, len(rows), _ATTEMPT)
        ]
        for sub, rows in spread.items()
    }


def _set_mark(marks: _Spread, mark: StateMark) -> _Spread:
    """``marks`` (flat, stride ``_MARK``, or a dict of each subscription's) with ``mark``
    replacing its subscription's (in place) or added last.
    """
    fields = (mark.topic, mark.state, mark.at, mark.attempt, mark.next_attempt_at)
    sub_id = mark.subscription_id
    if isinstance(marks, dict):
        marks[sub_id] = fields
        return marks
    for i in range(0, len(marks), _MARK):
        if marks[i] == sub_id:
            return (*marks[:i], sub_id, *fields, *marks[i + _MARK :])
    marks = (*marks, sub_id, *fields)
    if len(marks) >= _SPREAD * _MARK:
        return {marks[i]: marks[i + 1 : i + _MARK] for i in range(0, len(marks), _MARK)}
    return marks


def _read_marks(message_id: str, marks: _Spread) -> dict[str, StateMark]:
    if isinstance(marks, dict):
        return {sub: StateMark(message_id, r[0], sub, *r[1:]) for sub, r in marks.items()}
    return {
        marks[i]: StateMark(message_id, marks[i + 1], marks[i], *marks[i + 2 : i + _MARK])
        for i in range(0, len(marks), _MARK)
    }


def _clear_mark(marks: _Spread, sub_id: str) -> _Spread:
    """``marks`` without ``sub_id``'s (an attempt of that copy supersedes it)."""
    if isinstance(marks, dict):
        marks.pop(sub_id, None)
        return marks
    for i in range(0, len(marks), _MARK):
        if marks[i] == sub_id:
            return (*marks[:i], *marks[i + _MARK :])
    return marks


class MemoryInsightStore:
    """Insight kept in this process's memory."""

    def __init__(
        self, settings: InsightSettings, held: Callable[[str], bool] | None = None
    ) -> None:
        """Bounds come from ``settings``; ``held(message_id)`` says whether the queue holds
        that message now (then its envelope object is kept as is until :meth:`release`).
        """
        self._settings = settings
        self._held = held
        self._messages: OrderedDict[str, int] = OrderedDict()
        """When each message was last touched, least recently touched first."""
        self._envelopes: dict[str, _Kept] = {}
        self._marks: dict[str, _Spread] = {}
        """Per message: its explicit mark per subscription, flat (stride ``_MARK``)."""
        self._attempts: dict[str, _Spread] = {}
        """Per message: its attempts per subscription, flat (see :func:`_add_attempt`)."""
        self._logs: dict[str, tuple[deque[int], deque[_Row]]] = {}
        """Per subscription: sequence numbers and log rows, oldest first, in step."""
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
        touch = self._touch
        envelopes = self._envelopes
        held = self._held
        for envelope in batch.messages:
            touch(envelope.id, now)
            if held is not None and held(envelope.id):
                envelopes[envelope.id] = envelope
            else:
                envelopes[envelope.id] = _pack_envelope(envelope)
        attempted = self._apply_attempts(batch.attempts, now) if batch.attempts else None
        for mark in batch.marks:
            if mark.implied and attempted and (mark.message_id, mark.subscription_id) in attempted:
                continue  # read back from the attempt that implies it
            touch(mark.message_id, now)
            self._marks[mark.message_id] = _set_mark(self._marks.get(mark.message_id, ()), mark)
        self._expire(now)

    def _apply_attempts(self, attempts: list[AttemptRecord], now: int) -> set[tuple[str, str]]:
        """Keep each attempt (it clears its copy's explicit mark); the copies attempted."""
        cap = self._settings.max_attempts_per_message
        touched = self._messages
        stored = self._attempts
        marks = self._marks
        logs = self._logs
        seq = self._seq
        attempted: set[tuple[str, str]] = set()
        newest: dict[str, int] = {}
        for record in attempts:
            message_id = record.message_id
            sub_id = record.subscription_id
            if message_id in touched:  # as _touch, inlined: once per delivery
                touched.move_to_end(message_id)
            touched[message_id] = now
            fields = _attempt_fields(record)
            runs = stored.get(message_id)
            if runs is None:  # its first attempt (nearly always)
                stored[message_id] = (sub_id, 1, *fields)
            else:
                stored[message_id] = _add_attempt(runs, sub_id, fields, cap)
            explicit = marks.get(message_id)
            if explicit is not None:
                left = _clear_mark(explicit, sub_id)
                if left:
                    marks[message_id] = left
                else:
                    del marks[message_id]
            attempted.add((message_id, sub_id))
            log = logs.get(sub_id)
            if log is None:
                size = self._settings.max_attempts_per_subscription
                log = logs[sub_id] = (deque(maxlen=size), deque(maxlen=size))
            log[0].append(next(seq))
            log[1].append((message_id, fields[0], sub_id, *fields[1:]))  # an AttemptRecord's
            newest[sub_id] = record.started_at
        order = self._log_order
        for sub_id, started_at in newest.items():
            order[sub_id] = started_at
            order.move_to_end(sub_id)
        return attempted

    def release(self, envelope: Envelope) -> None:
        """The queue no longer holds this message: keep its compact form instead of the
        object (which would stay tracked by the collector for the whole retention).
        """
        if isinstance(self._envelopes.get(envelope.id), Envelope):
            self._envelopes[envelope.id] = _pack_envelope(envelope)

    def _touch(self, message_id: str, now: int) -> None:
        messages = self._messages
        if message_id in messages:
            messages.move_to_end(message_id)
        messages[message_id] = now

    def _expire(self, now: int) -> None:
        """Forget what is past retention; costs what it forgets, not what is held (it runs
        on every batch, and thousands of subscriptions may each have a log).
        """
        horizon = now - self._settings.retention_ms
        messages = self._messages
        while messages:
            message_id, touched_at = next(iter(messages.items()))
            if touched_at >= horizon and len(messages) <= self._settings.max_messages:
                break
            del messages[message_id]
            self._envelopes.pop(message_id, None)
            self._marks.pop(message_id, None)
            self._attempts.pop(message_id, None)
        order = self._log_order
        while order:
            sub_id, newest = next(iter(order.items()))
            if newest >= horizon:
                break
            del order[sub_id]
            self._logs.pop(sub_id, None)

    def _log(self, subscription_id: str) -> tuple[deque[int], deque[_Row]]:
        """One subscription's log without its attempts past retention (trimmed on read)."""
        log = self._logs.get(subscription_id)
        if log is None:
            return deque(), deque()
        seqs, rows = log
        horizon = now_ms() - self._settings.retention_ms
        while rows and rows[0][_STARTED_AT] < horizon:
            rows.popleft()
            seqs.popleft()
        return log

    @property
    def message_count(self) -> int:
        """Messages held (for tests and the bench)."""
        return len(self._messages)

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """What is known of one message."""
        self._expire(now_ms())
        if message_id not in self._messages:
            return None
        kept = self._envelopes.get(message_id)
        attempts = _read_attempts(message_id, self._attempts.get(message_id, ()))
        return MessageInsight(
            None if kept is None else _unpack_envelope(kept),
            merge_marks(_read_marks(message_id, self._marks.get(message_id, ())), attempts),
            attempts,
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
        seqs, rows = self._log(subscription_id)
        before = int(cursor) if cursor and cursor.isdigit() else None
        page: list[tuple[int, _Row]] = []
        for seq, row in zip(reversed(seqs), reversed(rows), strict=True):
            if before is not None and seq >= before:
                continue
            if outcome is not None and _outcome(row) != outcome:
                continue
            page.append((seq, row))
            if len(page) > limit:
                break
        more = len(page) > limit
        page = page[:limit]
        return AttemptPage(
            [AttemptRecord(*row) for _, row in page], str(page[-1][0]) if more and page else None
        )

    async def recent_attempts(
        self,
        topic: str,  # noqa: ARG002 - part of the contract
        subscription_id: str,
        limit: int,
    ) -> list[AttemptRecord]:
        """Newest first."""
        _, rows = self._log(subscription_id)
        return [AttemptRecord(*row) for row in itertools.islice(reversed(rows), limit)]
