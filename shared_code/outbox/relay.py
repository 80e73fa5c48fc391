"""The outbox relay: claims pending events, hands them to the handlers, records outcomes.

1. `claim_batch` marks a batch claimed (a lease, `claimed_until`) with
   FOR UPDATE SKIP LOCKED and commits at once: handlers never run under row
   locks, and a relay that dies leaves claims that simply expire.
2. Only the earliest unfinished event of each aggregate is claimable, so events
   of one aggregate are handled in order; different aggregates run concurrently.
3. Every handler must succeed for an event to be published. A failure backs the
   event off (60 s · 2^attempts by default) and, after the maximum attempts,
   makes it dead: it then blocks only its own aggregate until an operator
   requeues or skips it.
4. `drain` repeats until its time budget ends, waiting on LISTEN outbox between
   rounds, so a committed event is picked up within milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared_code.metrics import record_events_published
from shared_code.observability import end_span, start_linked_span
from shared_code.outbox.model import StoredEvent

log = logging.getLogger("chorus.outbox")

# Backoff never waits longer than this, however many attempts failed.
BACKOFF_CAP_SECONDS = 6 * 3600
# While idle, look again at least this often: backed-off events and expired claims
# become claimable without anyone notifying.
IDLE_RECHECK_SECONDS = 5.0
LAST_ERROR_MAX = 2000


class EventHandler(Protocol):
    """One consumer of outbox events. Idempotent: it may see an event more than once."""

    name: str

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        """Handle a batch; return the failures by outbox id (empty when all succeeded)."""
        ...


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 200
    claim_lease_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 60.0


def retry_delay_seconds(attempts_before: int, base_seconds: float) -> float:
    """How long an event waits after its (attempts_before + 1)-th failure: base · 2^attempts_before."""
    return float(min(BACKOFF_CAP_SECONDS, base_seconds * 2 ** min(attempts_before, 32)))


# A drain stops this long before the timer's next run is due, so the next run starts on time
# (a round in progress when the budget ends still completes; see OutboxRelay.drain).
NEXT_RUN_MARGIN_SECONDS = 2.0


def drain_budget_seconds(next_run: datetime | None, now: datetime, cap_seconds: float) -> float:
    """How long one timer run drains: until just before the next scheduled run (so the outbox is
    watched without a gap), never longer than the configured cap, and at least a moment."""
    if next_run is None:
        return cap_seconds
    until_next = (next_run - now).total_seconds() - NEXT_RUN_MARGIN_SECONDS
    return max(1.0, min(cap_seconds, until_next))


def becomes_dead(attempts_before: int, max_attempts: int) -> bool:
    return attempts_before + 1 >= max_attempts


@dataclass
class RoundReport:
    claimed: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0


@dataclass
class DrainReport:
    rounds: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, round_report: RoundReport) -> None:
        self.rounds += 1
        self.published += round_report.published
        self.failed += round_report.failed
        self.dead += round_report.dead


_CLAIM = """
WITH claimable AS (
    SELECT o.id
    FROM outbox o
    WHERE o.status = 'pending'
      AND o.next_attempt_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      -- OFFSET 0 keeps this a per-candidate index probe (outbox_unfinished_by_aggregate): as a
      -- flattened anti-join it was planned on stale statistics into seconds per claim after a burst.
      AND NOT EXISTS (
          SELECT 1 FROM outbox earlier
          WHERE earlier.aggregate_type = o.aggregate_type
            AND earlier.aggregate_id = o.aggregate_id
            AND earlier.id < o.id
            AND earlier.status <> 'published'
          OFFSET 0)
    ORDER BY o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE outbox SET claimed_until = now() + make_interval(secs => %(lease)s)
FROM claimable WHERE outbox.id = claimable.id
RETURNING outbox.id, outbox.event_id, outbox.aggregate_type, outbox.aggregate_id, outbox.aggregate_version,
          outbox.event_type, outbox.payload, outbox.metadata, outbox.created_at, outbox.attempts
"""


class OutboxRelay:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        handlers: Sequence[EventHandler],
        policy: RelayPolicy,
        listen_url: str | None = None,
    ) -> None:
        self._pool = pool
        self._handlers = list(handlers)
        self._policy = policy
        self._listen_url = listen_url

    async def claim_batch(self) -> list[StoredEvent]:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                _CLAIM, {"limit": self._policy.batch_size, "lease": self._policy.claim_lease_seconds}
            )
            rows = await cur.fetchall()
        events = [StoredEvent(*row) for row in rows]
        events.sort(key=lambda e: e.id)
        return events

    async def run_once(self) -> RoundReport:
        """Claim one batch, handle it, record the outcomes."""
        events = await self.claim_batch()
        report = RoundReport(claimed=len(events))
        if not events:
            return report
        # One span per event, in the trace of the request that caused it.
        spans = {
            e.id: start_linked_span(
                f"outbox {e.event_type}",
                e.metadata.get("traceparent"),
                {
                    "chorus.event_id": str(e.event_id),
                    "chorus.aggregate": f"{e.aggregate_type}/{e.aggregate_id}",
                    "chorus.version": e.aggregate_version,
                    "chorus.attempt": e.attempts + 1,
                    "chorus.correlation_id": e.correlation_id,
                },
            )
            for e in events
        }
        failures: dict[int, BaseException] = {}
        try:
            failures = await self._handle(events)
            published = [e.id for e in events if e.id not in failures]
            report.published = len(published)
            report.failed = len(failures)
            report.dead = await self._record(events, published, failures)
            record_events_published(report.published)
        finally:
            for event_id, span in spans.items():
                end_span(span, failures.get(event_id))
        return report

    async def _handle(self, events: list[StoredEvent]) -> dict[int, BaseException]:
        """Projections and the other internal handlers first, concurrently; then the publishers, for
        the events every internal handler took. So a failing projection does not re-publish its event
        to other systems on every retry, and consumers never see an event ahead of its projections."""
        internal = [h for h in self._handlers if not getattr(h, "publishes", False)]
        publishers = [h for h in self._handlers if getattr(h, "publishes", False)]
        failures = await self._run_handlers(internal, events)
        ready = [event for event in events if event.id not in failures]
        if ready and publishers:
            for event_id, error in (await self._run_handlers(publishers, ready)).items():
                failures.setdefault(event_id, error)
        for event in events:
            if event.id in failures:
                error = failures[event.id]
                log.warning(
                    "outbox event %s (%s %s v%d) failed, attempt %d: %s: %s",
                    event.id,
                    event.event_type,
                    event.aggregate_id,
                    event.aggregate_version,
                    event.attempts + 1,
                    type(error).__name__,
                    error,
                    extra={"correlationId": event.correlation_id},
                )
        return failures

    async def _run_handlers(
        self, handlers: Sequence[EventHandler], events: list[StoredEvent]
    ) -> dict[int, BaseException]:
        results = await asyncio.gather(
            *(handler.handle(events) for handler in handlers), return_exceptions=True
        )
        failures: dict[int, BaseException] = {}
        for handler, result in zip(handlers, results, strict=True):
            if isinstance(result, BaseException):
                # The handler itself broke: every event of the batch failed with it.
                log.error("outbox handler %s failed on a whole batch: %r", handler.name, result)
                for event in events:
                    failures.setdefault(event.id, result)
                continue
            for event_id, error in result.items():
                failures.setdefault(event_id, error)
        return failures

    async def _record(
        self, events: list[StoredEvent], published: list[int], failures: Mapping[int, BaseException]
    ) -> int:
        by_id = {e.id: e for e in events}
        failed_rows = []
        dead = 0
        for event_id, error in failures.items():
            attempts = by_id[event_id].attempts
            is_dead = becomes_dead(attempts, self._policy.max_attempts)
            dead += is_dead
            failed_rows.append(
                (
                    event_id,
                    retry_delay_seconds(attempts, self._policy.backoff_base_seconds),
                    "dead" if is_dead else "pending",
                    f"{type(error).__name__}: {error}"[:LAST_ERROR_MAX],
                )
            )
        async with self._pool.connection() as conn, conn.transaction():
            if published:
                await conn.execute(
                    """UPDATE outbox SET status = 'published', published_at = now(), claimed_until = NULL,
                              last_error = NULL
                       WHERE id = ANY(%s)""",
                    (published,),
                )
            if failed_rows:
                async with conn.cursor() as cur:
                    # Only a pending event: a relay that outlived its lease must not turn an event another
                    # relay has published since back into a pending one.
                    await cur.executemany(
                        """UPDATE outbox SET attempts = attempts + 1,
                                  next_attempt_at = now() + make_interval(secs => %s),
                                  status = %s, last_error = %s, claimed_until = NULL
                           WHERE id = %s AND status = 'pending'""",
                        [(delay, status, error, event_id) for event_id, delay, status, error in failed_rows],
                    )
        for event_id, _, status, last_error in failed_rows:
            if status == "dead":
                event = by_id[event_id]
                log.error(
                    "outbox event %s (%s of %s %s) is dead after %d attempts: %s. It blocks later events of "
                    "that %s until an operator requeues it (POST /api/admin/outbox/requeue).",
                    event_id,
                    event.event_type,
                    event.aggregate_type,
                    event.aggregate_id,
                    self._policy.max_attempts,
                    last_error,
                    event.aggregate_type,
                    extra={"correlationId": event.correlation_id},
                )
        return dead

    async def drain(self, budget_seconds: float) -> DrainReport:
        """Handle events until the budget ends; between rounds, sleep until NOTIFY (or a recheck)."""
        started = time.monotonic()
        deadline = started + budget_seconds
        report = DrainReport()
        listener = await self._listen()
        last_round_seconds = 0.0
        try:
            # A round is not started unless it can end within the budget, judging by the last one.
            while deadline - time.monotonic() > 2 * last_round_seconds:
                round_started = time.monotonic()
                try:
                    round_report = await self.run_once()
                except (psycopg.OperationalError, OSError) as exc:
                    # The database is away: say so, wait a little, keep the budget.
                    report.errors.append(f"{type(exc).__name__}: {exc}")
                    log.error(
                        "outbox relay cannot reach PostgreSQL (%s); retrying in %.0f s",
                        exc,
                        IDLE_RECHECK_SECONDS,
                    )
                    await asyncio.sleep(min(IDLE_RECHECK_SECONDS, max(0.0, deadline - time.monotonic())))
                    listener = listener or await self._listen()
                    continue
                report.add(round_report)
                last_round_seconds = time.monotonic() - round_started
                if round_report.claimed:
                    continue  # more may be waiting: no sleep between busy rounds
                listener = listener or await self._listen()  # a lost LISTEN connection is opened again
                listener = await self._wait_for_notify(
                    listener, min(IDLE_RECHECK_SECONDS, deadline - time.monotonic())
                )
        finally:
            if listener is not None:
                await listener.close()
        report.seconds = time.monotonic() - started
        return report

    async def _listen(self) -> psycopg.AsyncConnection[tuple[object, ...]] | None:
        if self._listen_url is None:
            return None
        try:
            conn = await psycopg.AsyncConnection.connect(self._listen_url, autocommit=True)
            await conn.execute("LISTEN outbox")
        except psycopg.OperationalError as exc:
            log.warning("cannot LISTEN for outbox notifications (%s); polling instead", exc)
            return None
        return conn

    async def _wait_for_notify(
        self, listener: psycopg.AsyncConnection[tuple[object, ...]] | None, wait_seconds: float
    ) -> psycopg.AsyncConnection[tuple[object, ...]] | None:
        """Sleep until a NOTIFY or `wait_seconds`; returns the listener, or None if it broke."""
        if wait_seconds <= 0:
            return listener
        if listener is None:
            await asyncio.sleep(min(wait_seconds, 0.5))
            return None
        try:
            async for _ in listener.notifies(timeout=wait_seconds, stop_after=1):
                pass
        except psycopg.OperationalError as exc:
            log.warning("the outbox LISTEN connection broke (%s); opening another", exc)
            await listener.close()
            await asyncio.sleep(min(wait_seconds, 0.5))
            return None
        return listener


async def requeue_dead(pool: AsyncConnectionPool, event_ids: Sequence[int] | None = None) -> int:
    """Dead events (all, or the listed ones) back to pending with attempts reset. Returns how many."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            """UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), claimed_until = NULL
               WHERE status = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))""",
            {"ids": list(event_ids) if event_ids is not None else None},
        )
        return cur.rowcount
