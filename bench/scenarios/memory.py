"""memory: peak RSS of the local host during the run (sampled every 0.25 s from the harness).

Two figures: the Python host process alone (HTTP functions, the relay timer, the change-feed functions),
and the host with every service it started (PostgreSQL and its backends, the Node Cosmos emulator,
Azurite, the Event Hubs stand-in). The Cosmos emulator keeps every document in memory, so the second
figure grows with the data a run writes.
"""

from __future__ import annotations

from bench.context import BenchContext
from bench.result import ScenarioResult

NAME = "memory"


async def run(ctx: BenchContext) -> ScenarioResult:
    result = ScenarioResult(NAME, "peak RSS of the local host during the run")
    samples = list(ctx.sampler.samples)
    if not samples:
        result.error = "no resource samples were taken"
        return result
    host_peak = max(samples, key=lambda s: s.host_rss_mb)
    tree_peak = max(samples, key=lambda s: s.tree_rss_mb)
    result.parameters = {"sample_interval_s": ctx.sampler.interval, "samples": len(samples)}
    result.figures = {
        "host_peak_rss_mb": host_peak.host_rss_mb,
        "host_peak_at_s": host_peak.t,
        "host_rss_at_start_mb": samples[0].host_rss_mb,
        "host_rss_at_end_mb": samples[-1].host_rss_mb,
        "tree_peak_rss_mb": tree_peak.tree_rss_mb,
        "tree_peak_at_s": tree_peak.t,
        "load1_max": round(max(s.load1 for s in samples), 2),
    }
    result.check("peak RSS, host process", "reported", f"{host_peak.host_rss_mb:.0f} MiB", None)
    result.check("peak RSS, host + services", "reported", f"{tree_peak.tree_rss_mb:.0f} MiB", None)
    return result
