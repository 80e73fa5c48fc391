"""Reading shared_code/metrics.py back: an in-memory SDK reader behind the module's instruments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

from shared_code import metrics


@contextmanager
def in_memory_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """Fresh instruments on an SDK meter with an in-memory reader (the global provider is left alone)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "_metrics", metrics.ChorusMetrics(provider.get_meter(metrics.METER_NAME)))
    try:
        yield reader
    finally:
        provider.shutdown()


def points(data: MetricsData | None) -> dict[str, list[Any]]:
    """Metric name -> its data points (nothing recorded: no data at all)."""
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


BACKLOG_GAUGES = (
    metrics.OUTBOX_PENDING,
    metrics.OUTBOX_DEAD,
    metrics.OUTBOX_OLDEST_PENDING_AGE,
    metrics.CHANGE_FEED_OPEN_FAILURES,
)


def backlog_gauges(data: MetricsData | None) -> dict[str, float]:
    found = points(data)
    return {name: found[name][0].value for name in BACKLOG_GAUGES if name in found}
