"""Key names. Every key of one topic carries the hash tag ``{<topic>}``.

So each Lua script and each multi-key command touches a single slot, and the adapter runs
unchanged on Redis Cluster. Keys not tied to a topic (the subscription registry) share the
tag ``{_}``, which no topic can use (topics start with a letter or digit).

Layout for prefix ``hookline`` and topic ``orders``::

    hookline:{orders}:stream           stream: the topic's messages (a group per subscription)
    hookline:{orders}:subs             set: the topic's subscription ids (delayed fan-out)
    hookline:{orders}:origins          hash: subscription -> stream id its group started at
    hookline:{orders}:q:<sub>          stream: one subscription's own copies (retries...)
    hookline:{orders}:sched:<sub>      zset: one subscription's scheduled copies, scored by due time
    hookline:{orders}:dlq              hash: DLQ entry id -> entry JSON
    hookline:{orders}:dlq:all          zset (lex): every DLQ entry id of the topic, oldest first
    hookline:{orders}:dlq:sub:<sub>    zset (lex): the DLQ entry ids of one subscription
    hookline:{orders}:idem:<key>       string: idempotency key -> first message id (PX TTL)
    hookline:{orders}:rate:<sub>       hash: one subscription's rate-limit bucket (PX TTL)
    hookline:{orders}:waiting          set: subscriptions whose receivers found nothing (PX TTL)
    hookline:{_}:subscriptions         hash: subscription id -> subscription JSON
    hookline:{_}:version               string: a counter bumped by every registry change
    hookline:{_}:changes               zset: "<version>:<id>" per recent change, scored by version
    hookline:{_}:topics                set: topics that ever had a subscription
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicKeys:
    """The keys of one topic (all in one cluster slot)."""

    base: str

    @property
    def stream(self) -> str:
        """The topic's stream."""
        return f"{self.base}:stream"

    @property
    def subs(self) -> str:
        """Set of the topic's subscription ids."""
        return f"{self.base}:subs"

    @property
    def origins(self) -> str:
        """Where each subscription's group started in the stream."""
        return f"{self.base}:origins"

    def queue(self, subscription_id: str) -> str:
        """A subscription's own stream."""
        return f"{self.base}:q:{subscription_id}"

    def schedule(self, subscription_id: str) -> str:
        """A subscription's scheduled copies."""
        return f"{self.base}:sched:{subscription_id}"

    @property
    def dlq(self) -> str:
        """DLQ entries by id."""
        return f"{self.base}:dlq"

    @property
    def dlq_all(self) -> str:
        """Lex index of every DLQ entry id."""
        return f"{self.base}:dlq:all"

    def dlq_sub(self, subscription_id: str) -> str:
        """Lex index of one subscription's DLQ entry ids."""
        return f"{self.base}:dlq:sub:{subscription_id}"

    def owner(self, subscription_id: str) -> str:
        """Which instance delivers an ordered subscription (a lease with a TTL)."""
        return f"{self.base}:owner:{subscription_id}"

    def rate(self, subscription_id: str) -> str:
        """A subscription's rate-limit token bucket."""
        return f"{self.base}:rate:{subscription_id}"

    @property
    def waiting(self) -> str:
        """Subscriptions with a receiver waiting for a wake-up (see :mod:`.wakeups`)."""
        return f"{self.base}:waiting"

    def idempotency(self, key: str) -> str:
        """An idempotency key."""
        return f"{self.base}:idem:{key}"


@dataclass(frozen=True, slots=True)
class NameSpace:
    """All key names under one prefix (``key_prefix`` in the config)."""

    prefix: str

    def topic(self, topic: str) -> TopicKeys:
        """The keys of ``topic``."""
        if "{" in topic or "}" in topic:
            raise ValueError(f"topic names cannot contain braces: {topic!r}")
        return TopicKeys(f"{self.prefix}:{{{topic}}}")

    @property
    def registry(self) -> str:
        """Subscription id -> subscription JSON."""
        return f"{self.prefix}:{{_}}:subscriptions"

    @property
    def registry_version(self) -> str:
        """A counter bumped by every registry change (cheap polling)."""
        return f"{self.prefix}:{{_}}:version"

    @property
    def registry_changes(self) -> str:
        """The newest registry changes: ``<version>:<subscription id>`` scored by version."""
        return f"{self.prefix}:{{_}}:changes"

    @property
    def topics(self) -> str:
        """Topics that ever had a subscription."""
        return f"{self.prefix}:{{_}}:topics"
