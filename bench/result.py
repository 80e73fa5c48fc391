"""What a scenario reports: its parameters, figures, same-run baselines and ratios, each target as met
or missed, notes (what bounds a missed target and what would lift it), and its latency histograms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.histogram import LatencyHistogram


@dataclass
class Target:
    what: str  # e.g. "rate at concurrency 8 vs direct psycopg"
    target: str  # e.g. "≥ 50 %"
    measured: str  # e.g. "63 %"
    met: bool | None  # None: reported, no target

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "target": self.target, "measured": self.measured, "met": self.met}


@dataclass
class ScenarioResult:
    name: str
    what: str
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    histograms: dict[str, LatencyHistogram] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def check(self, what: str, target: str, measured: str, met: bool | None) -> None:
        self.targets.append(Target(what, target, measured, met))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "parameters": self.parameters,
            "figures": _clean(self.figures),
            "baselines": _clean(self.baselines),
            "ratios": {k: round(v, 3) for k, v in self.ratios.items()},
            "targets": [t.as_dict() for t in self.targets],
            "notes": self.notes,
            "resources": self.resources,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "histograms": {
                name: {"summary": h.summary(), "hdr_base64": h.encoded()}
                for name, h in self.histograms.items()
            },
        }


def _clean(value: Any) -> Any:
    """Drop private keys (live objects such as histograms) from nested figures."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def ms(value: float) -> str:
    return f"{value:.1f} ms"
