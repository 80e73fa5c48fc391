"""Metrics through the OpenTelemetry API: Application Insights in Azure (azure-monitor-opentelemetry
installs the exporter when APPLICATIONINSIGHTS_CONNECTION_STRING is set); no-ops otherwise."""

from __future__ import annotations

from opentelemetry import metrics

meter = metrics.get_meter("chorus")

# A read answered from PostgreSQL, or refused with 503, because Cosmos DB was away.
_degraded_reads = meter.create_counter(
    "chorus.reads.degraded",
    unit="{read}",
    description="Reads served without the Cosmos DB projections (from PostgreSQL, or refused with 503)",
)


def record_degraded_read(route: str) -> None:
    """One read on `route` (e.g. "feed") that Cosmos DB could not serve."""
    _degraded_reads.add(1, {"route": route})
