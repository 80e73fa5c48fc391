"""The outbox relay's logic without a database: backoff and dead-lettering arithmetic, how handler outcomes
become published / backed-off / dead events, the order handlers see, the handlers' own routing (Cosmos
projections, feed maintenance, Event Hubs), and the drain loop.

The policy (policy.py) is checked as plain functions; the loop (relay.py) runs against a recording
stand-in for its store (tests/support/relay_store.py) that answers the claim with canned events. The
store's SQL, the claim query above all, and everything else that needs the real stack, is covered in
tests/integration/outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import uuid4

import psycopg
import pytest

from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.handlers import EventHubsPublisher, FeedMaintenanceHandler, ProjectionHandler
from shared_code.outbox.policy import (
    BACKOFF_CAP_SECONDS,
    LAST_ERROR_MAX,
    ChargedFailure,
    RelayPolicy,
    RoundReport,
    becomes_dead,
    charge,
    claims_again_after,
    claims_again_at_once,
    may_claim,
    release,
    retry_delay_seconds,
)
from shared_code.outbox.relay import EventHandler, OutboxRelay
from shared_code.outbox.store import OutboxStore
from tests.support.relay_store import NOW, FakeStore, event

# --- backoff and dead-lettering arithmetic ----------------------------------------------------------


@pytest.mark.parametrize(("attempts_before", "expected"), [(0, 60.0), (1, 120.0), (2, 240.0), (5, 1920.0)])
def test_backoff_doubles_from_the_base(attempts_before: int, expected: float) -> None:
    assert retry_delay_seconds(attempts_before, 60.0) == expected


def test_backoff_is_capped_however_many_attempts_failed() -> None:
    assert retry_delay_seconds(9, 60.0) == BACKOFF_CAP_SECONDS
    assert retry_delay_seconds(10_000, 60.0) == BACKOFF_CAP_SECONDS  # no overflow either


def test_backoff_scales_with_a_small_base() -> None:
    assert retry_delay_seconds(0, 0.05) == pytest.approx(0.05)
    assert retry_delay_seconds(3, 0.05) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("attempts_before", "max_attempts", "dead"),
    [
        (0, 3, False),
        (1, 3, False),
        (2, 3, True),
        (7, 8, True),
        (0, 1, True),
        (6, 8, False),
    ],
)
def test_an_event_dies_on_its_last_allowed_attempt(
    attempts_before: int, max_attempts: int, dead: bool
) -> None:
    assert becomes_dead(attempts_before, max_attempts) is dead


# --- the envelope ------------------------------------------------------------------------------------


def test_the_envelope_carries_id_type_aggregate_version_time_payload_and_metadata() -> None:
    e = event(7, version=3, payload={"postId": "p"}, metadata={"correlationId": "c-1", "actor": "alice"})
    assert e.envelope() == {
        "id": str(e.event_id),
        "type": "post.updated",
        "aggregate": {"type": "post", "id": str(e.aggregate_id)},
        "version": 3,
        "occurredAt": NOW.isoformat(),
        "payload": {"postId": "p"},
        "metadata": {"correlationId": "c-1", "actor": "alice"},
    }
    assert e.correlation_id == "c-1"
    assert event(8).correlation_id is None


@dataclass
class ScriptedHandler:
    """Fails the listed outbox ids (or the whole batch, by raising); records what it was given."""

    name: str
    fail: Mapping[int, BaseException] = field(default_factory=dict)
    raise_on_batch: BaseException | None = None
    seen: list[list[int]] = field(default_factory=list)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.seen.append([e.id for e in events])
        if self.raise_on_batch is not None:
            raise self.raise_on_batch
        return {e.id: self.fail[e.id] for e in events if e.id in self.fail}


def relay_for(db: FakeStore, handlers: Sequence[EventHandler], **policy: Any) -> OutboxRelay:
    return OutboxRelay(cast(OutboxStore, db), handlers, RelayPolicy(**policy))


# --- a round: claim, handle, record ------------------------------------------------------------------


async def test_an_empty_claim_records_nothing() -> None:
    db = FakeStore([])
    handler = ScriptedHandler("h")
    report = await relay_for(db, [handler]).run_once()
    assert report == RoundReport()
    assert handler.seen == []
    assert db.transactions == 1  # the claim only


async def test_the_claim_asks_for_the_policys_batch_size_and_lease() -> None:
    db = FakeStore([])
    await relay_for(db, [], batch_size=17, claim_lease_seconds=2.5).run_once()
    [claim] = db.claims
    assert (claim["limit"], claim["lease"], claim["project"], claim["publish"]) == (17, 2.5, True, True)


async def test_handlers_see_the_batch_in_outbox_order_and_successes_are_published() -> None:
    events = [event(i) for i in (12, 3, 7)]
    db = FakeStore(events)
    first, second = ScriptedHandler("first"), ScriptedHandler("second")
    report = await relay_for(db, [first, second]).run_once()
    assert first.seen == second.seen == [[3, 7, 12]]
    assert report == RoundReport(claimed=3, published=3)
    assert db.published == [[3, 7, 12]]
    assert db.failed == []


async def test_an_event_is_published_only_when_every_handler_succeeded() -> None:
    events = [event(1), event(2), event(3)]
    db = FakeStore(events)
    cosmos = ScriptedHandler("cosmos", fail={2: ConnectionError("cosmos unreachable")})
    hubs = ScriptedHandler("hubs", fail={3: TimeoutError("send timed out")})
    report = await relay_for(db, [cosmos, hubs], backoff_base_seconds=60.0, max_attempts=8).run_once()
    assert report == RoundReport(claimed=3, published=1, failed=2, dead=0)
    assert db.published == [[1]]
    assert db.failed_by_id == {
        2: (60.0, "pending", "ConnectionError: cosmos unreachable"),
        3: (60.0, "pending", "TimeoutError: send timed out"),
    }


async def test_a_failure_backs_off_by_the_events_own_attempts() -> None:
    events = [event(1, attempts=0), event(2, attempts=2), event(3, attempts=4)]
    db = FakeStore(events)
    boom = {e.id: RuntimeError("nope") for e in events}
    relay = relay_for(db, [ScriptedHandler("h", fail=boom)], backoff_base_seconds=10.0, max_attempts=8)
    await relay.run_once()
    assert {i: delay for i, (delay, _, _) in db.failed_by_id.items()} == {1: 10.0, 2: 40.0, 3: 160.0}
    assert db.published == []  # nothing to publish: no update issued


async def test_the_last_allowed_failure_makes_the_event_dead_and_earlier_ones_do_not() -> None:
    events = [event(1, attempts=1), event(2, attempts=2), event(3, attempts=0)]
    db = FakeStore(events)
    handler = ScriptedHandler("h", fail={1: RuntimeError("a"), 2: RuntimeError("b")})
    report = await relay_for(db, [handler], max_attempts=3).run_once()
    assert report == RoundReport(claimed=3, published=1, failed=2, dead=1)
    assert {i: status for i, (_, status, _) in db.failed_by_id.items()} == {1: "pending", 2: "dead"}
    assert db.published == [[3]]


async def test_a_handler_that_raises_fails_the_whole_batch() -> None:
    events = [event(1), event(2)]
    db = FakeStore(events)
    healthy = ScriptedHandler("healthy")
    broken = ScriptedHandler("broken", raise_on_batch=OSError("connection reset"))
    report = await relay_for(db, [healthy, broken]).run_once()
    assert report == RoundReport(claimed=2, published=0, failed=2)
    assert db.published == []
    assert {i: err for i, (_, _, err) in db.failed_by_id.items()} == {
        1: "OSError: connection reset",
        2: "OSError: connection reset",
    }


async def test_a_long_error_is_truncated_for_last_error() -> None:
    db = FakeStore([event(1)])
    await relay_for(db, [ScriptedHandler("h", fail={1: ValueError("x" * 5000)})]).run_once()
    assert len(db.failed_by_id[1][2]) == 2000


# --- the drain loop ----------------------------------------------------------------------------------


class ScriptedRelay(OutboxRelay):
    """Each claim answers from a script (a round's report, or an error); no database, no listener."""

    def __init__(self, script: list[RoundReport | BaseException], **policy: Any) -> None:
        super().__init__(cast(OutboxStore, FakeStore([])), [], RelayPolicy(**policy))
        self.script = script
        self.waits = 0
        self.reports: list[RoundReport] = []

    async def claim_round(self) -> list[StoredEvent]:
        step = self.script.pop(0) if self.script else RoundReport()
        if isinstance(step, BaseException):
            raise step
        self.reports.append(step)
        return [event(i) for i in range(step.claimed)]

    async def finish_round(self, events: list[StoredEvent]) -> RoundReport:
        return self.reports.pop(0)

    async def _wait_for_notify(self, listener: Any, timeout: float) -> None:
        self.waits += 1
        await super()._wait_for_notify(listener, timeout)


async def test_drain_runs_busy_rounds_back_to_back_and_survives_a_lost_database() -> None:
    relay = ScriptedRelay(
        [
            RoundReport(claimed=2, published=2),
            RoundReport(claimed=1, failed=1, dead=1),
            psycopg.OperationalError("server closed the connection"),
        ],
        batch_size=1,  # every claim is full: more may be waiting
    )
    # After the error the relay waits out the rest of the budget (it would retry after 5 s).
    report = await relay.drain(0.3)
    assert (report.rounds, report.published, report.failed, report.dead) == (2, 2, 1, 1)
    assert report.errors == ["OperationalError: server closed the connection"]
    assert relay.waits == 0  # busy rounds never wait for a notification
    assert report.seconds >= 0.3


class GatedRelay(OutboxRelay):
    """Claims always find a full batch; each round is held until the test lets it finish."""

    def __init__(self, **policy: Any) -> None:
        super().__init__(cast(OutboxStore, FakeStore([])), [], RelayPolicy(**policy))
        self.claims = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.gates: list[asyncio.Event] = []
        self.started: asyncio.Queue[int] = asyncio.Queue()

    async def claim_round(self) -> list[StoredEvent]:
        self.claims += 1
        return [event(self.claims)]

    async def finish_round(self, events: list[StoredEvent]) -> RoundReport:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started.put_nowait(events[0].id)
        await gate.wait()
        self.in_flight -= 1
        return RoundReport(claimed=len(events), published=len(events))


async def test_the_drain_claims_the_next_batches_while_a_round_is_in_flight_up_to_its_window() -> None:
    relay = GatedRelay(batch_size=1, rounds_in_flight=3)
    drain = asyncio.create_task(relay.drain(0.5))
    assert [await asyncio.wait_for(relay.started.get(), 5) for _ in range(3)] == [1, 2, 3]
    for _ in range(20):  # give the drain every chance to claim a fourth
        await asyncio.sleep(0)
    # The first round has not finished, yet two more were claimed; no fourth until one ends.
    assert (relay.claims, relay.in_flight) == (3, 3)
    relay.gates[1].set()  # a later round ending first frees its slot at once
    assert await asyncio.wait_for(relay.started.get(), 5) == 4
    assert relay.in_flight == 3
    while not drain.done():
        for gate in relay.gates:
            gate.set()
        await asyncio.sleep(0.01)
    report = drain.result()
    assert relay.most_in_flight == 3
    assert report.rounds == report.published == relay.claims


async def test_the_drain_waits_for_its_rounds_in_flight_before_it_ends() -> None:
    relay = GatedRelay(batch_size=1, rounds_in_flight=2)
    drain = asyncio.create_task(relay.drain(0.05))
    await asyncio.sleep(0.2)  # the budget is over, two rounds are still in flight
    assert not drain.done()
    for gate in relay.gates:
        gate.set()
    report = await asyncio.wait_for(drain, 5)
    assert report.rounds == relay.claims == 2


async def test_drain_does_not_swallow_a_programming_error() -> None:
    relay = ScriptedRelay([RuntimeError("bug")])
    with pytest.raises(RuntimeError, match="bug"):
        await relay.drain(5.0)


# --- the Cosmos projection handler --------------------------------------------------------------------


class RecordingWriter:
    """A CosmosWriter stand-in: fails the writes of chosen posts; tracks how many run at once."""

    def __init__(self, failing_posts: set[str]) -> None:
        self.failing_posts = failing_posts
        self.applied: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def apply_all(self, writes: Any) -> None:
        writes = list(writes)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the others start: concurrency is what is measured
            for write in writes:
                if write.document["id"] in self.failing_posts:
                    raise ConnectionError(f"cosmos write of {write.document['id']} failed")
                self.applied.append(write.document["id"])
        finally:
            self.in_flight -= 1


def post_created(outbox_id: int) -> StoredEvent:
    post_id = uuid4()
    payload = {
        "postId": str(post_id),
        "author": {"userId": str(uuid4())},
        "content": "c",
        "media": [],
        "status": "visible",
        "createdAt": NOW.isoformat(),
    }
    return event(outbox_id, post_id, event_type="post.created", payload=payload)


async def test_projection_failures_are_per_event_and_concurrency_is_bounded() -> None:
    events = [post_created(i) for i in range(1, 9)]
    failing = events[2]
    writer = RecordingWriter({failing.payload["postId"]})
    failures = await ProjectionHandler(writer, concurrency=3).handle(events)  # type: ignore[arg-type]
    assert set(failures) == {failing.id}
    assert isinstance(failures[failing.id], ConnectionError)
    # each post event writes posts_v2 and authorPosts (same id)
    expected = [e.payload["postId"] for e in events if e is not failing for _ in ("posts_v2", "authorPosts")]
    assert sorted(writer.applied) == sorted(expected)
    assert writer.most_in_flight == 3


async def test_an_event_type_without_projection_fails_that_event_only() -> None:
    events = [post_created(1), event(2, event_type="post.teleported")]
    failures = await ProjectionHandler(RecordingWriter(set()), 4).handle(events)  # type: ignore[arg-type]
    assert list(failures) == [2]
    assert isinstance(failures[2], KeyError)


# --- feed maintenance ---------------------------------------------------------------------------------


class RecordingFeeds:
    """A FeedService stand-in; `seen` are the (recipient, author) pairs PostgreSQL would say still see each
    other's posts (a live follow, no mute, no block)."""

    def __init__(self, seen: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.seen = seen
        self.calls: list[tuple[str, str, str]] = []

    async def sees(self, recipient_id: str, author_id: str) -> bool:
        return (recipient_id, author_id) in self.seen

    async def backfill(self, recipient_id: str, author_id: str) -> int:
        self.calls.append(("backfill", recipient_id, author_id))
        return 0

    async def remove_author(self, recipient_id: str, author_id: str) -> int:
        self.calls.append(("remove", recipient_id, author_id))
        return 0

    async def fan_out_repost(self, post_id: str, reposter_id: str) -> int:
        self.calls.append(("repost", post_id, reposter_id))
        return 0

    async def retract_repost(self, post_id: str, reposter_id: str) -> int:
        self.calls.append(("unrepost", post_id, reposter_id))
        return 0


@pytest.mark.parametrize(
    ("event_type", "aggregate_type", "payload", "expected"),
    [
        ("follow.created", "follow", {"followerId": "F", "followeeId": "A"}, [("backfill", "F", "A")]),
        ("follow.deleted", "follow", {"followerId": "F", "followeeId": "A"}, [("remove", "F", "A")]),
        ("mute.created", "mute", {"muterId": "M", "mutedId": "A"}, [("remove", "M", "A")]),
        ("mute.deleted", "mute", {"muterId": "M", "mutedId": "A"}, [("backfill", "M", "A")]),
        (
            "block.created",
            "block",
            {"blockerId": "B", "blockedId": "X"},
            [("remove", "B", "X"), ("remove", "X", "B")],
        ),
        ("block.deleted", "block", {"blockerId": "B", "blockedId": "X"}, []),
        ("post.created", "post", {"postId": "P"}, []),
        ("repost.created", "repost", {"postId": "P", "userId": "R"}, [("repost", "P", "R")]),
        ("repost.deleted", "repost", {"postId": "P", "userId": "R"}, [("unrepost", "P", "R")]),
        ("bookmark.created", "bookmark", {"postId": "P", "userId": "R"}, []),
    ],
)
async def test_feed_maintenance_routes_social_events(
    event_type: str, aggregate_type: str, payload: dict[str, str], expected: list[tuple[str, str, str]]
) -> None:
    feeds = RecordingFeeds()
    handler = FeedMaintenanceHandler(feeds, concurrency=4)
    failures = await handler.handle(
        [event(1, event_type=event_type, aggregate_type=aggregate_type, payload=payload)]
    )
    assert failures == {}
    assert sorted(feeds.calls) == sorted(expected)


@pytest.mark.parametrize(
    ("event_type", "aggregate_type", "payload"),
    [
        ("mute.created", "mute", {"muterId": "M", "mutedId": "A"}),
        ("follow.deleted", "follow", {"followerId": "M", "followeeId": "A"}),
        ("block.created", "block", {"blockerId": "M", "blockedId": "A"}),
    ],
)
async def test_a_removal_is_skipped_while_the_recipient_still_sees_the_author(
    event_type: str, aggregate_type: str, payload: dict[str, str]
) -> None:
    # e.g. mute.created delivered again after mute.deleted: PostgreSQL says M sees A again
    feeds = RecordingFeeds(seen=frozenset({("M", "A")}))
    handler = FeedMaintenanceHandler(feeds, concurrency=4)
    failures = await handler.handle(
        [event(1, event_type=event_type, aggregate_type=aggregate_type, payload=payload)]
    )
    assert failures == {}
    expected = [("remove", "A", "M")] if event_type == "block.created" else []
    assert feeds.calls == expected


# --- Event Hubs ------------------------------------------------------------------------------------------


class FakeBatch:
    def __init__(self, partition_key: str) -> None:
        self.partition_key = partition_key
        self.events: list[Any] = []

    def add(self, data: Any) -> None:
        self.events.append(data)


class FakeProducer:
    def __init__(self, failing_keys: frozenset[str] = frozenset()) -> None:
        self.failing_keys = failing_keys
        self.sent: list[FakeBatch] = []

    async def create_batch(self, *, partition_key: str) -> FakeBatch:
        return FakeBatch(partition_key)

    async def send_batch(self, batch: FakeBatch) -> None:
        if batch.partition_key in self.failing_keys:
            raise ConnectionError("link detached")
        self.sent.append(batch)


async def test_event_hubs_sends_each_event_keyed_by_its_aggregate_with_its_id() -> None:
    a, b = uuid4(), uuid4()
    events = [event(1, a, metadata={"correlationId": "c-1", "traceparent": "00-abc-def-01"}), event(2, b)]
    producer = FakeProducer()
    failures = await EventHubsPublisher(producer, concurrency=4).handle(events)  # type: ignore[arg-type]
    assert failures == {}
    by_key = {batch.partition_key: batch.events for batch in producer.sent}
    assert set(by_key) == {str(a), str(b)}
    data = by_key[str(a)][0]
    assert len(by_key[str(a)]) == 1
    assert data.message_id == str(events[0].event_id)
    assert data.content_type == "application/json"
    assert data.body_as_json() == events[0].envelope()
    assert data.properties == {
        "eventType": "post.updated",
        "aggregateType": "post",
        "aggregateVersion": 1,
        "correlationId": "c-1",
        "traceparent": "00-abc-def-01",
    }
    assert by_key[str(b)][0].properties == {
        "eventType": "post.updated",
        "aggregateType": "post",
        "aggregateVersion": 1,
    }


async def test_a_failed_send_fails_only_its_aggregates_events() -> None:
    a, b = uuid4(), uuid4()
    producer = FakeProducer(frozenset({str(b)}))
    failures = await EventHubsPublisher(producer, 4).handle([event(1, a), event(2, b)])  # type: ignore[arg-type]
    assert list(failures) == [2]
    assert [batch.partition_key for batch in producer.sent] == [str(a)]


async def test_without_a_producer_publishing_is_off_and_nothing_fails() -> None:
    assert await EventHubsPublisher(None, 4).handle([event(1)]) == {}


def test_a_drain_lasts_until_just_before_the_next_run() -> None:
    from datetime import UTC, datetime, timedelta

    from shared_code.outbox.policy import NEXT_RUN_MARGIN_SECONDS, drain_budget_seconds

    now = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    next_run = datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    assert drain_budget_seconds(next_run, now, 60) == 59.75 - NEXT_RUN_MARGIN_SECONDS
    assert drain_budget_seconds(next_run, now, 30) == 30  # the cap wins
    assert drain_budget_seconds(None, now, 42) == 42  # no schedule status: the cap
    assert drain_budget_seconds(now - timedelta(seconds=5), now, 60) == 1.0  # overdue: still a moment


# --- what an outcome costs: the policy as plain functions ----------------------------------------------


def test_charging_a_failure_backs_the_event_off_or_kills_it_on_its_last_attempt() -> None:
    policy = RelayPolicy(max_attempts=3, backoff_base_seconds=10.0)
    assert charge(5, 1, ValueError("bad"), policy) == ChargedFailure(5, 20.0, "pending", "ValueError: bad")
    last = charge(5, 2, ValueError("bad"), policy)
    assert (last.status, last.dead, last.delay_seconds) == ("dead", True, 40.0)
    assert len(charge(5, 0, ValueError("x" * 5000), policy).last_error) == LAST_ERROR_MAX


def test_a_released_claim_says_which_sink_it_waits_for_and_that_no_attempt_was_spent() -> None:
    note = release(9, "event-hubs", ConnectionError("refused")).note
    assert note == "waiting for event-hubs to answer (no attempt spent): ConnectionError: refused"


def test_a_streaming_drain_claims_while_its_window_has_room_and_the_budget_allows() -> None:
    assert may_claim(0, 3, seconds_left=10.0)
    assert may_claim(2, 3, seconds_left=0.01)
    assert not may_claim(3, 3, seconds_left=10.0)  # the window is full
    assert not may_claim(0, 3, seconds_left=0.0)  # the budget is over: the rounds in flight finish


def test_a_full_claim_claims_again_at_once_and_a_short_one_waits() -> None:
    assert claims_again_at_once(200, 200)
    assert not claims_again_at_once(199, 200)
    assert not claims_again_at_once(0, 200)


def test_a_finished_round_claims_again_unless_all_it_claimed_went_back_to_a_paused_sink() -> None:
    assert claims_again_after(RoundReport(claimed=5, published=5))
    assert claims_again_after(RoundReport(claimed=5, failed=1, released=1, published=4))
    assert not claims_again_after(RoundReport(claimed=5, failed=5, released=5))
