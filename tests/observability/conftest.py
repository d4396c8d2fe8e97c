"""An in-memory span exporter behind the process-wide tracer provider.

OpenTelemetry allows one global provider per process, so it is installed on first use and
kept; a switch makes it record only while a test asks for spans, so the rest of the
session does not pile spans up.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class SwitchedProcessor(SimpleSpanProcessor):
    """Exports ended spans only while ``recording``."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


@functools.cache
def _install() -> tuple[InMemorySpanExporter, SwitchedProcessor]:
    exporter = InMemorySpanExporter()
    processor = SwitchedProcessor(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another tracer provider was installed"
    return exporter, processor


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans ended during the test (apps created in the test get server spans too)."""
    exporter, processor = _install()
    exporter.clear()
    processor.recording = True
    try:
        yield exporter
    finally:
        processor.recording = False
        exporter.clear()
