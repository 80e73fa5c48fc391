"""Logs and traces: a correlation id from the request follows the event through the outbox,
Event Hubs and every change-feed handler.

With APPLICATIONINSIGHTS_CONNECTION_STRING set, OpenTelemetry exports traces, logs and
metrics (shared_code/metrics.py) to Application Insights; without it, logs stay local and spans
are no-ops, and metrics are too unless OTEL_METRICS_EXPORTER=console prints them (one line per
data point, every OTEL_METRIC_EXPORT_INTERVAL ms, 60000 by default).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared_code.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

tracer = trace.get_tracer("chorus")
_configured = False

# W3C Trace Context, version 00: version-traceid-parentid-flags, lowercase hex only, neither id all
# zeros. Anything else is ignored (not echoed into logs, the outbox or Event Hubs): the request
# starts a trace of its own, as the recommendation says a receiver must.
_TRACEPARENT = re.compile(r"00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
# What a correlation id may be once it comes from a document or a message rather than from us: a
# W3C trace id (32 hex) or a UUID, nothing longer, nothing that could break a log line.
_CORRELATION_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


@dataclass(frozen=True)
class TraceContext:
    """The request's trace: its W3C `traceparent` (the caller's if valid, else a fresh one) and the
    correlation id (its trace id) that logs, the outbox and Event Hubs carry."""

    traceparent: str
    correlation_id: str


def trace_context(traceparent_header: str | None) -> TraceContext:
    """The caller's trace if its `traceparent` is valid, else a fresh trace (a new trace id and a
    random parent id), so nothing of an invalid header travels on."""
    value = (traceparent_header or "").strip()
    match = _TRACEPARENT.fullmatch(value)
    if match:
        return TraceContext(traceparent=value, correlation_id=match.group(1))
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return TraceContext(traceparent=f"00-{trace_id}-{parent_id}-01", correlation_id=trace_id)


def bounded_correlation_id(value: object) -> str | None:
    """A correlation id read back from a document or an event, if it has the shape we write; else
    None (logged without one rather than with something a writer other than us put there)."""
    return value if isinstance(value, str) and _CORRELATION_ID.fullmatch(value) else None


class CorrelationFilter(logging.Filter):
    """Puts `[correlation id]` in front of messages that carry one (`extra={"correlationId": ...}`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        correlation_id = getattr(record, "correlationId", None)
        if correlation_id and not getattr(record, "_chorus_tagged", False):
            record.msg = f"[{correlation_id}] {record.msg}"
            record._chorus_tagged = True
        return True


def configure_observability(settings: Settings) -> None:
    """Once per process: log level, the correlation tag, and Azure Monitor if configured."""
    global _configured
    if _configured:
        return
    _configured = True
    chorus = logging.getLogger("chorus")
    chorus.setLevel(settings.log_level)
    chorus.addFilter(CorrelationFilter())
    if settings.applicationinsights_connection_string is not None:
        from azure.identity import ManagedIdentityCredential
        from azure.monitor.opentelemetry import configure_azure_monitor

        # Application Insights accepts only Entra-signed telemetry (local auth is off in infra/);
        # AZURE_CLIENT_ID names the app's user-assigned identity.
        client_id = os.environ.get("AZURE_CLIENT_ID")
        configure_azure_monitor(
            connection_string=settings.applicationinsights_connection_string.get_secret_value(),
            logger_name="chorus",
            credential=ManagedIdentityCredential(client_id=client_id) if client_id else None,
        )
        chorus.info("exporting traces, logs and metrics to Application Insights")
    elif os.environ.get("OTEL_METRICS_EXPORTER") == "console":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(ConsoleMetricExporter(formatter=metric_lines))
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        chorus.info("printing metrics to the console (OTEL_METRICS_EXPORTER=console)")


def metric_lines(data: MetricsData) -> str:
    """One line per data point (`name{attributes} value`), instead of the SDK's pretty JSON."""
    # The metrics SDK (about 5 MiB per process) loads only where metrics are exported.
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

    lines = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = ",".join(f"{k}={v!s}" for k, v in sorted((point.attributes or {}).items()))
                    if isinstance(point, NumberDataPoint):
                        value = f"{point.value:g}"
                    elif isinstance(point, HistogramDataPoint):
                        value = f"count={point.count} sum={point.sum:g} min={point.min:g} max={point.max:g}"
                    else:
                        value = f"count={point.count} sum={point.sum:g}"
                    lines.append(f"metric {metric.name}{{{labels}}} {value}\n")
    return "".join(lines)


@contextmanager
def span_from(name: str, traceparent: str | None, attributes: dict[str, Any]) -> Iterator[Span]:
    """A span continuing the trace of `traceparent` (the request that caused the work), if any."""
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    with tracer.start_as_current_span(
        name, context=parent, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as span:
        try:
            yield span
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


def start_linked_span(name: str, traceparent: str | None, attributes: dict[str, Any]) -> Span:
    """A span (ended by the caller) in the trace of `traceparent`: for work handled in batches,
    where one `with` block per item does not fit."""
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    return tracer.start_span(
        name, context=parent, attributes={k: v for k, v in attributes.items() if v is not None}
    )


def end_span(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
