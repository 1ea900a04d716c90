"""OpenTelemetry setup: one tracer provider per service, so each span carries its own service.name even
when several services share a process (embedded mode). Spans leave by OTLP when the standard
OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise they are recorded nowhere and cost almost nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_providers: dict[str, TracerProvider] = {}


def _otlp_exporter() -> SpanExporter | None:
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer_for(service: str, exporter: SpanExporter | None = None) -> trace.Tracer:
    """A tracer whose spans carry service.name = `service`. One provider per service name."""
    provider = _providers.get(service)
    if provider is None:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = exporter or _otlp_exporter()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
        _providers[service] = provider
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(provider)
    return provider.get_tracer("emoomni")


def shutdown_tracing() -> None:
    """Flush and close every provider (spans still buffered are exported)."""
    for provider in _providers.values():
        provider.force_flush(timeout_millis=5000)
        provider.shutdown()
    _providers.clear()


def headers_with_trace(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Carrier for NATS headers / gRPC metadata holding the current W3C trace context."""
    carrier: dict[str, str] = dict(extra or {})
    inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str] | None) -> otel_context.Context:
    return extract(dict(carrier or {}))
