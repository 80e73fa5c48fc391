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

This module is the loop. What an outcome costs (backoff, death, the drain's budget) is
the pure policy in policy.py and breaker.py; the SQL (claim, renew, record, requeue,
skip, LISTEN) is the store in store.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import psycopg

from shared_code.domain.stored_event import StoredEvent
from shared_code.metrics import record_events_published
from shared_code.observability import end_span, start_linked_span
from shared_code.outbox.breaker import PROBE_TIMEOUT_SECONDS, FailureVerdict, SinkBreaker
from shared_code.outbox.policy import (
    IDLE_RECHECK_SECONDS,
    PUBLISH_DEADLINE_SECONDS,
    DrainReport,
    RelayPolicy,
    RoundReport,
    charge,
    claims_again_after,
    claims_again_at_once,
    describe_error,
    may_claim,
    probe_due_before_deadline,
    release,
)
from shared_code.outbox.store import Listener, OutboxStore, wait_for_notify

log = logging.getLogger("chorus.outbox")


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


@dataclass
class Sink:
    """Handlers delivered to as one stage, with the breaker that pauses them together."""

    name: str
    handlers: list[EventHandler]
    breaker: SinkBreaker
    # A delivery that has not finished by then fails (and the sink is probed): a peer that accepts
    # connections but never answers must not hold the relay, and the stages behind it, for the SDK's
    # own timeouts. None: no limit.
    deadline_seconds: float | None = None
    # While a delivery runs, its sink is probed this often (see RelayPolicy.sink_watch_seconds), unless
    # it showed within that long that it answers (see `answered_at`).
    watch_seconds: float = 1.0
    # When the sink last showed that it answers (monotonic): a delivery of the relay's that took an event,
    # or a probe that got an answer. With several batches in flight under load, deliveries that outlast
    # the watch interval are common while the sink answers the others; each probing the sink on its
    # own cost more than the sends (an Event Hubs probe opens a management connection, TLS context
    # included: 6 % of the workers' CPU at write_path c=8, bench/results/profile-write_path-c8.txt).
    answered_at: float = -math.inf
    # The probe in flight for the watches, shared by every delivery that wants one now.
    watch_probe: asyncio.Future[tuple[bool, str | None]] | None = field(default=None, repr=False)


@dataclass
class _Failure:
    event: StoredEvent
    error: BaseException
    charged: bool
    sink: str


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        handlers: Sequence[EventHandler],
        policy: RelayPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._handlers = list(handlers)
        self._policy = policy
        self._clock = clock
        self.projections = Sink(
            "projections",
            [h for h in self._handlers if not getattr(h, "publishes", False)],
            SinkBreaker("projections"),
            deadline_seconds=policy.projection_deadline_seconds,
            watch_seconds=policy.sink_watch_seconds,
        )
        self.publishing = Sink(
            "event-hubs",
            [h for h in self._handlers if getattr(h, "publishes", False)],
            SinkBreaker("event-hubs"),
            deadline_seconds=PUBLISH_DEADLINE_SECONDS,
            watch_seconds=policy.sink_watch_seconds,
        )

    @property
    def sinks(self) -> tuple[Sink, Sink]:
        return self.projections, self.publishing

    async def claim_batch(self, project: bool = True, publish: bool = True) -> list[StoredEvent]:
        return await self._store.claim(
            self._policy.batch_size, self._policy.claim_lease_seconds, project=project, publish=publish
        )

    async def run_once(self) -> RoundReport:
        """Probe paused sinks that are due; claim one batch for the delivering ones, handle it, record."""
        return await self.finish_round(await self.claim_round())

    async def claim_round(self) -> list[StoredEvent]:
        """Probe paused sinks that are due, then claim a batch for the stages whose sinks deliver."""
        await self._probe_paused_sinks()
        project = self.projections.breaker.delivers
        publish = self.publishing.breaker.delivers or not self.publishing.handlers
        if not project and not publish:
            return []
        return await self.claim_batch(project=project, publish=publish)

    async def finish_round(self, events: list[StoredEvent]) -> RoundReport:
        """Handle a claimed batch (projections, then publishing) and record its outcomes."""
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
            errors, probed = await self._deliver(self.projections, to_project)
            failures.update(await self._judge(self.projections, to_project, errors, probed))
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
        errors, probed = await self._deliver(self.publishing, ready) if ready else ({}, None)
        failures.update(await self._judge(self.publishing, ready, errors, probed))
        published = [e for e in ready if e.id not in failures]
        projected = [e for e in ready if e.id in failures and not e.projected]
        return projected, published, failures, lost

    async def _deliver(
        self, sink: Sink, events: list[StoredEvent]
    ) -> tuple[dict[int, BaseException], tuple[bool, str | None] | None]:
        """Deliver to a sink, watching it: while the delivery runs, the sink is probed every
        `watch_seconds`, and the first probe that gets no answer abandons the delivery at once (an
        outage) instead of at its deadline or the SDK's timeouts. The handlers are idempotent, so a
        delivery cut short is simply done again. Returns the failures and the answer of a probe that
        ended with the delivery, if there was one."""
        delivery = asyncio.ensure_future(self._run_handlers(sink.handlers, events, sink.deadline_seconds))
        started = time.monotonic()
        while True:
            if not probe_due_before_deadline(
                time.monotonic() - started, sink.deadline_seconds, sink.watch_seconds
            ):
                return await delivery, None  # its deadline ends it first (see _run_handlers)
            done, _ = await asyncio.wait({delivery}, timeout=sink.watch_seconds)
            if delivery in done:
                return self._delivered(sink, events, delivery.result()), None  # judged afresh if need be
            if time.monotonic() - sink.answered_at < sink.watch_seconds:
                continue  # the sink answered within the interval (another batch, a shared probe)
            probed = await self._watch_probe(sink)
            if delivery.done():
                return self._delivered(sink, events, delivery.result()), probed
            if not probed[0]:
                break
        answered, probe_error = probed
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        error = ConnectionError(f"{sink.name} did not answer ({probe_error})")
        return {e.id: error for e in events}, (answered, probe_error)

    @staticmethod
    def _delivered(
        sink: Sink, events: list[StoredEvent], errors: dict[int, BaseException]
    ) -> dict[int, BaseException]:
        if len(errors) < len(events):
            sink.answered_at = time.monotonic()  # it took an event: it answers
        return errors

    async def _watch_probe(self, sink: Sink) -> tuple[bool, str | None]:
        """One probe of the sink for every delivery watching it now (shielded: a watcher that is
        cancelled leaves it to the others)."""
        if sink.watch_probe is None or sink.watch_probe.done():
            sink.watch_probe = asyncio.ensure_future(self._probe(sink))
        return await asyncio.shield(sink.watch_probe)

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
            len(errors), answered, self._clock(), probe_error or describe_error(first)
        )
        charged = verdict is FailureVerdict.CHARGE
        if not charged and was_delivering:
            log.error(
                "outbox relay: %s is unavailable (%s; its probe: %s). Delivery to it is paused and it is "
                "probed every %.0f s; the %d event(s) that failed spend no attempt and resume when it answers.",
                sink.name,
                describe_error(first),
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
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await asyncio.gather(*(probe() for probe in probes))
        except TimeoutError:
            return False, f"no answer within {PROBE_TIMEOUT_SECONDS:.0f} s"
        except Exception as exc:  # whatever the store says, it did not answer the probe
            return False, describe_error(exc)
        sink.answered_at = time.monotonic()
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
                async with asyncio.timeout(deadline_seconds):
                    return await handler.handle(events)
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
        return await self._store.renew(
            [e.id for e in events], events[0].claim_token, self._policy.claim_lease_seconds
        )

    async def _record(
        self,
        events: list[StoredEvent],
        projected: list[StoredEvent],
        published: list[StoredEvent],
        failures: Mapping[int, _Failure],
    ) -> RoundReport:
        """Write the round's outcomes under this relay's claim token; returns what was recorded."""
        charged = [
            charge(f.event.id, f.event.attempts, f.error, self._policy)
            for f in failures.values()
            if f.charged
        ]
        released = [release(f.event.id, f.sink, f.error) for f in failures.values() if not f.charged]
        recorded = await self._store.record(
            events[0].claim_token,
            published=[e.id for e in published],
            projected=[e.id for e in projected],
            charged=charged,
            released=released,
        )
        outcome = RoundReport(published=recorded.published, projected=recorded.projected)
        # An event can be both projected and failed (publishing): counted once in `intended` per row
        # update, so the difference is what another relay's claim kept this one from recording.
        intended = len(published) + len(projected) + len(charged) + len(released)
        outcome.fenced = max(0, intended - recorded.written)
        if outcome.fenced:
            log.warning(
                "outbox relay: %d outcome(s) not recorded: another relay claimed those events after this "
                "one's lease ran out (their handlers are idempotent; the other relay records them)",
                outcome.fenced,
            )
        by_id = {e.id: e for e in events}
        for failure in charged:
            if failure.dead:
                outcome.dead += 1
                event = by_id[failure.event_id]
                log.error(
                    "outbox event %s (%s of %s %s) is dead after %d attempts: %s. It blocks later events of "
                    "that %s until an operator requeues it (POST /api/admin/outbox/requeue) or skips it "
                    "with a reason (POST /api/admin/outbox/skip).",
                    failure.event_id,
                    event.event_type,
                    event.aggregate_type,
                    event.aggregate_id,
                    self._policy.max_attempts,
                    failure.last_error,
                    event.aggregate_type,
                    extra={"correlationId": event.correlation_id},
                )
        return outcome

    async def drain(self, budget_seconds: float) -> DrainReport:
        """Deliver events until the budget ends, as a stream: up to `rounds_in_flight` claimed batches are
        delivered at once, and the next batch is claimed while earlier ones finish (when the last claim
        was full, when a round ends, or on NOTIFY), so no batch waits for another's slowest event. Each
        aggregate's order holds across batches: the claim takes an event only once the earlier events of
        its aggregate are done (store.py), and those still in flight are pending."""
        started = time.monotonic()
        deadline = started + budget_seconds
        report = DrainReport()
        listener = await self._listen()
        rounds: set[asyncio.Future[RoundReport]] = set()
        waiter: asyncio.Task[Listener | None] | None = None
        claim_now = True
        try:
            while True:
                seconds_left = deadline - time.monotonic()
                if claim_now and may_claim(len(rounds), self._policy.rounds_in_flight, seconds_left):
                    try:
                        events = await self.claim_round()
                    except (psycopg.OperationalError, OSError) as exc:
                        self._database_away(report, exc)
                        await asyncio.sleep(min(IDLE_RECHECK_SECONDS, max(0.0, deadline - time.monotonic())))
                        continue
                    if events:
                        rounds.add(asyncio.ensure_future(self.finish_round(events)))
                    claim_now = claims_again_at_once(len(events), self._policy.batch_size)
                    continue
                if not rounds and seconds_left <= 0:
                    break
                if waiter is None and not claim_now:
                    # Nothing to claim at once: sleep until NOTIFY (or a recheck), or until a round ends.
                    if listener is None:
                        listener = await self._listen()  # a lost LISTEN connection is opened again
                    wait = min(IDLE_RECHECK_SECONDS, seconds_left)
                    probe_in = self.seconds_until_probe()
                    if probe_in is not None:
                        wait = min(wait, max(probe_in, 0.05))  # a paused sink is probed on time
                    waiter = asyncio.ensure_future(self._wait_for_notify(listener, wait))
                waiting_on: set[asyncio.Future[Any]] = set(rounds)
                if waiter is not None:
                    waiting_on.add(waiter)
                done, _ = await asyncio.wait(waiting_on, return_when=asyncio.FIRST_COMPLETED)
                for finished in rounds & done:
                    rounds.discard(finished)
                    try:
                        round_report = finished.result()
                    except (psycopg.OperationalError, OSError) as exc:
                        # Its outcomes were not recorded: its claims expire and the events come again.
                        self._database_away(report, exc)
                        claim_now = True
                        continue
                    report.add(round_report)
                    claim_now = claim_now or claims_again_after(round_report)
                if waiter is not None and waiter in done:
                    listener = waiter.result()
                    waiter = None
                    claim_now = True
        finally:
            pending: list[asyncio.Future[Any]] = [*rounds, *([waiter] if waiter is not None else [])]
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pending, return_exceptions=True)
            if listener is not None:
                await listener.close()
        report.seconds = time.monotonic() - started
        return report

    def _database_away(self, report: DrainReport, exc: BaseException) -> None:
        """PostgreSQL is away: say so; the drain waits a little and keeps its budget."""
        report.errors.append(describe_error(exc))
        log.error("outbox relay cannot reach PostgreSQL (%s); retrying in %.0f s", exc, IDLE_RECHECK_SECONDS)

    async def _listen(self) -> Listener | None:
        return await self._store.listen()

    async def _wait_for_notify(self, listener: Listener | None, wait_seconds: float) -> Listener | None:
        return await wait_for_notify(listener, wait_seconds)
