"""Prometheus metrics: counters fed by the dispatcher and publisher, gauges read at scrape.

Each app instance owns its registry, so several apps in one process (tests) never clash.
Label values are budgeted (:class:`LabelBudget`): publishers choose topic names, so at most
``max_label_values`` topics and as many subscriptions get series of their own; the rest
share the value ``__overflow__``. A topic is labelled by name only once it has a
subscription, so publishing to thousands of unsubscribed topics adds no series.

What every delivery counts (delivered, the attempt's duration, publish-to-delivered time)
goes into a plain per-subscription :class:`_Tally` (a few additions, no lock) and reaches
the Prometheus families when they are read (:meth:`DispatchMetrics.render`): a histogram
observation through ``prometheus_client`` costs a lock and a Python loop over the buckets,
several microseconds per delivery.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.core.models import Delivery, Subscription, now_ms
from app.core.outcome import SendResult
from app.core.ports import QueueAdapter

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_BOUNDS = (*_LATENCY_BUCKETS, float("inf"))
"""Upper bounds as ``prometheus_client`` keeps them (``+Inf`` last): an observation goes to
the first bucket whose bound is at least the value."""


_Family = Counter | Histogram


class _Tally:
    """One subscription's per-delivery figures since the last fold into the families."""

    __slots__ = (
        "attempt_counts",
        "attempt_seconds",
        "attempt_sum",
        "delivered",
        "delivered_total",
        "dirty",
        "latency_counts",
        "latency_seconds",
        "latency_sum",
    )

    def __init__(self, delivered: Any, attempt_seconds: Any, latency_seconds: Any) -> None:
        """The labelled children the figures are folded into."""
        self.delivered_total = delivered
        self.attempt_seconds = attempt_seconds
        self.latency_seconds = latency_seconds
        self.delivered = 0
        self.attempt_counts = [0] * len(_BOUNDS)
        self.attempt_sum = 0.0
        self.latency_counts = [0] * len(_BOUNDS)
        self.latency_sum = 0.0
        self.dirty = False

    def fold(self) -> None:
        """Add what was counted to the Prometheus children, and start again from zero."""
        if self.delivered:
            self.delivered_total.inc(self.delivered)
            self.delivered = 0
        _fold_histogram(self.attempt_seconds, self.attempt_counts, self.attempt_sum)
        self.attempt_sum = 0.0
        _fold_histogram(self.latency_seconds, self.latency_counts, self.latency_sum)
        self.latency_sum = 0.0
        self.dirty = False


def _fold_histogram(child: Any, counts: list[int], total: float) -> None:
    """Add bucket ``counts`` (not cumulative, as the child keeps them) and their sum."""
    if not any(counts):
        return
    # No public call adds many observations at once: the child's bucket values are used
    # as ``observe`` uses them (one value per bucket, incremented).
    buckets = child._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
            counts[index] = 0
    child._sum.inc(total)


OVERFLOW = "__overflow__"
"""The label value shared by every topic or subscription past the budget."""


class LabelBudget:
    """At most ``limit`` distinct values of one label; later ones map to :data:`OVERFLOW`."""

    def __init__(self, limit: int) -> None:
        """``limit`` distinct values get series of their own, first come first served."""
        self._limit = limit
        self.admitted: set[str] = set()

    def label(self, value: str, admit: bool = True) -> str:
        """``value`` itself when it has (or, with ``admit``, gets) a slot, else the overflow."""
        if value in self.admitted:
            return value
        if admit and len(self.admitted) < self._limit:
            self.admitted.add(value)
            return value
        return OVERFLOW


