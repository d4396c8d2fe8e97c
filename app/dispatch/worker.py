# Over 350 lines on purpose: one delivery loop; its steps read best together.
"""The delivery loop of one subscription: lease, filter, sign, send, record the outcome.

At most ``max_in_flight`` attempts run at once. Outcomes go back to the adapter: acks in
batches, retries and dead letters one by one (each atomic with its ack in the adapter).

An idle subscription costs nothing: the loop leases without waiting and, when nothing
came, parks on the adapter's :meth:`~app.core.ports.QueueAdapter.wait_for_work` (woken
when its topic or its own queue gets work) with a long, jittered safety timeout, instead
of polling the backend a few times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from opentelemetry import trace

from app.core.auto_pause import FailureStreak
from app.core.concurrency import AimdWindow
from app.core.conditions import (
    Condition,
    ConditionBudgetError,
    ConditionEvaluationError,
    ConditionSyntaxError,
    compile_condition,
)
from app.core.dead_letters import HOP_LIMIT_REASON, hops_so_far
from app.core.deadlines import EXPIRED_REASON, expired
from app.core.ids import new_dlq_id
from app.core.insight import AttemptRecord, MessageState, NextStep, StateMark
from app.core.models import Delivery, DlqEntry, LastError, Subscription, now_ms
from app.core.ordering import OWNERSHIP_RENEW_S
from app.core.outcome import DeadLetter, Delivered, Outcome, RetryLater, SendResult, classify
from app.core.ports import OrderingPort
from app.core.publisher import PublishRequest
from app.core.rate_limit import LocalRateLimiter, RateLimiter
from app.core.redact import mask_url_credentials
from app.core.tracing import annotate_attempt, delivery_span, trace_headers, tracing_enabled
from app.dispatch.context import DeliveryContext
from app.dispatch.guard import DestinationGuard
from app.dispatch.ordering import KeyGate, hold_bound
from app.dispatch.payload import HeaderPlan, build_body
from app.dispatch.wire import WireSlots

logger = logging.getLogger("hookline.dispatch")

IDLE_WAIT_S = 300.0
"""Longest an idle subscription sleeps between two leases when nothing woke it (a safety
net only: work wakes it at once); jittered by a quarter either way so that thousands of
idle subscriptions do not lease in step. Each safety lease is a backend call: at 60 s,
10,000 idle Redis subscriptions cost ~5 % of a core in these alone."""
PARKED_POLL_S = 0.5
"""How often an auto-paused worker looks whether it was stopped or un-tripped."""
BUILD_ERROR_EXCERPT = 512
_BACKOFF_MAX_S = 5.0


class Filtered:
    """The subscription's condition was false: acked, counted, not sent."""


class Expired:
    """The message's deadline passed before an attempt could start: dead-lettered, not sent."""

    def __init__(self, error: LastError) -> None:
        """``error``: the DLQ reason (``expired``) and when the deadline was."""
        self.error = error


OnTrip = Callable[[Subscription, str, LastError | None], Awaitable[None]]
"""Called once when the auto-pause policy trips: pause the subscription (shared)."""

NOT_ENDPOINT_FAILURES = frozenset(
    {"condition_error", "blocked_destination", "build_error", EXPIRED_REASON}
)
"""Dead-letter reasons that say nothing about the endpoint: they never count toward a pause."""


