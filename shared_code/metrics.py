"""Operational metrics through the OpenTelemetry API: what an operator watches, and what the alert
rules and the workbook in infra/ read (docs/observability.md says what each means and what to do).

The names below are the one list of metric names: tests/unit/test_metrics.py checks that infra/
names no other. With APPLICATIONINSIGHTS_CONNECTION_STRING set, configure_azure_monitor
(shared_code/observability.py) installs the MeterProvider and every instrument lands in
Application Insights' customMetrics; locally the calls are no-ops unless OTEL_METRICS_EXPORTER=console.

- Counters and the lag histogram are recorded where things happen (one call each: the relay, the
  change-feed functions, the degraded read paths).
- The backlog gauges (outbox pending/dead/oldest age, open change-feed failures) are observed when
  the exporter collects, from one cached snapshot: PostgreSQL is asked at most once per
  BACKLOG_MAX_AGE_SECONDS per process, however many gauges and readers there are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

log = logging.getLogger("chorus.metrics")

METER_NAME = "chorus"

OUTBOX_PENDING = "chorus.outbox.pending"
OUTBOX_DEAD = "chorus.outbox.dead"
OUTBOX_OLDEST_PENDING_AGE = "chorus.outbox.oldest_pending_age_seconds"
RELAY_EVENTS_PUBLISHED = "chorus.relay.events_published"
CHANGE_FEED_LAG = "chorus.change_feed.lag_seconds"
CHANGE_FEED_OPEN_FAILURES = "chorus.change_feed.open_failures"
DEGRADED_READS = "chorus.reads.degraded"

METRIC_NAMES = frozenset(
    {
        OUTBOX_PENDING,
        OUTBOX_DEAD,
        OUTBOX_OLDEST_PENDING_AGE,
        RELAY_EVENTS_PUBLISHED,
        CHANGE_FEED_LAG,
        CHANGE_FEED_OPEN_FAILURES,
        DEGRADED_READS,
    }
)

# The backlog is read from PostgreSQL at most this often per process (the Application Insights
# exporter collects every 60 s by default; a console exporter may collect far more often).
BACKLOG_MAX_AGE_SECONDS = 15.0
# Change-feed lag buckets, seconds: sub-second when caught up, minutes to hours in a replay.
LAG_BUCKETS_SECONDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)

# A backlog read gives up after this long (as long as a health check waits for a dependency).
BACKLOG_READ_TIMEOUT_SECONDS = 3.0


class OutboxBacklog(Protocol):
    """The outbox numbers the gauges report (services.health.OutboxHealth is one)."""

    @property
    def pending(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def oldest_pending_seconds(self) -> float | None: ...


@dataclass(frozen=True)
class BacklogSnapshot:
    outbox: OutboxBacklog
    open_change_feed_failures: int


class BacklogCache:
    """The last backlog snapshot, read again when older than `max_age_seconds`.

    Gauge callbacks run on the exporter's thread, but the pool belongs to the worker's event
    loop: a stale snapshot is read on that loop and waited for (at most `timeout_seconds`). A read
    that fails is cached too (as no value), so an unreachable database is not asked again on every
    callback; the gauges then report nothing rather than an old number."""

    def __init__(
        self,
        read: Callable[[], Awaitable[BacklogSnapshot]],
        loop: asyncio.AbstractEventLoop,
        max_age_seconds: float = BACKLOG_MAX_AGE_SECONDS,
        timeout_seconds: float = BACKLOG_READ_TIMEOUT_SECONDS + 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._loop = loop
        self._max_age = max_age_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: BacklogSnapshot | None = None
        self._read_at: float | None = None
        self.reads = 0  # how many times PostgreSQL was asked (the tests hold the cache to its promise)

    async def refresh(self) -> BacklogSnapshot | None:
        """Read now (on the loop that owns the pool)."""
        self.reads += 1
        try:
            async with asyncio.timeout(BACKLOG_READ_TIMEOUT_SECONDS):
                snapshot: BacklogSnapshot | None = await self._read()
        except Exception as exc:  # the gauges go quiet; health and the logs say why
            log.warning("backlog metrics: cannot read PostgreSQL (%s: %s)", type(exc).__name__, exc)
            snapshot = None
        self._snapshot, self._read_at = snapshot, self._clock()
        return snapshot

    def current(self) -> BacklogSnapshot | None:
        with self._lock:
            if self._read_at is not None and self._clock() - self._read_at < self._max_age:
                return self._snapshot
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop or self._loop.is_closed() or not self._loop.is_running():
                # Waiting on our own loop would deadlock it; a stopped loop never answers.
                return self._snapshot
            future = asyncio.run_coroutine_threadsafe(self.refresh(), self._loop)
            try:
                return future.result(self._timeout)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                future.cancel()
                return None


class ChorusMetrics:
    """The instruments, created on one Meter (the global one in the app; an SDK one in tests)."""

    def __init__(self, meter: Meter) -> None:
        self.backlog: BacklogCache | None = None
        self.events_published = meter.create_counter(
            RELAY_EVENTS_PUBLISHED,
            unit="{event}",
            description="Outbox events the relay handed to every handler and marked published",
        )
        self.degraded_reads = meter.create_counter(
            DEGRADED_READS,
            unit="{request}",
            description="Reads answered from a fallback (e.g. the feed from PostgreSQL while Cosmos DB is away)",
        )
        self.change_feed_lag = meter.create_histogram(
            CHANGE_FEED_LAG,
            unit="s",
            description="Age of the newest document of each change-feed batch when its function starts on it",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS_SECONDS,
        )
        meter.create_observable_gauge(
            OUTBOX_PENDING,
            [self._observe(lambda s: s.outbox.pending)],
            unit="{event}",
            description="Outbox events waiting to be relayed (including backed-off ones)",
        )
        meter.create_observable_gauge(
            OUTBOX_DEAD,
            [self._observe(lambda s: s.outbox.dead)],
            unit="{event}",
            description="Outbox events that used up their attempts; each blocks its aggregate",
        )
        meter.create_observable_gauge(
            OUTBOX_OLDEST_PENDING_AGE,
            [self._observe(lambda s: s.outbox.oldest_pending_seconds or 0.0)],
            unit="s",
            description="Age of the oldest pending outbox event; 0 when none is pending",
        )
        meter.create_observable_gauge(
            CHANGE_FEED_OPEN_FAILURES,
            [self._observe(lambda s: s.open_change_feed_failures)],
            unit="{batch}",
            description="Change-feed batches that failed past their retries and are not replayed yet",
        )

    def _observe(
        self, value: Callable[[BacklogSnapshot], float]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            snapshot = self.backlog.current() if self.backlog is not None else None
            return [] if snapshot is None else [Observation(value(snapshot))]

        return callback


_metrics = ChorusMetrics(metrics.get_meter(METER_NAME))


def watch_backlog(read: Callable[[], Awaitable[BacklogSnapshot]]) -> BacklogCache:
    """Called on the worker's event loop once its pool exists, with the reader the composition root
    (shared_code.bootstrap) builds over that pool: the backlog gauges read through it. The reader is
    handed in so that this module, which the outbox relay imports, imports no service."""
    cache = BacklogCache(read, asyncio.get_running_loop())
    _metrics.backlog = cache
    return cache


def record_events_published(count: int) -> None:
    if count > 0:
        _metrics.events_published.add(count)


def record_degraded_read(route: str) -> None:
    """A read served from a fallback; `route` names the read (e.g. "feed")."""
    _metrics.degraded_reads.add(1, {"route": route})


def record_change_feed_lag(
    function: str, documents: Iterable[Mapping[str, Any]], now: float | None = None
) -> None:
    """How far behind `function` runs: now minus the newest document's `_ts` (Cosmos DB's
    last-modified time, in seconds). A batch without `_ts` records nothing."""
    stamps = [d["_ts"] for d in documents if isinstance(d.get("_ts"), int | float)]
    if not stamps:
        return
    lag = max(0.0, (time.time() if now is None else now) - max(stamps))
    _metrics.change_feed_lag.record(lag, {"function": function})
