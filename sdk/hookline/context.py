"""What a trigger's handler is given besides ``data``, and how it refuses a message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote


class Discard(Exception):  # noqa: N818 - named for what the handler means, as the engine's docs do
    """Raise in a handler to refuse the message for good: the route answers 410, and
    hookline dead-letters it at once instead of retrying.
    """


@dataclass(frozen=True, slots=True)
class MessageContext:
    """One delivery, as the handler sees it.

    ``message_id`` is stable across retries (deduplicate on it); ``attempt`` counts from 1
    (``None`` for a ``payload="data"`` subscription, whose body is the bare data);
    ``headers`` are the request's, lower-cased; ``baggage`` the W3C baggage entries
    carried from the publisher; ``dead_letter`` is set on a dead-letter topic's copy:
    ``{source_topic, subscription_id, attempts, last_error, hops}``.
    """

    message_id: str
    trigger: str
    topic: str
    attempt: int | None
    headers: dict[str, str]
    published_at: int | None = None
    traceparent: str | None = None
    baggage: dict[str, str] = field(default_factory=dict)
    message_headers: dict[str, str] = field(default_factory=dict)
    dead_letter: dict[str, Any] | None = None
    envelope: dict[str, Any] | None = field(default=None, repr=False)


def parse_baggage(value: str | None) -> dict[str, str]:
    """W3C ``baggage`` (``k=v;prop,k2=v2``) as a dict, values percent-decoded."""
    entries: dict[str, str] = {}
    for member in (value or "").split(","):
        pair = member.split(";", 1)[0]
        if "=" not in pair:
            continue
        key, _, item = pair.partition("=")
        if key.strip():
            entries[unquote(key.strip())] = unquote(item.strip())
    return entries
