r"""Which insight stream event announced each message: ~46 bytes per message, no object each.

The RabbitMQ insight stream already holds every published message (in the batch event
that announced it), so an instance keeps only where that event is and reads it back on
lookup. Kept per message as a dict entry, the id alone cost ~85 bytes; worse, the few
small objects that outlive a burst of publishing each pin the allocator's 1 MB arena they
were made in, so 100,000 held messages kept the heap tens of MB larger than what they
held (issue 12's backlog RSS). Here a message is one line ``\n<id> <offset hex>``
appended to a ``bytearray`` that spans up to ``SPAN_S`` seconds and ``SPAN_MESSAGES``
messages: a handful of objects per minute, whatever the rate.

Message ids (``msg_<12 hex ms>...``, :mod:`app.core.ids`) carry the millisecond they were
made in by the instance that published them; the same instance stamped the event
(``at``) after it stored the message, so the event's second is at or after the id's (the
index stamps seconds monotonically: a later event never lands in an earlier second). A
lookup searches the spans from the id's second to ``AFTER_S`` later; an id without a
timestamp is searched everywhere.
"""

from __future__ import annotations

from collections import deque

AFTER_S = 600
"""How long after its id's timestamp a message's event can be applied: the recorder's
flush, a publish confirm held by a slow broker, a write retried after a hiccup."""
SPAN_S = 60
SPAN_MESSAGES = 16_384
"""A span holds at most this many messages (~750 KB): the unit of expiry, and of a search."""


class _Span:
    r"""Messages announced from second ``first`` to ``last``: ``\n<id> <offset hex>`` each."""

    __slots__ = ("count", "first", "last", "lines")

    def __init__(self, second: int) -> None:
        self.first = second
        self.last = second
        self.count = 0
        self.lines = bytearray()


class PublishedIndex:
    """Message id -> stream offset of its batch event, bounded like the memory store."""

    def __init__(self, retention_ms: int, max_messages: int) -> None:
        """Spans older than ``retention_ms`` go, and the oldest beyond ``max_messages``
        (the newest span always stays).
        """
        self._retention_ms = retention_ms
        self._max_messages = max_messages
        self._spans: deque[_Span] = deque()
        self._count = 0

    def __len__(self) -> int:
        """Messages indexed."""
        return self._count

    def add(self, at_ms: int, offset: int, message_ids: list[str]) -> None:
        """The event at ``offset``, applied at ``at_ms``, announced ``message_ids``."""
        if not message_ids:
            return
        span = self._spans[-1] if self._spans else None
        second = at_ms // 1000
        if span is not None:
            second = max(second, span.last)
        if span is None or second - span.first >= SPAN_S or span.count >= SPAN_MESSAGES:
            span = _Span(second)
            self._spans.append(span)
        span.last = second
        suffix = f" {offset:x}".encode()
        lines = span.lines
        for message_id in message_ids:
            lines += b"\n"
            lines += message_id.encode()
            lines += suffix
        span.count += len(message_ids)
        self._count += len(message_ids)
        self.expire(at_ms)

    def find(self, message_id: str) -> int | None:
        """The offset of the event that announced ``message_id``, if indexed (call
        :meth:`expire` first: what is past retention may still be found).
        """
        needle = b"\n" + message_id.encode() + b" "
        made = _made_at_s(message_id)
        for span in reversed(self._spans):
            if made is not None:
                if span.first > made + AFTER_S:
                    continue
                if span.last < made:
                    break
            lines = span.lines
            at = lines.find(needle)
            if at >= 0:
                start = at + len(needle)
                end = lines.find(b"\n", start)
                return int(lines[start : end if end >= 0 else len(lines)], 16)
        return None

    def expire(self, now_ms: int) -> None:
        """Forget the spans past retention and the oldest beyond ``max_messages``."""
        horizon = (now_ms - self._retention_ms) // 1000
        spans = self._spans
        while len(spans) > 1 and (spans[0].last < horizon or self._count > self._max_messages):
            self._count -= spans.popleft().count
        if spans and spans[0].last < horizon:
            self._count -= spans.popleft().count


def _made_at_s(message_id: str) -> int | None:
    """The second a ``msg_<12 hex ms>...`` id was made in (None for another shape)."""
    if not message_id.startswith("msg_") or len(message_id) < 16:
        return None
    try:
        return int(message_id[4:16], 16) // 1000
    except ValueError:
        return None
