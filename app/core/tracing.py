"""W3C trace-context propagation: from the publisher, through storage, to the receiver.

Publishing continues the caller's ``traceparent``/``baggage`` (request headers, else the
current span) and stores them with the message; a message published without one starts a
new trace, so every message carries a ``traceparent``. Each delivery attempt continues that
trace and sends the headers on, so the receiver joins the same trace.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

_tracer = trace.get_tracer("hookline")


_TRACEPARENT = re.compile(
    r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"
)
MAX_BAGGAGE_LENGTH = 8192
"""W3C Baggage: a propagator must carry at least 8192 bytes; hookline carries no more."""

_SAMPLED = "01"
"""Trace flags of a trace hookline starts. OpenTelemetry's default sampler
(``parentbased_always_on``) records a new root, so a started trace says "sampled" with or
without an SDK: a receiver's default sampler then records its part as well."""


def is_valid_traceparent(value: str) -> bool:
    """A W3C ``traceparent``: lowercase hex, version not ``ff``, trace and span ids not zero."""
    return _TRACEPARENT.match(value) is not None


def new_traceparent() -> str:
    """A fresh, sampled W3C ``traceparent`` (random trace and span ids), no SDK involved.

    The ids come from :func:`random.getrandbits`, as the OpenTelemetry SDK's own
    ``RandomIdGenerator`` makes them: trace ids must be unique, not secret, and reading
    ``os.urandom`` (a system call) was the largest single cost of a small publish.
    """
    while True:
        trace_id = random.getrandbits(128)
        span_id = random.getrandbits(64)
        if trace_id and span_id:
            return f"00-{trace_id:032x}-{span_id:016x}-{_SAMPLED}"


def caller_context(carrier: Mapping[str, str]) -> dict[str, str]:
    """The caller's ``traceparent`` (when well formed, else a new trace) and ``baggage``.

    Used when no tracer provider is installed: the same result as extracting and
    re-injecting through OpenTelemetry (whose default sampler starts a sampled trace when
    the caller sent none), at a fraction of the cost on the publish path.
    """
    traceparent = carrier.get("traceparent", "").strip().lower()
    if not is_valid_traceparent(traceparent):
        traceparent = new_traceparent()
    stored = {"traceparent": traceparent}
    baggage = carrier.get("baggage", "").strip()
    if baggage and len(baggage) <= MAX_BAGGAGE_LENGTH:
        stored["baggage"] = baggage
    return stored


def _continues(current: trace.SpanContext, carrier: Mapping[str, str]) -> bool:
    """Whether the current span belongs to the trace ``carrier`` names (or names none).

    The API's server span continues the caller's ``traceparent`` header; a trace context
    given in a request body is not seen by it, and then the body's context is the parent.
    """
    traceparent = carrier.get("traceparent", "").strip().lower()
    if not is_valid_traceparent(traceparent):
        return True
    return traceparent.split("-")[1] == f"{current.trace_id:032x}"


def trace_headers(traceparent: str | None, baggage: str | None) -> dict[str, str]:
    """The W3C headers for a stored trace context (empty parts left out)."""
    headers = {}
    if traceparent:
        headers["traceparent"] = traceparent
    if baggage:
        headers["baggage"] = baggage
    return headers


_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""A provider named by the environment (auto-instrumentation), read once at start."""
_UNSET = object()
_seen_provider = False


def tracing_enabled() -> bool:
    """True once some SDK provider is installed (by hookline, a test or auto-instrumentation):
    spans are then worth making; without one they would only cost time.

    Called for every publish and delivery: the API's ``get_tracer_provider()`` looks the
    environment up each time it finds none (~3 µs), so the answer is taken from the API's
    global when it is there (a provider, once set, stays), from the public call otherwise.
    """
    global _seen_provider  # noqa: PLW0603 - a latch: once True, always True
    if _seen_provider:
        return True
    installed = getattr(trace, "_TRACER_PROVIDER", _UNSET)
    if installed is None and not _ENV_PROVIDER:
        return False
    _seen_provider = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _seen_provider


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

    The parent is the current span when there is one continuing ``carrier`` (the API
    request's server span, which already continues the caller's headers), else ``carrier``.
    The yielded dict holds ``traceparent`` (and ``baggage``) of the span, or of the caller
    when no tracer provider records spans (a new trace when the caller sent none), so every
    message carries a trace context either way.
    """
    if not tracing_enabled():
        yield caller_context(carrier)
        return
    current = trace.get_current_span().get_span_context()
    if (current.is_valid and _continues(current, carrier)) or not carrier:
        parent = context_api.get_current()
    else:
        parent = propagate.extract(dict(carrier))
    with (
        _attached(parent),
        _tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "hookline",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": topic,
            },
        ),
    ):
        stored: dict[str, str] = {}
        propagate.inject(stored)
        baggage = carrier.get("baggage", "").strip()
        if "baggage" not in stored and baggage and len(baggage) <= MAX_BAGGAGE_LENGTH:
            stored["baggage"] = baggage
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
    Without a tracer provider (nothing exported) the stored headers are passed on as they
    are, skipping the OpenTelemetry machinery on the hot path: the receiver still joins
    the publisher's trace.
    """
    carrier = trace_headers(traceparent, baggage)
    if not tracing_enabled():
        yield trace.INVALID_SPAN, carrier
        return
    parent = propagate.extract(carrier) if carrier else Context()
    with (
        _attached(parent),
        _tracer.start_as_current_span(
            f"{topic} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "hookline",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
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


def annotate_publish(message_ids: list[str]) -> None:
    """Put what a publish produced on its (current) PRODUCER span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    if len(message_ids) == 1:
        span.set_attribute("messaging.message.id", message_ids[0])
    else:
        span.set_attribute("messaging.batch.message_count", len(message_ids))


def annotate_attempt(
    span: trace.Span, status: int | None, reason: str, ok: bool, url_host: str | None
) -> None:
    """Put one attempt's outcome on its CONSUMER span; a failed attempt is an error."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if url_host:
        span.set_attribute("server.address", url_host)
    span.set_attribute("hookline.delivery.outcome", reason)
    if not ok:
        span.set_attribute("error.type", reason)
        span.set_status(Status(StatusCode.ERROR, reason))