class DispatchMetrics:
    """Every figure hookline exports at ``/metrics``."""

    def __init__(self, max_label_values: int = 1000) -> None:
        """Create the metric families in a private registry.

        ``max_label_values`` caps the distinct topics and, separately, the distinct
        subscriptions that get series of their own.
        """
        self.registry = CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        self._published: dict[str, Any] = {}
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._dirty: list[_Tally] = []
        self._topics = LabelBudget(max_label_values)
        self._subscriptions = LabelBudget(max_label_values)
        self._by_subscription: list[Counter | Histogram | Gauge] = []
        r = self.registry
        self.published = Counter(
            "hookline_messages_published", "Messages accepted", ["topic"], registry=r
        )
        self.duplicates = Counter(
            "hookline_messages_duplicate",
            "Publishes answered from an idempotency key",
            ["topic"],
            registry=r,
        )
        self.delivered_total = Counter(
            "hookline_deliveries", "Messages delivered (2xx)", ["topic", "subscription"], registry=r
        )
        self.attempts_failed = Counter(
            "hookline_delivery_attempts_failed",
            "Attempts that failed, by reason",
            ["topic", "subscription", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "hookline_retries_scheduled", "Retries scheduled", ["topic", "subscription"], registry=r
        )
        self.dead = Counter(
            "hookline_dead_lettered",
            "Messages dead-lettered, by reason",
            ["topic", "subscription", "reason"],
            registry=r,
        )
        self.filtered_total = Counter(
            "hookline_filtered",
            "Messages skipped by a subscription's condition",
            ["topic", "subscription"],
            registry=r,
        )
        self.condition_errors = Counter(
            "hookline_condition_errors",
            "Messages a subscription's condition failed on (kind: error, budget)",
            ["topic", "subscription", "kind"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "hookline_delivery_attempt_seconds",
            "Duration of one HTTP attempt",
            ["topic", "subscription"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "hookline_delivery_latency_seconds",
            "Publish-to-delivered time",
            ["topic", "subscription"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.transitions = Counter(
            "hookline_subscription_transitions",
            "Subscriptions paused (automatically or by hand) and resumed",
            ["topic", "subscription", "transition"],
            registry=r,
        )
        self.parked_total = Counter(
            "hookline_parked",
            "Deliveries parked (handed back untried) by an automatic pause",
            ["topic", "subscription"],
            registry=r,
        )
        self.expired_total = Counter(
            "hookline_expired",
            "Messages dead-lettered because their deadline (expires_at/ttl_ms) passed",
            ["topic", "subscription"],
            registry=r,
        )
        self.rate_limited_waits = Counter(
            "hookline_rate_limited_waits",
            "Attempts that waited for a token of their subscription's rate limit",
            ["topic", "subscription"],
            registry=r,
        )
        self.rate_limited_seconds = Counter(
            "hookline_rate_limited_wait_seconds",
            "Time attempts spent waiting for rate-limit tokens",
            ["topic", "subscription"],
            registry=r,
        )
        self.window = Gauge(
            "hookline_concurrency_window",
            "Adaptive concurrency window (max_in_flight: auto) in this process",
            ["subscription"],
            registry=r,
        )
        self.insight_dropped = Counter(
            "hookline_insight_facts_dropped",
            "Insight facts (messages, states, attempts) lost: the store failed or lagged",
            registry=r,
        )
        labels = ["topic", "subscription"]
        self.backlog = Gauge("hookline_backlog", "Messages waiting", labels, registry=r)
        self.in_flight = Gauge("hookline_in_flight", "Attempts leased now", labels, registry=r)
        self.scheduled = Gauge("hookline_scheduled", "Retries/delays waiting", labels, registry=r)
        self.dlq = Gauge("hookline_dlq", "DLQ entries", labels, registry=r)
        self._by_subscription = [
            self.delivered_total,
            self.attempts_failed,
            self.retries,
            self.dead,
            self.filtered_total,
            self.attempt_seconds,
            self.end_to_end_seconds,
            self.transitions,
            self.parked_total,
            self.expired_total,
            self.rate_limited_waits,
            self.rate_limited_seconds,
        ]

    def published_messages(self, topic: str, new: int, duplicates: int) -> None:
        """Count a publish call's results (under the overflow for unsubscribed topics).

        The children are cached by label (topic labels are never taken back): ``labels()``
        cost more than the rest of a small publish's accounting.
        """
        label = self._topics.label(topic, admit=False)
        if new:
            child = self._published.get(label)
            if child is None:
                child = self._published[label] = self.published.labels(label)
            child.inc(new)
        if duplicates:
            self.duplicates.labels(label).inc(duplicates)

    def track(self, subscriptions: Iterable[Subscription]) -> None:
        """Follow the registry: subscribed topics may be labelled, deleted subscriptions
        give their series and their slot back.
        """
        current = set()
        for subscription in subscriptions:
            current.add(subscription.id)
            self._topics.label(subscription.topic)
        self.forget(self._subscriptions.admitted - current)

    def follow(self, subscription: Subscription) -> None:
        """One subscription created or changed: its topic may be labelled."""
        self._topics.label(subscription.topic)

    def forget(self, gone: set[str]) -> None:
        """Deleted subscriptions give their series and their label slot back."""
        gone = gone & self._subscriptions.admitted
        if not gone:
            return
        self.fold()
        self._tallies.clear()
        self._subscriptions.admitted -= gone
        self._children.clear()
        for (label,) in _label_sets(self.window):
            if label in gone:
                self.window.remove(label)
        for family in self._by_subscription:
            for labels in _label_sets(family):
                if len(labels) > 1 and labels[1] in gone:
                    family.remove(*labels)

    def _labels(self, topic: str, subscription_id: str) -> tuple[str, str]:
        """The budgeted (topic, subscription) label values."""
        return self._topics.label(topic), self._subscriptions.label(subscription_id)

    def _child(self, metric: _Family, subscription: Subscription, *extra: str) -> Any:
        """The labelled child of ``metric``, cached: ``labels()`` costs microseconds and
        runs several times per delivery.
        """
        key = (id(metric), subscription.topic, subscription.id, *extra)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 100_000:
                self._children.clear()
            child = metric.labels(*self._labels(subscription.topic, subscription.id), *extra)
            self._children[key] = child
        return child

    def _tally(self, subscription: Subscription) -> _Tally:
        """The subscription's tally, marked for the next fold."""
        tally = self._tallies.get((subscription.topic, subscription.id))
        if tally is None:
            if len(self._tallies) > 100_000:
                self.fold()
                self._tallies.clear()
            tally = _Tally(
                self._child(self.delivered_total, subscription),
                self._child(self.attempt_seconds, subscription),
                self._child(self.end_to_end_seconds, subscription),
            )
            self._tallies[(subscription.topic, subscription.id)] = tally
        if not tally.dirty:
            tally.dirty = True
            self._dirty.append(tally)
        return tally

    def fold(self) -> None:
        """Bring every tally's figures into the Prometheus families (before a scrape)."""
        dirty, self._dirty = self._dirty, []
        for tally in dirty:
            tally.fold()

    def attempt(self, subscription: Subscription, result: SendResult) -> None:
        """Record one HTTP attempt."""
        tally = self._tally(subscription)
        seconds = result.duration_ms / 1000
        tally.attempt_counts[bisect_left(_BOUNDS, seconds)] += 1
        tally.attempt_sum += seconds
        if not result.ok:
            self._child(self.attempts_failed, subscription, result.reason).inc()

    def delivered(self, subscription: Subscription, delivery: Delivery) -> None:
        """A 2xx."""
        tally = self._tally(subscription)
        tally.delivered += 1
        latency = max(0, now_ms() - delivery.message.published_at) / 1000
        tally.latency_counts[bisect_left(_BOUNDS, latency)] += 1
        tally.latency_sum += latency

    def retry_scheduled(self, subscription: Subscription) -> None:
        """A retry went on the schedule."""
        self._child(self.retries, subscription).inc()

    def dead_lettered(self, subscription: Subscription, reason: str) -> None:
        """A message went to the DLQ."""
        self._child(self.dead, subscription, reason).inc()

    def condition_failed(self, subscription: Subscription, kind: str) -> None:
        """A condition failed on a message (``budget``: it would cost too much)."""
        self._child(self.condition_errors, subscription, kind).inc()

    def filtered(self, subscription: Subscription) -> None:
        """A condition said no."""
        self._child(self.filtered_total, subscription).inc()

    def transition(self, subscription: Subscription, transition: str) -> None:
        """``auto_paused``, ``paused`` or ``resumed``."""
        self._child(self.transitions, subscription, transition).inc()

    def parked(self, subscription: Subscription) -> None:
        """An automatic pause handed a delivery back untried."""
        self._child(self.parked_total, subscription).inc()

    def expired(self, subscription: Subscription) -> None:
        """A message's deadline passed before it could be delivered."""
        self._child(self.expired_total, subscription).inc()

    def rate_limited(self, subscription: Subscription, wait_ms: int) -> None:
        """An attempt waits ``wait_ms`` for a token of its subscription's rate limit."""
        self._child(self.rate_limited_waits, subscription).inc()
        self._child(self.rate_limited_seconds, subscription).inc(wait_ms / 1000)

    def concurrency_window(self, subscription: Subscription, window: int) -> None:
        """The adaptive window changed (subscriptions past the label budget share a series)."""
        self.window.labels(self._subscriptions.label(subscription.id)).set(window)

    def insight_facts_dropped(self, count: int) -> None:
        """The insight store lost ``count`` facts."""
        self.insight_dropped.inc(count)

    async def render(self, adapter: QueueAdapter, subscriptions: Iterable[Subscription]) -> bytes:
        """Refresh the per-subscription gauges from the adapter, then the exposition text.

        Only topics with subscriptions are read: the others have no gauges. Subscriptions
        past the label budget are summed into the overflow series.
        """
        subscriptions = list(subscriptions)
        self.track(subscriptions)
        self.fold()
        gauges = (self.backlog, self.in_flight, self.scheduled, self.dlq)
        for gauge in gauges:
            gauge.clear()
        for topic in sorted({s.topic for s in subscriptions}):
            stats = await adapter.topic_stats(topic)
            for sub in stats.subscriptions:
                labels = self._labels(topic, sub.subscription_id)
                self.backlog.labels(*labels).inc(sub.backlog)
                self.in_flight.labels(*labels).inc(sub.in_flight)
                self.scheduled.labels(*labels).inc(sub.scheduled)
                self.dlq.labels(*labels).inc(sub.dlq)
        return generate_latest(self.registry)


def _label_sets(family: Counter | Histogram | Gauge) -> list[tuple[str, ...]]:
    """The label values of every child of ``family`` (prometheus_client keeps them private)."""
    # No public way to list a family's children.
    with family._lock:
        return [tuple(labels) for labels in family._metrics]
