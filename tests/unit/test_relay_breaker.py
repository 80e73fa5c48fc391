"""The relay's circuit breaker: the pure policy (breaker.py), then the relay applying it with a stand-in
database and scripted sinks: an outage spends no attempts and pauses only its sink, a poison event still
backs off and dies, an Event Hubs outage lets projections flow, and fencing keeps a relay whose claim was
taken from publishing or recording."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast
from uuid import uuid4

import pytest

from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.breaker import BreakerState, FailureVerdict, SinkBreaker
from shared_code.outbox.policy import RelayPolicy, RoundReport, probe_due_before_deadline
from shared_code.outbox.relay import EventHandler, OutboxRelay
from shared_code.outbox.store import OutboxStore
from tests.support.relay_store import FakeStore, event

# --- the policy ---------------------------------------------------------------------------------------


def test_a_round_without_failures_needs_no_probe_and_charges_nothing() -> None:
    breaker = SinkBreaker("cosmos")
    assert not breaker.needs_probe_after(0)
    assert breaker.after_round(0, None, now=10.0, error=None) is FailureVerdict.NONE
    assert breaker.delivers


def test_failures_while_the_sink_answers_its_probe_are_the_events_own() -> None:
    breaker = SinkBreaker("cosmos")
    assert breaker.needs_probe_after(1)
    assert breaker.after_round(1, True, now=10.0, error="KeyError") is FailureVerdict.CHARGE
    assert breaker.state is BreakerState.CLOSED


def test_failures_while_the_sink_does_not_answer_open_the_breaker_and_spend_nothing() -> None:
    breaker = SinkBreaker("cosmos", probe_interval_seconds=1.0)
    assert breaker.after_round(5, False, now=10.0, error="ServiceRequestError") is FailureVerdict.RELEASE
    assert not breaker.delivers
    assert (breaker.opened_at, breaker.last_error) == (10.0, "ServiceRequestError")
    assert not breaker.probe_due(10.5)
    assert breaker.seconds_until_probe(10.25) == pytest.approx(0.75)
    assert breaker.probe_due(11.0)


def test_an_open_breaker_probes_every_interval_and_closes_as_soon_as_the_sink_answers() -> None:
    breaker = SinkBreaker("event-hubs", probe_interval_seconds=1.0)
    breaker.after_round(3, False, now=0.0, error="down")
    assert breaker.after_probe(False, now=1.0, error="still down") is False
    assert breaker.opened_at == 0.0  # the outage started at the first failure
    assert not breaker.probe_due(1.9) and breaker.probe_due(2.0)
    assert breaker.after_probe(True, now=2.0) is True
    assert breaker.delivers and breaker.opened_at is None and breaker.seconds_until_probe(2.0) is None


def test_a_round_with_failures_must_be_given_the_probe_answer() -> None:
    with pytest.raises(ValueError, match="probe"):
        SinkBreaker("cosmos").after_round(1, None, now=0.0, error=None)


# --- the relay applying it ------------------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sink:
    """A scripted handler with a probe: `down` fails every delivery and the probe; `poison` fails those
    events only."""

    name: str
    publishes: bool = False
    down: bool = False
    poison: set[int] = field(default_factory=set)
    seen: list[list[int]] = field(default_factory=list)
    probes: int = 0

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.seen.append([e.id for e in events])
        if self.down:
            return {e.id: ConnectionError(f"{self.name} unreachable") for e in events}
        return {e.id: ValueError("cannot apply") for e in events if e.id in self.poison}

    async def probe(self) -> None:
        self.probes += 1
        if self.down:
            raise ConnectionError(f"{self.name} unreachable")


def relay_for(db: FakeStore, *handlers: Sink, clock: Clock | None = None) -> OutboxRelay:
    return OutboxRelay(
        cast(OutboxStore, db),
        cast(list[EventHandler], list(handlers)),
        RelayPolicy(max_attempts=3, backoff_base_seconds=60.0),
        clock=clock or Clock(),
    )


async def test_a_cosmos_outage_releases_the_claims_without_spending_attempts() -> None:
    events = [event(1), event(2, attempts=2)]  # the second would die on a charged failure
    db = FakeStore(events)
    cosmos = Sink("cosmos", down=True)
    relay = relay_for(db, cosmos)
    report = await relay.run_once()
    assert (report.claimed, report.failed, report.released, report.dead, report.published) == (2, 2, 2, 0, 0)
    assert db.failed == []  # no attempt, no backoff, no death
    assert [i for i, _ in db.released] == [1, 2]
    assert all("waiting for projections to answer (no attempt spent)" in e for _, e in db.released)
    assert relay.projections.breaker.state is BreakerState.OPEN


async def test_while_every_sink_is_paused_nothing_is_claimed_and_the_probe_waits_its_interval() -> None:
    clock = Clock()
    db = FakeStore([event(1)])
    cosmos = Sink("cosmos", down=True)
    hubs = Sink("hubs", publishes=True, down=True)
    relay = relay_for(db, cosmos, hubs, clock=clock)
    await relay.run_once()  # cosmos fails: paused
    relay.publishing.breaker.after_round(1, False, clock.now, "hubs unreachable")
    probes = cosmos.probes
    assert await relay.run_once() == RoundReport()  # nothing claimed, nothing probed
    assert (len(db.claims), cosmos.probes) == (1, probes)
    assert relay.seconds_until_probe() == pytest.approx(1.0)
    clock.now += 1.0
    await relay.run_once()
    assert cosmos.probes == probes + 1 and len(db.claims) == 1  # probed, still away: still no claim


async def test_delivery_resumes_as_soon_as_the_probe_answers() -> None:
    clock = Clock()
    e1 = event(1)
    db = FakeStore([e1])
    cosmos = Sink("cosmos", down=True)
    relay = relay_for(db, cosmos, clock=clock)
    await relay.run_once()
    cosmos.down = False
    clock.now += 1.0
    db.claimable = [e1]
    report = await relay.run_once()
    assert relay.projections.breaker.delivers
    assert (report.claimed, report.published) == (1, 1)
    assert db.published == [[1]]


async def test_a_poison_event_while_the_sink_answers_is_charged_and_dies_alone() -> None:
    events = [event(1, attempts=2), event(2)]
    db = FakeStore(events)
    cosmos = Sink("cosmos", poison={1})
    report = await relay_for(db, cosmos).run_once()
    assert (report.failed, report.released, report.dead, report.published) == (1, 0, 1, 1)
    assert db.failed_by_id[1][1] == "dead"
    assert cosmos.probes == 1  # asked once: it answered, so the failure was the event's


async def test_a_poison_batch_alone_is_still_charged_when_the_sink_answers() -> None:
    # every delivery failed, but the sink answers its probe: not an outage
    db = FakeStore([event(1)])
    report = await relay_for(db, Sink("cosmos", poison={1})).run_once()
    assert (report.failed, report.released) == (1, 0)
    assert db.failed_by_id[1][:2] == (60.0, "pending")


async def test_an_event_hubs_outage_lets_projections_flow_and_publishing_catches_up_in_order() -> None:
    clock = Clock()
    aggregate = uuid4()
    first, second = event(1, aggregate, version=1), event(2, aggregate, version=2)
    db = FakeStore([first])
    cosmos, hubs = Sink("cosmos"), Sink("hubs", publishes=True, down=True)
    relay = relay_for(db, cosmos, hubs, clock=clock)
    report = await relay.run_once()
    assert (report.projected, report.published, report.released) == (1, 0, 1)
    assert db.projected == [[1]] and db.failed == []
    assert not relay.publishing.breaker.delivers

    # while Event Hubs is away: the next event is claimed for its projection only
    db.claimable = [second]
    report = await relay.run_once()
    assert db.claims[-1]["project"] is True and db.claims[-1]["publish"] is False
    assert (report.projected, report.published) == (1, 0)
    assert hubs.seen == [[1]]  # not offered to the paused publisher

    # back: both publish, in order (the claim hands a projected event over for publishing only)
    hubs.down = False
    clock.now += 1.0
    db.claimable = [replace(first, projected=True), replace(second, projected=True)]
    report = await relay.run_once()
    assert db.claims[-1]["publish"] is True
    assert report.published == 2
    assert cosmos.seen == [[1], [2]]  # projections were not repeated
    assert hubs.seen[-1] == [1, 2]


async def test_a_relay_whose_claim_was_taken_neither_publishes_nor_records() -> None:
    events = [event(1), event(2)]
    db = FakeStore(events, lost={2})
    hubs = Sink("hubs", publishes=True)
    report = await relay_for(db, Sink("cosmos"), hubs).run_once()
    assert hubs.seen == [[1]]  # event 2 was claimed by another relay meanwhile: not published by this one
    assert db.published == [[1]]
    assert report.published == 1 and report.fenced == 1


async def test_a_failure_recorded_after_the_claim_was_taken_changes_nothing() -> None:
    db = FakeStore([event(1)], lost={1})
    report = await relay_for(db, Sink("cosmos", poison={1})).run_once()
    assert report.failed == 1 and report.fenced == 1
    assert db.failed == []


class Hanging(Sink):
    """A publisher whose peer accepts the connection and never answers."""

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.seen.append([e.id for e in events])
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_publish_that_never_answers_is_cut_at_its_deadline_and_spends_nothing() -> None:
    db = FakeStore([event(1)])
    hubs = Hanging("hubs", publishes=True, down=True)
    relay = relay_for(db, Sink("cosmos"), hubs)
    relay.publishing.deadline_seconds = 0.05
    report = await asyncio.wait_for(relay.run_once(), 5)
    assert (report.projected, report.released, report.published) == (1, 1, 0)
    assert "did not answer within" in db.released[0][1]
    assert not relay.publishing.breaker.delivers


async def test_a_hanging_publish_is_given_up_as_soon_as_the_probe_gets_no_answer() -> None:
    db = FakeStore([event(1)])
    hubs = Hanging("hubs", publishes=True, down=True)
    relay = relay_for(db, Sink("cosmos"), hubs)
    assert relay.publishing.deadline_seconds == 5.0
    relay.publishing.watch_seconds = 0.01
    started = asyncio.get_running_loop().time()
    report = await asyncio.wait_for(relay.run_once(), 4)
    assert asyncio.get_running_loop().time() - started < 4  # not the 5 s deadline
    assert (report.projected, report.released) == (1, 1)
    assert hubs.probes == 1  # probed once, during the publish; not again to judge it
    assert "hubs unreachable" in db.released[0][1]


async def test_a_slow_publish_to_a_sink_that_answers_runs_to_its_deadline_and_is_charged() -> None:
    db = FakeStore([event(1)])
    hubs = Hanging("hubs", publishes=True, down=False)
    relay = relay_for(db, Sink("cosmos"), hubs)
    relay.publishing.deadline_seconds = 0.1
    relay.publishing.watch_seconds = 0.01
    report = await asyncio.wait_for(relay.run_once(), 4)
    assert (report.projected, report.released, report.failed) == (1, 0, 1)
    assert db.failed_by_id[1][1:] == ("pending", "TimeoutError: hubs did not answer within 0.1 s")


# --- projections that hang (Cosmos DB paused: connections accepted, nothing answered) -------------------


def test_a_running_delivery_is_probed_every_watch_interval_until_its_deadline_is_nearer() -> None:
    assert probe_due_before_deadline(0.0, None, 1.0)
    assert probe_due_before_deadline(100.0, None, 1.0)  # no deadline: watched for as long as it runs
    assert probe_due_before_deadline(5.0, 30.0, 1.0)
    assert not probe_due_before_deadline(29.5, 30.0, 1.0)  # the deadline comes first
    assert not probe_due_before_deadline(0.0, 0.05, 1.0)


async def test_hanging_projections_are_given_up_as_an_outage_as_soon_as_cosmos_misses_a_probe() -> None:
    db = FakeStore([event(1), event(2, attempts=2)])
    cosmos = Hanging("cosmos", down=True)
    relay = relay_for(db, cosmos)
    assert relay.projections.deadline_seconds == 30.0  # the default: far longer than this test may take
    relay.projections.watch_seconds = 0.01
    report = await asyncio.wait_for(relay.run_once(), 4)
    assert (report.claimed, report.released, report.failed, report.dead) == (2, 2, 2, 0)
    assert db.failed == []  # no attempt spent
    assert cosmos.probes == 1
    assert all("cosmos unreachable" in error for _, error in db.released)
    assert not relay.projections.breaker.delivers  # probed every second from now on


async def test_slow_projections_while_cosmos_answers_are_watched_until_their_deadline_then_charged() -> None:
    db = FakeStore([event(1)])
    cosmos = Hanging("cosmos", down=False)
    relay = relay_for(db, cosmos)
    relay.projections.deadline_seconds = 0.1
    relay.projections.watch_seconds = 0.02
    report = await asyncio.wait_for(relay.run_once(), 4)
    assert (report.released, report.failed) == (0, 1)
    assert cosmos.probes >= 2  # looked at while it ran, and once more to judge the failure
    assert db.failed_by_id[1][1:] == ("pending", "TimeoutError: cosmos did not answer within 0.1 s")
    assert relay.projections.breaker.delivers


class SlowProbe(Sink):
    """A sink whose deliveries hang and whose probe answers, slowly enough for watchers to meet on it."""

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.seen.append([e.id for e in events])
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def probe(self) -> None:
        self.probes += 1
        await asyncio.sleep(0.05)  # the answer's own latency, not synchronisation


async def test_deliveries_watching_one_sink_at_once_share_one_probe() -> None:
    cosmos = SlowProbe("cosmos")
    relay = relay_for(FakeStore([]), cosmos)
    relay.projections.watch_seconds = 0.01
    relay.projections.deadline_seconds = 0.04  # the deliveries end (charged) after one watch each
    await asyncio.wait_for(
        asyncio.gather(*(relay._deliver(relay.projections, [event(i)]) for i in (1, 2, 3))), 4
    )
    assert cosmos.probes == 1


async def test_a_sink_that_took_an_event_within_the_watch_interval_is_not_probed_again() -> None:
    cosmos = SlowProbe("cosmos")
    relay = relay_for(FakeStore([]), cosmos)
    relay.projections.watch_seconds = 60.0
    relay.projections.deadline_seconds = 120.0
    relay.projections.answered_at = time.monotonic()  # just took an event
    delivery = asyncio.ensure_future(relay._deliver(relay.projections, [event(1)]))
    # Unwatched until the interval ends: no probe while the sink is known to answer.
    done, _ = await asyncio.wait({delivery}, timeout=0.1)
    assert not done and cosmos.probes == 0
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivery
