"""The handler's span continues the publisher's trace, through a real hookline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hookline import AsyncClient, MessageContext, Triggers
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.observability.conftest import _install
from tests.process import ServeProcess, free_port, until
from tests.sdk.conftest import serving


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The session's in-memory exporter (one tracer provider per process), recording."""
    exporter, processor = _install()
    exporter.clear()
    processor.recording = True
    try:
        yield exporter
    finally:
        processor.recording = False
        exporter.clear()


async def test_handler_span_is_a_child_of_the_publishers_trace(
    hookline_server: ServeProcess, spans: InMemorySpanExporter
) -> None:
    port = free_port()
    triggers = Triggers(hookline_server.url, f"http://127.0.0.1:{port}")
    seen: list[dict[str, Any]] = []

    @triggers.queue("traced-handler", topic="traced.topic")
    def handle(data: Any, ctx: MessageContext) -> None:  # sync: the context crosses the thread
        current = trace.get_current_span().get_span_context()
        seen.append(
            {
                "trace_id": current.trace_id,
                "span_id": current.span_id,
                "tenant": baggage.get_baggage("tenant"),
                "ctx_baggage": ctx.baggage,
                "traceparent": ctx.headers["traceparent"],
            }
        )

    tracer = trace.get_tracer("sdk-test")
    async with serving(triggers.asgi_app(), port), AsyncClient(hookline_server.url) as client:
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with tracer.start_as_current_span("create-user") as publisher:
                await client.call("queue.enqueue", {"topic": "traced.topic", "data": {"id": 1}})
        finally:
            context.detach(token)

        async def handled() -> bool:
            return bool(seen)

        await until(handled, what="the handler ran")

    got = seen[0]
    publisher_ctx = publisher.get_span_context()
    assert got["trace_id"] == publisher_ctx.trace_id  # one trace, publisher to handler
    assert got["tenant"] == "acme"
    assert got["ctx_baggage"] == {"tenant": "acme"}
    [handler_span] = [s for s in spans.get_finished_spans() if s.name == "traced.topic handle"]
    assert handler_span.context.span_id == got["span_id"]
    assert handler_span.kind == trace.SpanKind.CONSUMER
    assert handler_span.parent is not None
    assert handler_span.parent.is_remote
    # its parent is the delivery named in the request's traceparent
    assert f"{handler_span.parent.span_id:016x}" == got["traceparent"].split("-")[2]
    assert handler_span.attributes is not None
    assert handler_span.attributes["messaging.consumer.group.name"] == "traced-handler"
