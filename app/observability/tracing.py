"""Exporting traces: an OpenTelemetry SDK set up from the standard ``OTEL_*`` variables.

Nothing is exported unless the environment asks for it, the way every OpenTelemetry SDK
behaves: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``; comma-separated), or
just an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``), which
implies ``otlp``. The SDK itself reads the rest: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, and the exporter's
``OTEL_EXPORTER_OTLP_*`` (headers, timeout, protocol). The OTLP exporter is the optional
``hookline[otlp]`` extra. Spans are made through the OpenTelemetry API everywhere else
(:mod:`app.core.tracing`), so without an SDK they cost next to nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from app import __version__
from app.core.errors import ConfigError
from app.core.tracing import tracing_enabled

OTLP_EXPORTERS = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}
UNTRACED_PATHS = ",".join(
    rf"^[a-z]+://[^/]+/{path}(\?.*)?$" for path in ("healthz", "readyz", "metrics")
)
"""Probes and scrapes (frequent, and worthless as traces); regexes over the full URL,
anchored so a topic or subscription called ``metrics`` is still traced.
"""


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """Which exporters the environment asks for (empty: export nothing)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    return [name for name in names if name != "none"]


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    module_name = OTLP_EXPORTERS.get(protocol)
    if module_name is None:
        known = ", ".join(OTLP_EXPORTERS)
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not one of {known}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER: otlp needs the OTLP exporter: pip install 'hookline[otlp]'"
        ) from exc
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def build_tracer_provider(env: Mapping[str, str]) -> TracerProvider | None:
    """A tracer provider exporting where ``env`` says, or None when it asks for nothing.

    Raises :class:`ConfigError` for an unknown exporter or a missing OTLP package, so a
    typo fails at start instead of silently exporting nothing.
    """
    names = exporter_names(env)
    if not names:
        return None
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            exporters.append(_otlp_exporter(env))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (known: otlp, console, none)"
            )
    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "hookline"}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install the provider of :func:`build_tracer_provider` as the global one (once per
    process: ``hookline serve`` calls it before building the app).
    """
    provider = build_tracer_provider(os.environ if env is None else env)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def instrument(app: FastAPI) -> None:
    """Add server spans for API requests, when spans are recorded at all.

    Without an SDK the middleware would only add work to every request for spans that
    nobody keeps.
    """
    if tracing_enabled():
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"]
        )
