"""Health: is each dependency reachable right now, and how long did it take to say so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from shared_code.app_context import AppContext

ComponentStatus = Literal["ok", "down", "disabled"]
OverallStatus = Literal["ok", "degraded", "down"]

# A health probe must answer fast even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class ComponentHealth:
    status: ComponentStatus
    latency_ms: float | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status}
        if self.latency_ms is not None:
            body["latencyMs"] = round(self.latency_ms, 1)
        if self.detail:
            body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class HealthReport:
    status: OverallStatus
    components: dict[str, ComponentHealth]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "components": {name: c.to_json() for name, c in self.components.items()},
        }


async def _probe(check: Callable[[], Awaitable[object]]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return ComponentHealth("down", detail=f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s")
    except Exception as exc:  # any failure of the dependency means "down"; the type says which
        return ComponentHealth("down", detail=f"{type(exc).__name__}: {_first_line(exc)}")
    return ComponentHealth("ok", latency_ms=(time.perf_counter() - started) * 1000)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


async def check_postgres(ctx: AppContext) -> ComponentHealth:
    async def select_one() -> None:
        async with ctx.pg_pool.connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            await conn.execute("SELECT 1")

    return await _probe(select_one)


async def check_cosmos(ctx: AppContext) -> ComponentHealth:
    return await _probe(ctx.cosmos_db.read)


async def check_eventhubs(ctx: AppContext) -> ComponentHealth:
    producer = ctx.eventhubs
    if producer is None:
        return ComponentHealth("disabled", detail="no Event Hubs connection configured; publishing is off")
    return await _probe(producer.get_eventhub_properties)


async def check_blob(ctx: AppContext) -> ComponentHealth:
    container = ctx.blob_service.get_container_client(ctx.settings.media_container)
    return await _probe(container.get_container_properties)


async def check_health(ctx: AppContext) -> HealthReport:
    postgres, cosmos, eventhubs, blob = await asyncio.gather(
        check_postgres(ctx), check_cosmos(ctx), check_eventhubs(ctx), check_blob(ctx)
    )
    components = {"postgres": postgres, "cosmos": cosmos, "eventHubs": eventhubs, "blob": blob}
    return HealthReport(status=overall_status(components), components=components)


def overall_status(components: dict[str, ComponentHealth]) -> OverallStatus:
    """Down without the canonical store (nothing can be written); degraded without a projection store."""
    if components["postgres"].status == "down":
        return "down"
    if any(c.status == "down" for c in components.values()):
        return "degraded"
    return "ok"
