"""Ratios measured in alternating rounds: app, baseline, app, baseline, … (issue 13: "each ratio alternates
app and baseline in at least three short rounds and reports the median with its spread").

A shared machine's speed drifts over minutes (other users, autovacuum, the emulator's heap); measuring the
app for a minute and then its baseline for a minute puts that drift into the ratio. Short alternating
rounds put both sides under the same conditions, and the spread across rounds shows how much drift
there was. Pure arithmetic: no I/O here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ROUNDS = 3


@dataclass(frozen=True)
class Spread:
    """The median of per-round values with their range (min–max: with three rounds, the IQR would be
    the same two points as the range in all but name)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one round")
        return cls(tuple(float(v) for v in values))

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, unit: Callable[[float], str]) -> str:
        """e.g. `63 % (range 58–71 %, 3 rounds)`."""
        rounds = f"{len(self.values)} round{'s' if len(self.values) != 1 else ''}"
        if len(self.values) == 1:
            return f"{unit(self.median)} ({rounds})"
        return f"{unit(self.median)} (range {unit(self.low)}–{unit(self.high)}, {rounds})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 4),
            "min": round(self.low, 4),
            "max": round(self.high, 4),
            "rounds": [round(v, 4) for v in self.values],
        }


def ratios(app: Sequence[float], baseline: Sequence[float]) -> Spread:
    """Per-round app / baseline (a round whose baseline is 0 counts as ratio 0: a failed baseline never
    flatters the app)."""
    if len(app) != len(baseline):
        raise ValueError(f"{len(app)} app rounds against {len(baseline)} baseline rounds")
    return Spread.of([a / b if b else 0.0 for a, b in zip(app, baseline, strict=True)])


def times(value: float) -> str:
    return f"{value:.2f} ×"


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"
