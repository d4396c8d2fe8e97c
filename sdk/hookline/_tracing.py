"""OpenTelemetry, when it is installed: the SDK's hard dependencies are httpx and
standardwebhooks only, so every use goes through here and is a no-op without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import baggage as _baggage
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only without opentelemetry-api
    _propagate = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]
    _baggage = None  # type: ignore[assignment]

AVAILABLE = _propagate is not None
"""Whether opentelemetry-api is importable."""


def inject(headers: dict[str, str]) -> None:
    """Add the current trace context (``traceparent``, ``baggage``) to outgoing headers,
    so hookline stores it with the message and the receiver joins the publisher's trace.
    """
    if _propagate is not None:
        _propagate.inject(headers)


@contextlib.contextmanager
def handler_span(
    name: str, carrier: Mapping[str, str], attributes: dict[str, Any]
) -> Iterator[None]:
    """Run the block in a CONSUMER span whose parent is ``carrier``'s ``traceparent``, with
    its ``baggage`` current; a plain block without OpenTelemetry.
    """
    if _propagate is None or _trace is None or _context is None:
        yield
        return
    parent = _propagate.extract(dict(carrier))
    token = _context.attach(parent)
    try:
        tracer = _trace.get_tracer("hookline.sdk")
        with tracer.start_as_current_span(
            name, kind=_trace.SpanKind.CONSUMER, attributes=attributes
        ):
            yield
    finally:
        _context.detach(token)


def current_baggage() -> dict[str, str]:
    """The baggage entries current in this context (empty without OpenTelemetry)."""
    if _baggage is None:
        return {}
    return {k: str(v) for k, v in _baggage.get_all().items()}


def record_exception(error: BaseException) -> None:
    """Mark the current span failed with ``error`` (a handler that raised)."""
    if _trace is None:
        return
    span = _trace.get_current_span()
    span.record_exception(error)
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))
