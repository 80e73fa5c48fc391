"""Latency histograms: HdrHistogram (the `hdrhistogram` package), microsecond resolution.

Every request is recorded; percentiles come from the histogram, never from averages. The encoded
histogram is kept in the results so a run can be re-analysed later.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

# 1 µs to 10 minutes at 3 significant digits (0.1 % value precision).
LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
# The percentiles every summary reports, and the ones plotted.
REPORTED = (50.0, 90.0, 99.0, 99.9)
PLOTTED = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)


class LatencyHistogram:
    def __init__(self) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_seconds(self, seconds: float) -> None:
        self._h.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000))))

    def merge(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        if self.count == 0:
            return float("nan")
        if percentile >= 100.0:
            return float(self._h.get_max_value()) / 1000.0
        return float(self._h.get_value_at_percentile(percentile)) / 1000.0

    def summary(self) -> dict[str, Any]:
        """count, p50/p90/p99/p99.9 and max in milliseconds (and the mean, for reference only)."""
        if self.count == 0:
            return {"count": 0}
        return {
            "count": self.count,
            "p50_ms": round(self.percentile_ms(50.0), 3),
            "p90_ms": round(self.percentile_ms(90.0), 3),
            "p99_ms": round(self.percentile_ms(99.0), 3),
            "p99_9_ms": round(self.percentile_ms(99.9), 3),
            "max_ms": round(self.percentile_ms(100.0), 3),
            "mean_ms": round(self._h.get_mean_value() / 1000.0, 3),
            "min_ms": round(self._h.get_min_value() / 1000.0, 3),
        }

    def curve(self) -> list[tuple[float, float]]:
        """(percentile, ms) points for the percentile plot."""
        return [(p, self.percentile_ms(p)) for p in PLOTTED] if self.count else []

    def encoded(self) -> str:
        """The histogram in HdrHistogram's standard compressed, base64 form."""
        return self._h.encode().decode() if self.count else ""