class SubscriptionWorker:
    """Delivers one subscription's messages until stopped."""

    def __init__(
        self,
        subscription: Subscription,
        context: DeliveryContext,
        *,
        on_trip: OnTrip | None = None,
    ) -> None:
        """Everything a delivery needs; the subscription can be swapped by :meth:`update`.

        ``on_trip`` pauses the subscription when its auto-pause policy trips (from then on
        this worker parks instead of retrying).
        """
        self._insight = context.insight
        self._on_trip = on_trip
        self._streak = FailureStreak()
        self._parking = False
        self._trip_task: asyncio.Task[None] | None = None
        self._adapter = context.adapter
        self._sender = context.sender
        self._publisher = context.publisher
        self._metrics = context.metrics
        self._guard = context.guard
        self._checked_url: str | None = None
        self._url_refusal: str | None = None
        self._plan: HeaderPlan | None = None
        self._planned: Subscription | None = None
        self._max_dead_letter_hops = context.max_dead_letter_hops
        self._conditions = context.conditions
        self._subscription = subscription
        self._condition: Condition | ConditionSyntaxError | None = _compile(subscription.condition)
        self._tasks: dict[asyncio.Task[None], Delivery] = {}
        self._acks: list[Delivery] = []
        self._ack_wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Future[None] | None = None
        self._ack_task: asyncio.Task[None] | None = None
        # A backend that shares token buckets across instances (Redis) takes them itself.
        self._limiter: RateLimiter = (
            context.adapter if isinstance(context.adapter, RateLimiter) else LocalRateLimiter()
        )
        self._window: AimdWindow | None = None
        self._follow_concurrency(subscription)
        # Ordering keys (``ordering: key``): the gate keeps each key's order, attempts
        # queue for a slot on the wire, and only the subscription's owner leases.
        self._gate = KeyGate()
        self._wire = WireSlots(self._slots)
        self._handback: list[Delivery] = []
        self._leased_late: list[Delivery] = []
        """An ordered subscription's lease that came back after the stop began: the newest
        copies of their keys, so released last (a new owner reads hand-backs in release
        order; released first, they went ahead of older copies still in progress here)."""
        self._ownership: OrderingPort | None = (
            context.adapter if isinstance(context.adapter, OrderingPort) else None
        )
        self._owner = self._ownership is None
        self._owner_changed = asyncio.Event()
        self._ordering_changed = asyncio.Event()
        self._owner_task: asyncio.Task[None] | None = None
        self._after: asyncio.Future[None] | None = None

    @property
    def subscription(self) -> Subscription:
        """The definition in force."""
        return self._subscription

    @property
    def in_flight(self) -> int:
        """Attempts running now."""
        return len(self._tasks)

    @property
    def concurrency_window(self) -> int | None:
        """The adaptive window in this process (``None`` unless ``max_in_flight`` is auto)."""
        return self._window.window if self._window is not None else None

    def _follow_concurrency(self, subscription: Subscription) -> None:
        if not subscription.adaptive_concurrency:
            self._window = None
        elif self._window is None:
            self._window = AimdWindow(subscription.max_in_flight)
        else:
            self._window.set_ceiling(subscription.max_in_flight)
        if self._window is not None:
            self._metrics.concurrency_window(subscription, self._window.window)

    def update(self, subscription: Subscription) -> None:
        """Take a changed definition (URL, retry policy, condition...) from the next lease on."""
        if subscription.condition != self._subscription.condition:
            self._condition = _compile(subscription.condition)
        if subscription.ordering != self._subscription.ordering:
            self._ordering_changed.set()
        self._subscription = subscription
        self._follow_concurrency(subscription)
        self._slot_freed.set()  # a wider window or a lifted limit may free slots at once
        self._wire.pump()

    @property
    def ordered(self) -> bool:
        """True while the subscription delivers each ordering key in order."""
        return self._subscription.ordered

    def start(self, after: asyncio.Future[None] | None = None) -> None:
        """Start the receive loop and the ack flusher.

        ``after``: the stop of this subscription's previous worker in this process (a pause
        and resume): nothing is leased before it handed its leases back, so an ordered
        subscription's keys are leased again in order.
        """
        self._after = after
        self._loop_task = asyncio.create_task(self._receive_loop(), name=f"sub:{self.sub_id}")
        self._ack_task = asyncio.create_task(self._ack_loop(), name=f"ack:{self.sub_id}")
        if self._ownership is not None:
            self._owner_task = asyncio.create_task(
                self._ownership_loop(self._ownership), name=f"owner:{self.sub_id}"
            )

    @property
    def sub_id(self) -> str:
        """The subscription's id."""
        return self._subscription.id

    def halt(self) -> None:
        """Lease nothing more, from now on (synchronous: a pause answered by this process
        means no new attempt starts here after the answer). :meth:`stop` finishes the job.
        """
        self._stopping.set()
        self._slot_freed.set()
        self._owner_changed.set()
        self._ordering_changed.set()
        if self._idle_task is not None:
            self._idle_task.cancel()  # wait_for_work is cancel-safe: it holds no lease

    async def stop(self, grace_s: float) -> None:
        """Stop leasing; let running attempts finish within ``grace_s``; hand back the rest."""
        self.halt()
        if self._loop_task is not None:
            await self._loop_task
        self._wire.close()
        unfinished: list[Delivery] = []
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=grace_s)
            unfinished = [self._tasks[t] for t in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # In-progress deliveries first, then what waited behind each key: released in this
        # order, every key is leased again in its order.
        unfinished = [*self._gate.take_all([*self._handback, *unfinished]), *self._leased_late]
        self._handback, self._leased_late = [], []
        if unfinished:
            logger.warning(
                "handing back %d unfinished deliveries",
                len(unfinished),
                extra={"subscription_id": self.sub_id},
            )
            await self._safely(self._adapter.release(unfinished))
        if self._owner_task is not None:
            await self._owner_task  # gives the ownership up, after the leases went back
        self._ack_wakeup.set()
        if self._ack_task is not None:
            await self._ack_task

    # -- the loop -----------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        if self._after is not None:
            await asyncio.gather(self._after, return_exceptions=True)
        failures = 0
        while not self._stopping.is_set():
            if self._parking:  # auto-paused: lease nothing more until stopped or un-tripped
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), PARKED_POLL_S)
                continue
            ordered = self.ordered
            if ordered and not self._owner:  # another instance delivers it: wait for a turn
                self._owner_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._owner_changed.wait(), OWNERSHIP_RENEW_S)
                continue
            free = self._free()
            if free <= 0:
                await self._slot_or_stop()
                continue
            try:
                deliveries = await self._adapter.receive(self._subscription, free, 0)
                failures = 0
                if not deliveries:
                    await self._idle()
                    continue
            except Exception as exc:  # noqa: BLE001 - the loop must survive backend outages
                failures += 1
                delay = min(_BACKOFF_MAX_S, 0.1 * 2**failures)
                logger.warning(
                    "receive failed (%s); retrying in %.1fs",
                    exc,
                    delay,
                    extra={"subscription_id": self.sub_id},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            if self._stopping.is_set():
                await self._leased_after_stop(deliveries, ordered)
                break
            for delivery in deliveries:
                if ordered:
                    if not self._gate.admit(delivery):
                        continue  # waits behind its key's delivery in progress
                    task = asyncio.create_task(self._deliver_keyed(delivery))
                else:
                    task = asyncio.create_task(self._deliver(delivery))
                self._tasks[task] = delivery
                task.add_done_callback(self._forget)

    def _free(self) -> int:
        """Deliveries worth leasing now.

        Unordered: free slots on the wire. Ordered: room under the hold bound, for leases
        in progress, waiting for their retry, or queued behind their key; attempts then
        queue for a slot on the wire (:meth:`_wire_slot`).
        """
        if self.ordered:
            bound = hold_bound(self._subscription.max_in_flight)
            room = bound - len(self._tasks) - self._gate.held
            # Lease in chunks of at least a quarter of the bound: one lease call per
            # finished message would cost a backend round trip (and, on SQLite, a scan past
            # the held leases) per delivery.
            return room if room >= bound // 4 else 0
        return self._slots() - len(self._tasks)

    async def _idle(self) -> None:
        """Park until the adapter says there may be work, the safety timeout, or a stop."""
        if self._stopping.is_set():
            return  # stop() cancels a wait it can see; one not yet begun must not begin
        timeout = IDLE_WAIT_S * random.uniform(0.75, 1.25)
        self._idle_task = asyncio.ensure_future(
            self._adapter.wait_for_work(self._subscription, timeout)
        )
        try:
            await self._idle_task
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
        finally:
            self._idle_task = None

    async def _slot_or_stop(self) -> None:
        """Wait until an attempt ends or :meth:`stop` is called.

        Waiting on the attempts alone would make a stop wait for a hung receiver's whole
        ``timeout_ms`` before the grace period even starts.
        One event, set by every ending attempt and by :meth:`stop`, costs O(1) per wait
        (``asyncio.wait`` on every running attempt would cost O(max_in_flight)).
        """
        self._slot_freed.clear()
        if self._stopping.is_set() or self._free() > 0:
            return
        await self._slot_freed.wait()
        # Let attempts finishing in the same loop turn free their slots as well, so the
        # next receive leases a batch instead of a single message.
        await asyncio.sleep(0)

    def _slots(self) -> int:
        """Attempts worth leasing at once: never more than can be on the wire together
        (the destination's connection budget, the adaptive window), so no lease ages
        waiting for a connection; under a rate limit, no more than about a second's worth
        of tokens, so no lease ages waiting for its token.
        """
        subscription = self._subscription
        slots = min(subscription.max_in_flight, self._sender.max_connections_per_destination)
        if self._window is not None:
            slots = min(slots, self._window.window)
        limit = subscription.rate_limit
        if limit is not None:
            slots = min(slots, limit.burst + math.ceil(limit.per_second))
        return max(1, slots)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._slot_freed.set()

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            while self._acks:
                batch, self._acks = self._acks, []
                await self._settled(self._adapter.ack(batch))
            if self._stopping.is_set() and not self._tasks:
                return

    # -- one delivery -------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        subscription = self._subscription
        if self._parking:
            await self._park(subscription, delivery, None)
            return
        started = now_ms()
        clock = time.perf_counter()
        self._leased(delivery, started)
        outcome = await self._attempt(subscription, delivery)
        if delivery.message.expires_at is not None:
            outcome = _within_deadline(delivery, outcome)
        duration_ms = (time.perf_counter() - clock) * 1000
        if isinstance(outcome, Delivered):  # the usual end: no backend call to wait for
            self._metrics.delivered(subscription, delivery)
            self._ack(delivery)
            self._observe(subscription, delivery, outcome, started, duration_ms)
            return
        if self._parking and _endpoint_failure(outcome):
            await self._park(subscription, delivery, (outcome, started, duration_ms))
            return
        await self._record(subscription, delivery, outcome)
        self._observe(subscription, delivery, outcome, started, duration_ms)

    async def _leased_after_stop(self, deliveries: list[Delivery], ordered: bool) -> None:
        """A lease that came back after the stop began goes back untried: at once, or, for an
        ordered subscription, after what is in progress here (:meth:`stop`): it holds the
        newest copies of their keys.
        """
        if ordered:
            self._leased_late = deliveries
        else:
            await self._safely(self._adapter.release(deliveries))

    # -- ordered delivery (ordering: key) ----------------------------------------------------

    async def _deliver_keyed(self, delivery: Delivery) -> None:
        """Deliver ``delivery``, then each delivery that waited behind its key, in order.

        One task per busy key: it ends when the key has nothing more waiting, or on stop
        (what is left is handed back by :meth:`stop`, in order).
        """
        task = asyncio.current_task()
        current: Delivery | None = delivery
        while current is not None:
            if task is not None:
                self._tasks[task] = current
            if not await self._deliver_in_order(current):
                return  # handed back whole (parked, stopping): nothing follows here
            current = self._gate.finish(current)
            self._slot_freed.set()  # one fewer held: the loop may lease again
            if current is not None and self._stopping.is_set():
                self._handback.append(current)
                return

    async def _deliver_in_order(self, delivery: Delivery) -> bool:
        """Attempt until an outcome ends the lease; True when it did (the key moves on).

        A keyed message's retry keeps its lease and waits here: rescheduling it through
        ``retry_at`` would put it behind later messages of its key on a stream or queue.
        Unkeyed messages are retried through the adapter as usual.
        """
        keyed = delivery.message.ordering_key is not None
        while True:
            subscription = self._subscription
            if self._parking:
                await self._park_key(subscription, delivery, None)
                return False
            if self._stopping.is_set() or not await self._wire.acquire():
                self._handback.append(delivery)
                return False
            try:
                started = now_ms()
                clock = time.perf_counter()
                self._leased(delivery, started)
                outcome = _within_deadline(delivery, await self._attempt(subscription, delivery))
                duration_ms = (time.perf_counter() - clock) * 1000
            finally:
                self._wire.release()
            if self._parking and _endpoint_failure(outcome):
                await self._park_key(subscription, delivery, (outcome, started, duration_ms))
                return False
            if not (keyed and isinstance(outcome, RetryLater)):
                await self._record(subscription, delivery, outcome)
                self._observe(subscription, delivery, outcome, started, duration_ms)
                return True
            self._metrics.retry_scheduled(subscription)
            self._observe(subscription, delivery, outcome, started, duration_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), outcome.delay_ms / 1000)
            if self._stopping.is_set():
                self._handback.append(delivery)
                return False
            delivery = Delivery(
                delivery.subscription_id, delivery.message, delivery.attempt + 1, delivery.receipt
            )
            task = asyncio.current_task()
            if task is not None:
                self._tasks[task] = delivery

    async def _park_key(
        self,
        subscription: Subscription,
        delivery: Delivery,
        tried: tuple[Outcome | Filtered | Expired, int, float] | None,
    ) -> None:
        """Auto-paused: hand the delivery back with everything waiting behind its key, in one
        call, so the key is leased again in its order on resume.
        """
        waiting = self._gate.take_key(delivery)
        await self._park(subscription, delivery, tried, waiting)
        self._slot_freed.set()

    async def _ownership_loop(self, ownership: OrderingPort) -> None:
        """Keep (or try to take) the subscription's ownership while it is ordered.

        Costs nothing while the subscription is unordered (waits for a change). Losing the
        ownership (this process stalled past the lease) drops what waits behind busy keys,
        unsettled: the new owner leases those again, in order.
        """
        while not self._stopping.is_set():
            if not self.ordered:
                self._ordering_changed.clear()
                await self._ordering_changed.wait()
                continue
            try:
                owned = await ownership.claim_order(self._subscription)
            except Exception as exc:  # noqa: BLE001 - an outage: keep what we have, retry
                logger.warning(
                    "ownership check failed: %s", exc, extra={"subscription_id": self.sub_id}
                )
                owned = self._owner
            if owned != self._owner:
                logger.info(
                    "ordered subscription %s here",
                    "owned" if owned else "no longer owned",
                    extra={"subscription_id": self.sub_id},
                )
                if not owned:
                    self._gate.take_all()
                self._owner = owned
                self._owner_changed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), OWNERSHIP_RENEW_S)
        if self._owner and self.ordered:
            await self._safely(ownership.release_order(self._subscription))

    # -- insight and auto-pause ------------------------------------------------------------

    def _leased(self, delivery: Delivery, at: int) -> None:
        if self._insight is not None:
            message = delivery.message
            self._insight.leased(message.id, message.topic, self.sub_id, delivery.attempt, at)

    def _mark(self, delivery: Delivery, state: MessageState, at: int) -> None:
        if self._insight is not None:
            message = delivery.message
            self._insight.mark(
                StateMark(message.id, message.topic, self.sub_id, state, at, delivery.attempt)
            )

    def _observe(
        self,
        subscription: Subscription,
        delivery: Delivery,
        outcome: Outcome | Filtered | Expired,
        started: int,
        duration_ms: float,
    ) -> None:
        """Record the attempt and follow the failure streak (may trip the auto-pause)."""
        if isinstance(outcome, Delivered):
            self._log_attempt(delivery, outcome, started, duration_ms, "delivered")
            self._streak.success()
            return
        if isinstance(outcome, Filtered):
            self._mark(delivery, "filtered", now_ms())
            return
        if isinstance(outcome, Expired):
            self._mark(delivery, "dead_lettered", now_ms())
            return
        step: NextStep
        if isinstance(outcome, Delivered):
            step = "delivered"
        elif isinstance(outcome, RetryLater):
            step = "scheduled"
        else:
            step = "dead_lettered"
        self._log_attempt(delivery, outcome, started, duration_ms, step)
        if isinstance(outcome, Delivered):
            self._streak.success()
        elif _endpoint_failure(outcome):
            self._streak.failure(started, outcome.error)
            reason = self._streak.tripped(subscription.auto_pause, now_ms())
            if reason is not None and self._on_trip is not None and not self._parking:
                self._parking = True
                self._trip_task = asyncio.create_task(
                    self._trip(subscription, reason, self._streak.last_error)
                )

    def _log_attempt(
        self,
        delivery: Delivery,
        outcome: Outcome,
        started: int,
        duration_ms: float,
        step: NextStep,
    ) -> None:
        if self._insight is None:
            return
        status = outcome.status if isinstance(outcome, Delivered) else outcome.error.status
        reason = "delivered" if isinstance(outcome, Delivered) else outcome.error.reason
        excerpt = None if isinstance(outcome, Delivered) else outcome.error.body_excerpt
        message = delivery.message
        self._insight.attempt(
            AttemptRecord(
                message_id=message.id,
                topic=message.topic,
                subscription_id=self.sub_id,
                attempt=delivery.attempt,
                started_at=started,
                duration_ms=duration_ms,
                status=status,
                reason=reason,
                next_step=step,
                response_excerpt=excerpt,
                next_attempt_at=now_ms() + outcome.delay_ms
                if isinstance(outcome, RetryLater)
                else None,
            )
        )

    async def _trip(self, subscription: Subscription, reason: str, error: LastError | None) -> None:
        if self._on_trip is None:
            return
        try:
            await self._on_trip(subscription, reason, error)
        except Exception as exc:  # noqa: BLE001 - deliver on (and count again) if it failed
            logger.warning(
                "automatic pause failed: %s", exc, extra={"subscription_id": self.sub_id}
            )
            self._parking = False
            self._streak = FailureStreak()

    async def _park(
        self,
        subscription: Subscription,
        delivery: Delivery,
        tried: tuple[Outcome | Filtered | Expired, int, float] | None,
        following: list[Delivery] | None = None,
    ) -> None:
        """Auto-paused: hand the lease back untried (kept, not retried, not dead-lettered),
        with ``following`` (what waited behind its ordering key) after it.
        """
        await self._safely(self._adapter.release([delivery, *(following or [])]))
        self._metrics.parked(subscription)
        if tried is not None and not isinstance(tried[0], Filtered | Expired):
            self._log_attempt(delivery, tried[0], tried[1], tried[2], "parked")
        else:
            self._mark(delivery, "parked", now_ms())
        for later in following or []:
            self._metrics.parked(subscription)
            self._mark(later, "parked", now_ms())

    async def _attempt(
        self, subscription: Subscription, delivery: Delivery
    ) -> Outcome | Filtered | Expired:
        message = delivery.message
        if message.expires_at is not None and expired(message.expires_at, now_ms()):
            return _expired(delivery, "before attempt")
        if self._condition is not None:
            try:
                if not await self._matches(self._condition, delivery):
                    return Filtered()
            except ConditionEvaluationError as exc:
                kind = "budget" if isinstance(exc, ConditionBudgetError) else "error"
                self._metrics.condition_failed(subscription, kind)
                return DeadLetter(LastError(reason="condition_error", body_excerpt=str(exc)))
        if self._guard is not None:
            refusal = await self._refusal(self._guard, subscription.url)
            if refusal is not None:
                return DeadLetter(LastError(reason="blocked_destination", body_excerpt=refusal))
        if subscription.rate_limit is not None:
            await self._wait_for_token(subscription)
            if expired(message.expires_at, now_ms()):
                return _expired(delivery, "while waiting for the rate limit")
        if tracing_enabled():
            result = await self._traced_send(subscription, delivery)
        else:
            # Nothing records spans: the stored context goes on as it is, and the receiver
            # still joins the publisher's trace (no span machinery per attempt).
            carrier = trace_headers(message.traceparent, message.baggage)
            result = await self._send(subscription, delivery, carrier, trace.INVALID_SPAN)
        if isinstance(result, DeadLetter):
            return result
        self._metrics.attempt(subscription, result)
        return classify(result, delivery.attempt, subscription.retry)

    async def _refusal(self, guard: DestinationGuard, url: str) -> str | None:
        """The guard's verdict on ``url`` (a literal address), asked once per URL."""
        if url != self._checked_url:
            self._url_refusal = await guard.check(url)
            self._checked_url = url
        return self._url_refusal

    async def _traced_send(
        self, subscription: Subscription, delivery: Delivery
    ) -> SendResult | DeadLetter:
        """:meth:`_send` inside the attempt's CONSUMER span, which gets the outcome."""
        message = delivery.message
        with delivery_span(
            message.topic,
            message.id,
            delivery.attempt,
            subscription.id,
            message.traceparent,
            message.baggage,
        ) as (span, carrier):
            result = await self._send(subscription, delivery, carrier, span)
            if isinstance(result, SendResult) and span.is_recording():
                host = urlsplit(subscription.url).hostname
                annotate_attempt(span, result.status, result.reason, result.ok, host)
        return result

    async def _send(
        self,
        subscription: Subscription,
        delivery: Delivery,
        carrier: Mapping[str, str],
        span: trace.Span,
    ) -> SendResult | DeadLetter:
        """Build the request and send it; a request that cannot be built is a dead letter."""
        plan = self._plan
        if plan is None or self._planned is not subscription:
            plan = self._plan = HeaderPlan(subscription)
            self._planned = subscription
        try:
            body = build_body(subscription, delivery)
            headers = plan.headers(delivery.message.id, body, carrier)
        except Exception as exc:  # noqa: BLE001 - a message that can never be sent
            return self._unbuildable(span, subscription, delivery, exc)
        window = self._window
        ticket = window.ticket() if window is not None else 0
        result = await self._sender.send(subscription.url, body, headers, subscription.timeout_ms)
        if window is not None and window.record(ticket, result, subscription.timeout_ms / 2):
            self._metrics.concurrency_window(subscription, window.window)
            self._slot_freed.set()
        return result

    async def _wait_for_token(self, subscription: Subscription) -> None:
        """Wait until the subscription's rate limit lets an attempt start.

        A backend outage must not stop delivery: the bucket is then this process's own.
        """
        limit = subscription.rate_limit
        if limit is None:
            return
        try:
            wait_ms = await self._limiter.acquire(
                subscription.id, subscription.topic, limit.per_second, limit.burst
            )
        except Exception as exc:  # noqa: BLE001 - fall back to a local bucket
            logger.warning(
                "shared rate limit unavailable (%s)", exc, extra={"subscription_id": self.sub_id}
            )
            self._limiter = LocalRateLimiter()
            wait_ms = await self._limiter.acquire(
                subscription.id, subscription.topic, limit.per_second, limit.burst
            )
        if wait_ms > 0:
            self._metrics.rate_limited(subscription, wait_ms)
            await asyncio.sleep(wait_ms / 1000)  # the token this attempt paid for is due then

    async def _matches(
        self, condition: Condition | ConditionSyntaxError, delivery: Delivery
    ) -> bool:
        """Cheap conditions inline; ones with macros bounded, then in an evaluator process."""
        if isinstance(condition, ConditionSyntaxError):
            raise ConditionEvaluationError(f"condition refused: {condition}")
        message = delivery.message
        if not condition.guarded:
            return condition.matches(message.data, message.topic, message.headers)
        reason = condition.over_budget(message.data, message.headers)
        if reason is not None:
            raise ConditionBudgetError(reason)
        return await self._conditions.matches(
            condition.source, message.data, message.topic, message.headers
        )

    def _unbuildable(
        self, span: trace.Span, subscription: Subscription, delivery: Delivery, exc: Exception
    ) -> DeadLetter:
        """No request can be made of this message (its body or signature cannot be built):
        it is dead-lettered with reason ``build_error`` at once, never retried or left leased.
        """
        logger.error(
            "delivery cannot be built: %s",
            exc,
            exc_info=exc,
            extra={"subscription_id": subscription.id, "message_id": delivery.message.id},
        )
        excerpt = f"{type(exc).__name__}: {exc}"[:BUILD_ERROR_EXCERPT]
        if span.is_recording():
            annotate_attempt(span, None, "build_error", False, None)
        # The excerpt itself must be storable and sendable as JSON: no lone surrogates.
        safe = excerpt.encode("utf-8", "backslashreplace").decode()
        return DeadLetter(LastError(reason="build_error", body_excerpt=safe))

    async def _record(
        self, subscription: Subscription, delivery: Delivery, outcome: Outcome | Filtered | Expired
    ) -> None:
        if isinstance(outcome, Expired):
            await self._dead_letter(subscription, delivery, outcome.error)
        elif isinstance(outcome, Filtered):
            self._metrics.filtered(subscription)
            self._ack(delivery)
        elif isinstance(outcome, Delivered):
            self._metrics.delivered(subscription, delivery)
            self._ack(delivery)
        elif isinstance(outcome, RetryLater):
            if await self._settled(self._adapter.retry_at(delivery, now_ms() + outcome.delay_ms)):
                self._metrics.retry_scheduled(subscription)
        else:
            await self._dead_letter(subscription, delivery, outcome.error)

    def _ack(self, delivery: Delivery) -> None:
        self._acks.append(delivery)
        self._ack_wakeup.set()

    async def _dead_letter(
        self, subscription: Subscription, delivery: Delivery, error: LastError
    ) -> None:
        message = delivery.message
        hops = hops_so_far(message) + 1
        republish = subscription.dead_letter_topic is not None
        if subscription.dead_letter_topic and hops > self._max_dead_letter_hops:
            # A dead letter of a dead letter of...: a cycle, maybe one two instances built
            # at once. It stays here, counted, instead of going round again.
            error = _hop_limit_error(error, subscription.dead_letter_topic, hops - 1)
            republish = False
        entry = DlqEntry(
            id=new_dlq_id(),
            topic=message.topic,
            subscription_id=subscription.id,
            message=message,
            attempts=delivery.attempt,
            last_error=error,
            failed_at=now_ms(),
        )
        if republish and subscription.dead_letter_topic:
            info: dict[str, object] = {
                "source_topic": message.topic,
                "subscription_id": subscription.id,
                "attempts": delivery.attempt,
                "last_error": error.to_dict(),
                "hops": hops,
            }
            # Published before the lease ends: a crash in between duplicates, never loses.
            published = await self._safely(
                self._publisher.publish(
                    subscription.dead_letter_topic,
                    [PublishRequest(data=message.data, headers=message.headers, dead_letter=info)],
                    trace_headers(message.traceparent, message.baggage),
                )
            )
            if not published:
                return  # lease not ended: a durable adapter redelivers it
        if await self._settled(self._adapter.dead_letter(delivery, entry)):
            self._metrics.dead_lettered(subscription, error.reason)
            if error.reason == EXPIRED_REASON:
                self._metrics.expired(subscription)
            logger.warning(
                "message dead-lettered: %s",
                error.reason,
                extra={
                    "subscription_id": subscription.id,
                    "topic": message.topic,
                    "url": mask_url_credentials(subscription.url),
                    "message_id": message.id,
                    "attempts": delivery.attempt,
                    "status": error.status,
                    "trace_id": _trace_id(message.traceparent),
                },
            )

    async def _safely(self, awaitable: object) -> bool:
        """Await a backend call; log (not raise) a failure: the lease is redelivered later."""
        try:
            await awaitable  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - outages must not kill the loop
            logger.warning("backend call failed: %s", exc, extra={"subscription_id": self.sub_id})
            return False
        return True

    async def _settled(self, settle: Awaitable[bool]) -> bool:
        """End a lease; True only if the adapter recorded the outcome (the lease was ours).

        A lease lost to another instance is not an error: its new holder decides.
        """
        try:
            ours = await settle
        except Exception as exc:  # noqa: BLE001 - outages must not kill the loop
            logger.warning("backend call failed: %s", exc, extra={"subscription_id": self.sub_id})
            return False
        if not ours:
            logger.debug("lease lost: outcome not recorded", extra={"subscription_id": self.sub_id})
        return ours


