"""W3C trace-context propagation: from the publisher, through storage, to the receiver.

Publishing continues the caller's ``traceparent``/``baggage`` (request headers, else the
current span) and stores them with the message. Each delivery attempt continues that
trace and sends the headers on, so the receiver joins the same trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

_tracer = trace.get_tracer("hookline")


@contextmanager
def _attached(context: Context) -> Iterator[None]:
    """Make ``context`` current (span *and* baggage) for the block."""
    token = context_api.attach(context)
    try:
        yield
    finally:
        context_api.detach(token)


@contextmanager
def publish_span(topic: str, carrier: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """A PRODUCER span ``{topic} publish`` continuing ``carrier``; yields the context to store.

    The yielded dict holds ``traceparent`` (and ``baggage``) of the span, or of the caller
    when no tracer provider records spans, so the trace survives either way.
    """
    parent = propagate.extract(dict(carrier)) if carrier else context_api.get_current()
    with (
        _attached(parent),
        _tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "hookline",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
        ),
    ):
        stored: dict[str, str] = {}
        propagate.inject(stored)
        yield stored


@contextmanager
def delivery_span(
    topic: str,
    message_id: str,
    attempt: int,
    subscription_id: str,
    traceparent: str | None,
    baggage: str | None,
) -> Iterator[tuple[trace.Span, dict[str, str]]]:
    """A CONSUMER span ``{topic} process`` for one attempt, child of the publisher's context.

    Yields the span and the ``traceparent``/``baggage`` headers to send to the receiver.
    """
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    if baggage:
        carrier["baggage"] = baggage
    parent = propagate.extract(carrier) if carrier else Context()
    with (
        _attached(parent),
        _tracer.start_as_current_span(
            f"{topic} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "hookline",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.message.id": message_id,
                "messaging.consumer.group.name": subscription_id,
                "hookline.delivery.attempt": attempt,
            },
        ) as span,
    ):
        outbound: dict[str, str] = {}
        propagate.inject(outbound)
        if "traceparent" not in outbound and traceparent:
            outbound["traceparent"] = traceparent
        if "baggage" not in outbound and baggage:
            outbound["baggage"] = baggage
        yield span, outbound
