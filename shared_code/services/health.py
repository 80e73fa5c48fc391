"""Health: is each dependency reachable right now, and how long did it take to say so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from azure.cosmos.aio import DatabaseProxy
from azure.eventhub.aio import EventHubProducerClient
from azure.storage.blob.aio import ContainerClient
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import system_connection
from shared_code.metrics import BacklogSnapshot

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
class OutboxHealth:
    pending: int
    dead: int
    oldest_pending_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "dead": self.dead,
            "oldestPendingSeconds": None
            if self.oldest_pending_seconds is None
            else round(self.oldest_pending_seconds, 1),
        }


@dataclass(frozen=True)
class HealthReport:
    status: OverallStatus
    components: dict[str, ComponentHealth]
    outbox: OutboxHealth | None
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "components": {name: c.to_json() for name, c in self.components.items()},
            "outbox": self.outbox.to_json() if self.outbox else None,
        }
        if self.reasons:
            body["reasons"] = list(self.reasons)
        return body


@dataclass(frozen=True)
class HealthProbes:
    """What the health check asks: built by the composition root (shared_code.bootstrap.health_probes)."""

    pg_pool: AsyncConnectionPool
    cosmos_db: DatabaseProxy
    eventhubs: EventHubProducerClient | None  # None: publishing is off
    media_container: ContainerClient
    outbox_lag_threshold_seconds: float


async def _probe(check: Callable[[], Awaitable[object]]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return ComponentHealth("down", detail=f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s")
    except Exception as exc:  # any failure of the dependency means "down"; the type says which
        return ComponentHealth("down", detail=f"{type(exc).__name__}: {_first_line(exc)}")
    return ComponentHealth("ok", latency_ms=(time.perf_counter() - started) * 1000)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


async def check_postgres(pool: AsyncConnectionPool) -> ComponentHealth:
    async def select_one() -> None:
        async with pool.connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            await conn.execute("SELECT 1")

    return await _probe(select_one)


async def check_cosmos(db: DatabaseProxy) -> ComponentHealth:
    return await _probe(db.read)


async def check_eventhubs(producer: EventHubProducerClient | None) -> ComponentHealth:
    if producer is None:
        return ComponentHealth("disabled", detail="no Event Hubs connection configured; publishing is off")
    return await _probe(producer.get_eventhub_properties)


async def check_blob(container: ContainerClient) -> ComponentHealth:
    return await _probe(container.get_container_properties)


# Pending and dead events and the age of the oldest pending one: the health check and the
# outbox gauges (shared_code/metrics.py) read the same numbers. Cheap: the condition is the one of
# the partial index outbox_unfinished_by_aggregate, so published and skipped events are never read.
OUTBOX_BACKLOG_SQL = """SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                               count(*) FILTER (WHERE status = 'dead') AS dead,
                               extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8
                                   AS oldest_pending_seconds
                        FROM outbox WHERE status IN ('pending', 'dead')"""


async def read_outbox_health(conn: AsyncConnection[Any]) -> OutboxHealth:
    health = await fetch_one(conn, OutboxHealth, OUTBOX_BACKLOG_SQL)
    assert health is not None  # an aggregate always answers one row
    return health


_OPEN_CHANGE_FEED_FAILURES_SQL = "SELECT count(*) FROM change_feed_failures WHERE replayed_at IS NULL"


async def read_backlog(pool: AsyncConnectionPool) -> BacklogSnapshot:
    """What the backlog gauges report: the outbox numbers the health check reports, and the open
    change-feed failures; one connection, two index-backed aggregates."""
    async with system_connection(pool, wait_seconds=CHECK_TIMEOUT_SECONDS) as conn:
        outbox = await read_outbox_health(conn)
        cur = await conn.execute(_OPEN_CHANGE_FEED_FAILURES_SQL)
        row = await cur.fetchone()
    assert row is not None
    return BacklogSnapshot(outbox=outbox, open_change_feed_failures=int(row[0]))


async def outbox_health(pool: AsyncConnectionPool) -> OutboxHealth | None:
    """Pending and dead events and the age of the oldest pending one; None if it cannot be read."""
    try:
        async with system_connection(pool, wait_seconds=CHECK_TIMEOUT_SECONDS) as conn:
            return await read_outbox_health(conn)
    except Exception:
        return None


async def check_health(probes: HealthProbes) -> HealthReport:
    postgres, cosmos, eventhubs, blob, outbox = await asyncio.gather(
        check_postgres(probes.pg_pool),
        check_cosmos(probes.cosmos_db),
        check_eventhubs(probes.eventhubs),
        check_blob(probes.media_container),
        outbox_health(probes.pg_pool),
    )
    components = {"postgres": postgres, "cosmos": cosmos, "eventHubs": eventhubs, "blob": blob}
    status, reasons = overall_status(components, outbox, probes.outbox_lag_threshold_seconds)
    return HealthReport(status=status, components=components, outbox=outbox, reasons=reasons)


def overall_status(
    components: dict[str, ComponentHealth], outbox: OutboxHealth | None, lag_threshold_seconds: float
) -> tuple[OverallStatus, tuple[str, ...]]:
    """Down without the canonical store (nothing can be written). Degraded without a projection store,
    or when the outbox lags (its oldest pending event is older than the threshold) or holds dead events."""
    if components["postgres"].status == "down":
        return "down", ("postgres is down: writes fail",)
    reasons = [f"{name} is down" for name, c in components.items() if c.status == "down"]
    if outbox is not None:
        if outbox.dead:
            reasons.append(f"{outbox.dead} dead outbox event(s): requeue them after fixing the cause")
        if (
            outbox.oldest_pending_seconds is not None
            and outbox.oldest_pending_seconds > lag_threshold_seconds
        ):
            reasons.append(
                f"the oldest pending outbox event is {outbox.oldest_pending_seconds:.0f} s old "
                f"(threshold {lag_threshold_seconds:.0f} s): is the relay running?"
            )
    return ("degraded" if reasons else "ok"), tuple(reasons)