def _endpoint_failure(outcome: Outcome | Filtered | Expired) -> bool:
    """An attempt the endpoint failed (not a condition, a refusal or an unbuildable body)."""
    if isinstance(outcome, Filtered | Delivered | Expired):
        return False
    return outcome.error.reason not in NOT_ENDPOINT_FAILURES


def _expired(delivery: Delivery, when: str) -> Expired:
    """The dead letter of a message whose deadline passed before attempt ``delivery.attempt``."""
    note = f"deadline {delivery.message.expires_at} passed {when} {delivery.attempt}"
    return Expired(LastError(reason=EXPIRED_REASON, body_excerpt=note))


def _within_deadline(
    delivery: Delivery, outcome: Outcome | Filtered | Expired
) -> Outcome | Filtered | Expired:
    """No retry is scheduled past the deadline: such a retry dead-letters ``expired`` now,
    keeping the failed attempt's status and excerpt.
    """
    deadline = delivery.message.expires_at
    if not isinstance(outcome, RetryLater) or deadline is None:
        return outcome
    if now_ms() + outcome.delay_ms < deadline:
        return outcome
    error = outcome.error
    note = f"no retry after attempt {delivery.attempt}: the next would start after the deadline"
    excerpt = f"{note}; last failure {error.reason}: {error.body_excerpt or ''}".rstrip(": ")
    return DeadLetter(LastError(EXPIRED_REASON, error.status, excerpt[:BUILD_ERROR_EXCERPT]))


def _hop_limit_error(error: LastError, dead_letter_topic: str, hops: int) -> LastError:
    """The DLQ reason of a dead letter kept instead of republished, the failure kept too."""
    note = (
        f"{error.reason}; not republished to {dead_letter_topic!r}: it already passed "
        f"through {hops} dead-letter topic(s), the limit (delivery.max_dead_letter_hops)"
    )
    excerpt = f"{note}\n{error.body_excerpt}" if error.body_excerpt else note
    return LastError(reason=HOP_LIMIT_REASON, status=error.status, body_excerpt=excerpt)


def _compile(source: str | None) -> Condition | ConditionSyntaxError | None:
    """A stored condition that today's checks refuse (saved by an older version) fails
    each message with ``condition_error`` instead of stopping the dispatcher.
    """
    try:
        return compile_condition(source)
    except ConditionSyntaxError as exc:
        return exc


def _trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) >= 3 else None
