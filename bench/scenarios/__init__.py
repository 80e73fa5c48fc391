"""The scenarios, in the order a run executes them (memory last: it reports the whole run)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.context import BenchContext
from bench.result import ScenarioResult
from bench.scenarios import (
    celebrity,
    cost_model,
    fanout,
    feed_read,
    freshness,
    memory,
    messaging,
    reaction_storm,
    relay_drain,
    search,
    write_path,
)

Scenario = Callable[[BenchContext], Awaitable[ScenarioResult]]

SCENARIOS: dict[str, Scenario] = {
    module.NAME: module.run
    for module in (
        write_path,
        relay_drain,
        freshness,
        fanout,
        feed_read,
        reaction_storm,
        celebrity,
        search,
        messaging,
        cost_model,
        memory,
    )
}
