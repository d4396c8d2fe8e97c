"""One trace from the publishing request, through each delivery attempt, to the receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.core.errors import ConfigError
from app.observability.tracing import build_tracer_provider, exporter_names
from tests.backends import unique
from tests.harness import eventually, running_hookline
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver, Reply

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def named(spans: list[ReadableSpan], name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.kind == kind]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


@pytest.mark.parametrize("caller", [True, False], ids=["caller-traceparent", "new-trace"])
async def test_publish_request_to_receiver_is_one_trace(
    spans: InMemorySpanExporter, receiver: Receiver, caller: bool
) -> None:
    async with running_hookline("builtin") as hookline:
        topic = unique("traced")
        await hookline.subscribe(topic=topic, url=receiver.url())
        headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"} if caller else {}
        published = await hookline.client.post(
            f"/v1/topics/{topic}/messages", json={"data": {"n": 1}}, headers=headers
        )
        assert published.status_code == 202
        [got] = await receiver.wait_for(1)
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert (await hookline.client.get(probe)).status_code == 200
        await eventually(
            lambda: bool(
                named(list(spans.get_finished_spans()), f"{topic} process", SpanKind.CONSUMER)
            )
        )
    finished = list(spans.get_finished_spans())
    [server] = named(finished, "POST /v1/topics/{topic}/messages", SpanKind.SERVER)
    server_names = {s.name for s in finished if s.kind == SpanKind.SERVER}
    assert server_names == {"POST /v1/subscriptions", server.name}  # probes are not traced
    [producer] = named(finished, f"{topic} publish", SpanKind.PRODUCER)
    [consumer] = named(finished, f"{topic} process", SpanKind.CONSUMER)

    trace_id, server_span = hex_ids(server)
    if caller:
        assert trace_id == CALLER_TRACE
        assert server.parent is not None
        assert f"{server.parent.span_id:016x}" == CALLER_SPAN
    else:
        assert server.parent is None
    assert {hex_ids(s)[0] for s in (server, producer, consumer)} == {trace_id}
    assert producer.parent is not None
    assert producer.parent.span_id == server.context.span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id

    # The receiver joins the trace as a child of the delivery span.
    _, consumer_span = hex_ids(consumer)
    assert got.headers["traceparent"].split("-")[:3] == ["00", trace_id, consumer_span]
    assert got.json()["traceparent"].split("-")[1:3] == [trace_id, hex_ids(producer)[1]]

    message_id = published.json()["id"]
    assert dict(producer.attributes or {}) == {
        "messaging.system": "hookline",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": topic,
        "messaging.message.id": message_id,
    }
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.system"] == "hookline"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == topic
    assert attributes["messaging.message.id"] == message_id
    assert attributes["hookline.delivery.attempt"] == 1
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert consumer.status.status_code == StatusCode.UNSET
    assert server_span != consumer_span


async def test_every_attempt_is_a_span_and_failures_are_errors(
    spans: InMemorySpanExporter, receiver: Receiver
) -> None:
    receiver.script("/hook", Reply(status=500, body=b"boom"))
    async with running_hookline("builtin") as hookline:
        topic = unique("retried")
        await hookline.subscribe(
            topic=topic,
            url=receiver.url(),
            retry={"max_retries": 2, "retry_delay_ms": 10, "jitter": 0},
        )
        await hookline.client.post(
            f"/v1/topics/{topic}/messages/batch", json={"messages": [{"data": 1}, {"data": 2}]}
        )
        await receiver.wait_for(3)
        await eventually(
            lambda: (
                len(named(list(spans.get_finished_spans()), f"{topic} process", SpanKind.CONSUMER))
                == 3
            )
        )
    finished = list(spans.get_finished_spans())
    [producer] = named(finished, f"{topic} publish", SpanKind.PRODUCER)
    assert (producer.attributes or {})["messaging.batch.message_count"] == 2
    consumers = named(finished, f"{topic} process", SpanKind.CONSUMER)
    for span in consumers:
        assert span.parent is not None
        assert span.parent.span_id == producer.context.span_id
    by_message: dict[object, list[ReadableSpan]] = {}
    for span in consumers:
        by_message.setdefault((span.attributes or {})["messaging.message.id"], []).append(span)
    [retried] = [group for group in by_message.values() if len(group) == 2]
    first, second = sorted(retried, key=lambda s: (s.attributes or {})["hookline.delivery.attempt"])
    assert first.status.status_code == StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "http_error"
    assert (first.attributes or {})["http.response.status_code"] == 500
    assert second.status.status_code == StatusCode.UNSET
    assert (second.attributes or {})["hookline.delivery.attempt"] == 2


def test_nothing_is_exported_unless_the_environment_asks() -> None:
    assert exporter_names({}) == []
    assert build_tracer_provider({}) is None
    assert (
        build_tracer_provider({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"})
        is None
    )
    assert build_tracer_provider({"OTEL_TRACES_EXPORTER": "none"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert exporter_names(endpoint) == ["otlp"]
    assert exporter_names({**endpoint, "OTEL_SDK_DISABLED": "true"}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "otlp, console"}) == ["otlp", "console"]


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
            "opentelemetry.exporter.otlp.proto.http",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "opentelemetry.exporter.otlp.proto.grpc",
        ),
        ({"OTEL_TRACES_EXPORTER": "console"}, "opentelemetry.sdk.trace.export"),
    ],
)
def test_exporters_follow_the_standard_variables(env: dict[str, str], exporter: str) -> None:
    provider = build_tracer_provider({**env, "OTEL_BSP_SCHEDULE_DELAY": "10"})
    assert provider is not None
    try:
        [processor] = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
        assert type(processor._batch_processor._exporter).__module__.startswith(exporter)  # type: ignore[attr-defined]
        assert provider.resource.attributes["service.name"] == "hookline"
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter 'jaeger'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
            "is not one of",
        ),
    ],
)
def test_a_wrong_exporter_fails_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_tracer_provider(env)


async def test_hookline_serve_exports_over_otlp_when_asked(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A real process, a real OTLP/HTTP endpoint (the test receiver on 127.0.0.1)."""
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url(""),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "hookline-under-test",
    }
    server = ServeProcess(config, tmp_path / "serve.log", env=env)
    try:
        await asyncio.to_thread(server.wait_ready)
        topic = unique("exported")
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": topic, "url": receiver.url("/hook")}
            )
            assert created.status_code == 201
            assert (
                await client.post(f"/v1/topics/{topic}/messages", json={"data": 1})
            ).status_code == 202
        await receiver.wait_for(1, "/hook")

        def exported() -> tuple[set[str], set[str]]:
            names, services = set(), set()
            for request in receiver.requests("/v1/traces"):
                batch = ExportTraceServiceRequest.FromString(request.body)
                for resource_spans in batch.resource_spans:
                    for attribute in resource_spans.resource.attributes:
                        if attribute.key == "service.name":
                            services.add(attribute.value.string_value)
                    for scope_spans in resource_spans.scope_spans:
                        names.update(span.name for span in scope_spans.spans)
            return names, services

        await eventually(lambda: f"{topic} process" in exported()[0], within_s=20)
        names, services = exported()
        assert {"POST /v1/topics/{topic}/messages", f"{topic} publish", f"{topic} process"} <= names
        assert services == {"hookline-under-test"}
        assert "/healthz" not in " ".join(names)
        assert "readyz" not in " ".join(names)
    finally:
        server.close()


@pytest.mark.parametrize("path", ["/v1/enqueue", "/v1/functions/queue.enqueue"])
async def test_a_body_traceparent_is_continued_when_spans_are_recorded(
    spans: InMemorySpanExporter, receiver: Receiver, path: str
) -> None:
    """The engine's ``{topic, data, traceparent}``: the server span does not see the body,
    so the PRODUCER span's parent is the body's context, and the receiver joins it."""
    async with running_hookline("builtin") as hookline:
        topic = unique("body-traced")
        await hookline.subscribe(topic=topic, url=receiver.url())
        body = {
            "topic": topic,
            "data": 1,
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
            "baggage": "tenant=acme",
        }
        assert (await hookline.client.post(path, json=body)).status_code in (200, 202)
        [got] = await receiver.wait_for(1)
    [producer] = named(list(spans.get_finished_spans()), f"{topic} publish", SpanKind.PRODUCER)
    assert hex_ids(producer)[0] == CALLER_TRACE
    assert producer.parent is not None
    assert f"{producer.parent.span_id:016x}" == CALLER_SPAN
    assert got.headers["traceparent"].split("-")[1] == CALLER_TRACE
    assert got.headers["baggage"] == "tenant=acme"
