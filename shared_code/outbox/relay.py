"""The outbox relay: claims pending events, hands them to the handlers, records outcomes.

1. `claim_batch` marks a batch claimed (a lease, `claimed_until`, and a fresh
   `claim_token`) with FOR UPDATE SKIP LOCKED and commits at once: handlers never
   run under row locks, and a relay that dies leaves claims that simply expire.
2. Two stages per event, two sinks: the projections (every internal handler:
   Cosmos DB, feed maintenance, the moderators' mirror), then publishing (Event
   Hubs). `projected_at` records the first, `published_at`/'published' both. An
   event waits for the earlier events of its aggregate in each stage: its
   projection for their projections, its publication for their publications. So
   events of one aggregate are handled, and published, in order; different
   aggregates run concurrently; and an Event Hubs outage never holds back the
   projections.
3. Each sink has a circuit breaker (breaker.py). Failures while the sink answers
   its probe are the events' own: the event backs off (60 s · 2^attempts by
   default) and after its last attempt goes dead, blocking only its aggregate
   until an operator requeues or skips it. Failures while the sink does not
   answer are an outage: no attempt is spent, the claims are released, and the
   relay probes the sink every second and resumes as soon as it answers.
4. Fencing: outcomes are recorded, and events published, only under the claim
   token this relay wrote. A relay that outlived its lease (another relay has
   claimed the event since) records nothing and publishes nothing; its
   projection writes are version-checked, so at worst they repeat what is there.
5. `drain` repeats until its time budget ends, waiting on LISTEN outbox between
   rounds, so a committed event is picked up within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast
from uuid import uuid4

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared_code.domain.stored_event import StoredEvent
from shared_code.metrics import record_events_published
from shared_code.observability import end_span, start_linked_span
from shared_code.outbox.breaker import PROBE_TIMEOUT_SECONDS, FailureVerdict, SinkBreaker

log = logging.getLogger("chorus.outbox")

# Backoff never waits longer than this, however many attempts failed.
BACKOFF_CAP_SECONDS = 6 * 3600
# Publishing a batch takes milliseconds; one that has not finished in this long is an outage.
PUBLISH_DEADLINE_SECONDS = 5.0
# A publish still running after this long has its sink probed meanwhile: if the probe gets no answer
# the publish is given up at once, so projections wait about this plus the probe's timeout, not the
# whole deadline, when Event Hubs stops answering.
EARLY_PROBE_SECONDS = 1.0
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


class ProbedSink(Protocol):
    """A handler that can tell whether its sink is reachable at all, without touching an event."""

    async def probe(self) -> None:
        """Return when the sink answers; raise when it does not."""
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
    published: int = 0  # both stages done
    failed: int = 0  # a handler failed (charged or not)
    dead: int = 0
    projected: int = 0  # projected in this round, publishing still to do (its sink paused or failing)
    released: int = 0  # failed while their sink was away: claims released, no attempt spent
    fenced: int = 0  # outcomes not recorded: another relay had claimed the event since


@dataclass
class DrainReport:
    rounds: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    fenced: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, round_report: RoundReport) -> None:
        self.rounds += 1
        self.published += round_report.published
        self.failed += round_report.failed
        self.dead += round_report.dead
        self.released += round_report.released
        self.fenced += round_report.fenced


@dataclass
class Sink:
    """Handlers delivered to as one stage, with the breaker that pauses them together."""

    name: str
    handlers: list[EventHandler]
    breaker: SinkBreaker
    # A delivery that has not finished by then fails (and the sink is probed): a peer that accepts
    # connections but never answers must not hold the relay, and the stages behind it, for the SDK's
    # own timeouts. None: no limit (projections may fan out a large back-fill).
    deadline_seconds: float | None = None


@dataclass
class _Failure:
    event: StoredEvent
    error: BaseException
    charged: bool
    sink: str


# Each statement starts with a name: logs, and the unit tests' stand-in database, tell them apart by it.
_CLAIM = """-- relay:claim
WITH claimable AS (
    SELECT o.id
    FROM outbox o
    WHERE o.status = 'pending'
      AND o.next_attempt_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      -- the stages whose sinks are delivering (a paused sink's events stay where they are)
      AND CASE WHEN o.projected_at IS NULL THEN %(project)s ELSE %(publish)s END
      -- OFFSET 0 keeps this a per-candidate index probe (outbox_unfinished_by_aggregate): as a
      -- flattened anti-join it was planned on stale statistics into seconds per claim after a burst.
      -- A projection waits for the earlier projections of its aggregate; a publication for every
      -- earlier event of its aggregate to be done (so Event Hubs gets them in order).
      AND NOT EXISTS (
          SELECT 1 FROM outbox earlier
          WHERE earlier.aggregate_type = o.aggregate_type
            AND earlier.aggregate_id = o.aggregate_id
            AND earlier.id < o.id
            AND earlier.status IN ('pending', 'dead')
            AND (o.projected_at IS NOT NULL OR earlier.projected_at IS NULL)
          OFFSET 0)
    ORDER BY o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE outbox SET claimed_until = now() + make_interval(secs => %(lease)s), claim_token = %(token)s
FROM claimable WHERE outbox.id = claimable.id
RETURNING outbox.id, outbox.event_id, outbox.aggregate_type, outbox.aggregate_id, outbox.aggregate_version,
          outbox.event_type, outbox.payload, outbox.metadata, outbox.created_at, outbox.attempts,
          outbox.projected_at IS NOT NULL
"""

# Before publishing: the claims still ours, renewed. What another relay took since is left to it.
_RENEW = """-- relay:renew
UPDATE outbox SET claimed_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'
RETURNING id"""

_PUBLISHED = """-- relay:published
UPDATE outbox SET status = 'published', projected_at = coalesce(projected_at, now()), published_at = now(),
                  claimed_until = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'"""

_PROJECTED = """-- relay:projected
UPDATE outbox SET projected_at = now(), claimed_until = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'"""

# Only a pending event under this relay's claim: a relay that outlived its lease must not turn an event
# another relay has published since back into a pending one, nor spend its attempts.
_FAILED = """-- relay:failed
UPDATE outbox o SET attempts = o.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => f.delay),
                    status = f.status, last_error = f.error, claimed_until = NULL
FROM unnest(%(ids)s::bigint[], %(delays)s::float8[], %(statuses)s::text[], %(errors)s::text[])
     AS f(id, delay, status, error)
WHERE o.id = f.id AND o.claim_token = %(token)s AND o.status = 'pending'"""

# A sink outage: the claim goes back, attempts and backoff untouched; last_error says why it waits.
_RELEASED = """-- relay:released
UPDATE outbox o SET claimed_until = NULL, last_error = f.error
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS f(id, error)
WHERE o.id = f.id AND o.claim_token = %(token)s AND o.status = 'pending'"""


class OutboxRelay:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        handlers: Sequence[EventHandler],
        policy: RelayPolicy,
        listen_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._handlers = list(handlers)
        self._policy = policy
        self._listen_url = listen_url
        self._clock = clock
        self.projections = Sink(
            "projections",
            [h for h in self._handlers if not getattr(h, "publishes", False)],
            SinkBreaker("projections"),
        )
        self.publishing = Sink(
            "event-hubs",
            [h for h in self._handlers if getattr(h, "publishes", False)],
            SinkBreaker("event-hubs"),
            deadline_seconds=PUBLISH_DEADLINE_SECONDS,
        )

    @property
    def sinks(self) -> tuple[Sink, Sink]:
        return self.projections, self.publishing

    async def claim_batch(self, project: bool = True, publish: bool = True) -> list[StoredEvent]:
        token = uuid4()
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                _CLAIM,
                {
                    "limit": self._policy.batch_size,
                    "lease": self._policy.claim_lease_seconds,
                    "token": token,
                    "project": project,
                    "publish": publish,
                },
            )
            rows = await cur.fetchall()
        events = [
            StoredEvent(
                id=row[0],
                event_id=row[1],
                aggregate_type=row[2],
                aggregate_id=row[3],
                aggregate_version=row[4],
                event_type=row[5],
                payload=row[6],
                metadata=row[7],
                created_at=row[8],
                attempts=row[9],
                projected=bool(row[10]),
                claim_token=token,
            )
            for row in rows
        ]
        events.sort(key=lambda e: e.id)
        return events

    async def run_once(self) -> RoundReport:
        """Probe paused sinks that are due; claim one batch for the delivering ones, handle it, record."""
        await self._probe_paused_sinks()
        project = self.projections.breaker.delivers
        publish = self.publishing.breaker.delivers or not self.publishing.handlers
        if not project and not publish:
            return RoundReport()
        events = await self.claim_batch(project=project, publish=publish)
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
        failures: dict[int, _Failure] = {}
        try:
            projected, published, failures, lost = await self._handle(events)
            report.failed = len(failures)
            report.released = sum(not f.charged for f in failures.values())
            report.fenced = len(lost)
            recorded = await self._record(events, projected, published, failures)
            report.published = recorded.published
            report.projected = recorded.projected
            report.dead = recorded.dead
            record_events_published(report.published)
            report.fenced += recorded.fenced
        finally:
            for event_id, span in spans.items():
                failure = failures.get(event_id)
                end_span(span, failure.error if failure else None)
        return report

    async def _handle(
        self, events: list[StoredEvent]
    ) -> tuple[list[StoredEvent], list[StoredEvent], dict[int, _Failure], list[StoredEvent]]:
        """Projections first (the internal handlers, concurrently); then publishing, for the events the
        projections have taken. So a failing projection does not re-publish its event to other systems
        on every retry, and consumers never see an event ahead of its projections.
        Returns (projected only, published, failures, lost claims)."""
        failures: dict[int, _Failure] = {}
        to_project = [e for e in events if not e.projected]
        if to_project:
            errors = await self._run_handlers(self.projections.handlers, to_project, None)
            failures.update(await self._judge(self.projections, to_project, errors))
        ready = [e for e in events if e.id not in failures]
        if not self.publishing.handlers:
            return [], ready, failures, []
        if not ready or not self.publishing.breaker.delivers:
            return ready, [], failures, []
        # Fencing: publish only what is still ours (and hold it a lease longer while we do).
        held = await self._renew(ready)
        lost = [e for e in ready if e.id not in held]
        for event in lost:
            log.warning(
                "outbox event %s (%s %s v%d): another relay claimed it while this one worked on it; "
                "this relay leaves it to that one",
                event.id,
                event.event_type,
                event.aggregate_id,
                event.aggregate_version,
            )
        ready = [e for e in ready if e.id in held]
        errors, probed = await self._publish(ready) if ready else ({}, None)
        failures.update(await self._judge(self.publishing, ready, errors, probed))
        published = [e for e in ready if e.id not in failures]
        projected = [e for e in ready if e.id in failures and not e.projected]
        return projected, published, failures, lost

    async def _publish(
        self, events: list[StoredEvent]
    ) -> tuple[dict[int, BaseException], tuple[bool, str | None] | None]:
        """Publish, watching the sink: a publish still running after EARLY_PROBE_SECONDS has the sink
        probed meanwhile, and if the probe gets no answer the publish is abandoned at once (an outage)
        instead of at its deadline. Returns the failures and the probe's answer, if one was asked."""
        sink = self.publishing
        delivery = asyncio.ensure_future(self._run_handlers(sink.handlers, events, sink.deadline_seconds))
        done, _ = await asyncio.wait({delivery}, timeout=EARLY_PROBE_SECONDS)
        if delivery in done:
            return delivery.result(), None
        answered, probe_error = await self._probe(sink)
        if answered or delivery.done():
            return await delivery, (answered, probe_error)
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        error = ConnectionError(f"{sink.name} did not answer ({probe_error})")
        return {e.id: error for e in events}, (answered, probe_error)

    async def _judge(
        self,
        sink: Sink,
        events: list[StoredEvent],
        errors: Mapping[int, BaseException],
        probed: tuple[bool, str | None] | None = None,
    ) -> dict[int, _Failure]:
        """Whose fault were this stage's failures: the events' (charged) or the sink's (released)?
        `probed`: the sink's answer to a probe made during this delivery (else one is made now)."""
        if not errors:
            return {}
        first = next(iter(errors.values()))
        answered, probe_error = probed if probed is not None else await self._probe(sink)
        was_delivering = sink.breaker.delivers
        verdict = sink.breaker.after_round(
            len(errors), answered, self._clock(), probe_error or f"{type(first).__name__}: {first}"
        )
        charged = verdict is FailureVerdict.CHARGE
        if not charged and was_delivering:
            log.error(
                "outbox relay: %s is unavailable (%s; its probe: %s). Delivery to it is paused and it is "
                "probed every %.0f s; the %d event(s) that failed spend no attempt and resume when it answers.",
                sink.name,
                f"{type(first).__name__}: {first}",
                probe_error,
                sink.breaker.probe_interval_seconds,
                len(errors),
            )
        by_id = {e.id: e for e in events}
        failures = {}
        for event_id, error in errors.items():
            failures[event_id] = _Failure(by_id[event_id], error, charged, sink.name)
            if charged:
                event = by_id[event_id]
                log.warning(
                    "outbox event %s (%s %s v%d) failed in %s, attempt %d: %s: %s",
                    event.id,
                    event.event_type,
                    event.aggregate_id,
                    event.aggregate_version,
                    sink.name,
                    event.attempts + 1,
                    type(error).__name__,
                    error,
                    extra={"correlationId": event.correlation_id},
                )
        return failures

    async def _probe(self, sink: Sink) -> tuple[bool, str | None]:
        """Ask the sink's handlers that can tell whether their store answers; (answered, why not)."""
        probes = [cast(ProbedSink, h).probe for h in sink.handlers if callable(getattr(h, "probe", None))]
        if not probes:
            return True, None  # nothing to ask: every failure is the event's own
        try:
            await asyncio.wait_for(asyncio.gather(*(probe() for probe in probes)), PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            return False, f"no answer within {PROBE_TIMEOUT_SECONDS:.0f} s"
        except Exception as exc:  # whatever the store says, it did not answer the probe
            return False, f"{type(exc).__name__}: {exc}"
        return True, None

    async def _probe_paused_sinks(self) -> None:
        for sink in self.sinks:
            if not sink.breaker.probe_due(self._clock()):
                continue
            opened_at = sink.breaker.opened_at
            answered, error = await self._probe(sink)
            if sink.breaker.after_probe(answered, self._clock(), error):
                log.warning(
                    "outbox relay: %s answers again after %.1f s; delivery to it resumes",
                    sink.name,
                    self._clock() - (opened_at or self._clock()),
                )

    def seconds_until_probe(self) -> float | None:
        """How soon a paused sink is due for its probe (None when every sink delivers)."""
        waits = [w for s in self.sinks if (w := s.breaker.seconds_until_probe(self._clock())) is not None]
        return min(waits) if waits else None

    async def _run_handlers(
        self, handlers: Sequence[EventHandler], events: list[StoredEvent], deadline_seconds: float | None
    ) -> dict[int, BaseException]:
        async def handle(handler: EventHandler) -> Mapping[int, BaseException]:
            if deadline_seconds is None:
                return await handler.handle(events)
            try:
                return await asyncio.wait_for(handler.handle(events), deadline_seconds)
            except TimeoutError:
                raise TimeoutError(f"{handler.name} did not answer within {deadline_seconds:g} s") from None

        results = await asyncio.gather(*(handle(handler) for handler in handlers), return_exceptions=True)
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

    async def _renew(self, events: list[StoredEvent]) -> set[int]:
        token = events[0].claim_token
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                _RENEW,
                {"ids": [e.id for e in events], "token": token, "lease": self._policy.claim_lease_seconds},
            )
            return {int(row[0]) for row in await cur.fetchall()}

    async def _record(
        self,
        events: list[StoredEvent],
        projected: list[StoredEvent],
        published: list[StoredEvent],
        failures: Mapping[int, _Failure],
    ) -> RoundReport:
        """Write the round's outcomes under this relay's claim token; returns what was recorded."""
        token = events[0].claim_token
        charged = [f for f in failures.values() if f.charged]
        released = [f for f in failures.values() if not f.charged]
        failed_rows = []
        for failure in charged:
            attempts = failure.event.attempts
            failed_rows.append(
                (
                    failure.event.id,
                    retry_delay_seconds(attempts, self._policy.backoff_base_seconds),
                    "dead" if becomes_dead(attempts, self._policy.max_attempts) else "pending",
                    f"{type(failure.error).__name__}: {failure.error}"[:LAST_ERROR_MAX],
                )
            )
        outcome = RoundReport()
        intended = len(published) + len(projected) + len(charged) + len(released)
        written = 0
        async with self._pool.connection() as conn, conn.transaction():
            if published:
                cur = await conn.execute(_PUBLISHED, {"ids": [e.id for e in published], "token": token})
                outcome.published = cur.rowcount
                written += cur.rowcount
            if projected:
                cur = await conn.execute(_PROJECTED, {"ids": [e.id for e in projected], "token": token})
                outcome.projected = cur.rowcount
                written += cur.rowcount
            if failed_rows:
                cur = await conn.execute(
                    _FAILED,
                    {
                        "ids": [r[0] for r in failed_rows],
                        "delays": [r[1] for r in failed_rows],
                        "statuses": [r[2] for r in failed_rows],
                        "errors": [r[3] for r in failed_rows],
                        "token": token,
                    },
                )
                written += cur.rowcount
            if released:
                cur = await conn.execute(
                    _RELEASED,
                    {
                        "ids": [f.event.id for f in released],
                        "errors": [
                            f"waiting for {f.sink} to answer (no attempt spent): "
                            f"{type(f.error).__name__}: {f.error}"[:LAST_ERROR_MAX]
                            for f in released
                        ],
                        "token": token,
                    },
                )
                written += cur.rowcount
        # An event can be both projected and failed (publishing): counted once in `intended` per row
        # update, so the difference is what another relay's claim kept this one from recording.
        outcome.fenced = max(0, intended - written)
        if outcome.fenced:
            log.warning(
                "outbox relay: %d outcome(s) not recorded: another relay claimed those events after this "
                "one's lease ran out (their handlers are idempotent; the other relay records them)",
                outcome.fenced,
            )
        by_id = {e.id: e for e in events}
        for event_id, _, status, last_error in failed_rows:
            if status == "dead":
                outcome.dead += 1
                event = by_id[event_id]
                log.error(
                    "outbox event %s (%s of %s %s) is dead after %d attempts: %s. It blocks later events of "
                    "that %s until an operator requeues it (POST /api/admin/outbox/requeue) or skips it "
                    "with a reason (POST /api/admin/outbox/skip).",
                    event_id,
                    event.event_type,
                    event.aggregate_type,
                    event.aggregate_id,
                    self._policy.max_attempts,
                    last_error,
                    event.aggregate_type,
                    extra={"correlationId": event.correlation_id},
                )
        return outcome

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
                if round_report.claimed > round_report.released:
                    continue  # more may be waiting: no sleep between busy rounds
                listener = listener or await self._listen()  # a lost LISTEN connection is opened again
                wait = min(IDLE_RECHECK_SECONDS, deadline - time.monotonic())
                probe_in = self.seconds_until_probe()
                if probe_in is not None:
                    wait = min(wait, max(probe_in, 0.05))  # a paused sink is probed on time
                listener = await self._wait_for_notify(listener, wait)
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


async def skip_dead(
    pool: AsyncConnectionPool, event_ids: Sequence[int], reason: str, skipped_by: str
) -> list[int]:
    """Give up on dead events (only dead ones): they stop blocking their aggregates, and the reason and who
    decided are recorded on each. Returns the ids skipped (a listed event that is not dead is left alone)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            """UPDATE outbox SET status = 'skipped', skipped_at = now(), skipped_by = %(by)s,
                                 skip_reason = %(reason)s, claimed_until = NULL
               WHERE status = 'dead' AND id = ANY(%(ids)s::bigint[])
               RETURNING id""",
            {"ids": list(event_ids), "reason": reason, "by": skipped_by},
        )
        skipped = sorted(int(row[0]) for row in await cur.fetchall())
    for event_id in skipped:
        log.warning("outbox event %s skipped by %s: %s", event_id, skipped_by, reason)
    return skipped
