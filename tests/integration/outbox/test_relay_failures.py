"""The relay when things fail: a Cosmos failure mid-batch backs off and recovers with nothing lost; a dead
event blocks its own aggregate only until it is requeued; a poison event dies alone, not with its batch; a
relay that dies holding claims loses nothing; a relay whose lease ran out cannot undo another's success."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb

from shared_code.domain.events import AuthorSnapshot, PostCreated, UserCounts
from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.policy import RelayPolicy, RoundReport
from shared_code.outbox.relay import EventHandler
from shared_code.outbox.store import requeue_dead
from shared_code.projections.writes import POSTS
from tests.support.pipeline import (
    FAST,
    FailingFor,
    OutboxRow,
    Owner,
    People,
    Recorder,
    production_handlers,
    read_doc,
    relay_with,
    run_until_idle,
)
from tests.support.polling import eventually

if TYPE_CHECKING:
    from shared_code.app_context import AppContext


def with_failing_projection(
    ctx: AppContext, outbox_ids: set[int], times: int | None
) -> tuple[list[EventHandler], FailingFor, Recorder]:
    """The production handlers, the Cosmos projection failing for `outbox_ids`, and a recorder."""
    handlers = production_handlers(ctx)
    projection = next(h for h in handlers if h.name == "cosmos-projections")
    failing = FailingFor(projection, outbox_ids, times)
    recorder = Recorder()
    return [failing if h is projection else h for h in handlers] + [recorder], failing, recorder


def find(rows: Sequence[OutboxRow], aggregate_id: str, version: int) -> OutboxRow:
    [row] = [r for r in rows if r.aggregate_id == aggregate_id and r.aggregate_version == version]
    return row


async def post_version(ctx: AppContext, post_id: str) -> tuple[int, str] | None:
    doc = await read_doc(ctx, POSTS, post_id, post_id)
    return None if doc is None else (doc["version"], doc["content"])


async def test_a_cosmos_failure_mid_batch_backs_off_and_succeeds_later_with_nothing_lost(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice", "bob")
    p = await people.post("alice", "p1")
    await people.edit("alice", p, "p2")
    q = await people.post("bob", "q1")
    await people.edit("bob", q, "q2")
    rows = await owner.outbox()
    p_created, p_updated = find(rows, p, 1), find(rows, p, 2)
    assert (p_created.event_type, p_updated.event_type) == ("post.created", "post.updated")
    handlers, failing, recorder = with_failing_projection(app_context, {p_created.id}, times=2)
    relay = relay_with(app_context, FAST, handlers)

    first = await relay.run_once()
    assert (first.claimed, first.failed, first.dead) == (4, 1, 0)  # two users and two posts' first events
    state = await owner.by_id()
    assert (state[p_created.id].status, state[p_created.id].attempts) == ("pending", 1)
    assert "injected" in (state[p_created.id].last_error or "")
    assert not state[p_created.id].claimed
    assert await post_version(app_context, p) is None  # not written ...
    assert await post_version(app_context, q) == (1, "q1")  # ... while the rest of the batch was

    async def drained() -> int:
        await run_until_idle(relay)
        return await owner.unpublished()

    await eventually(drained, lambda left: left == 0, timeout=20, what="every event published")
    assert failing.failures[p_created.id] == 2
    assert await post_version(app_context, p) == (2, "p2")
    assert await post_version(app_context, q) == (2, "q2")
    state = await owner.by_id()
    assert state[p_created.id].attempts == 2
    assert state[p_created.id].last_error is None
    # the edit waited for its post: it was first handed to handlers after the creation succeeded
    batches = recorder.batches
    created_success = max(i for i, b in enumerate(batches) if p_created.id in b)
    assert min(i for i, b in enumerate(batches) if p_updated.id in b) > created_success


async def test_a_dead_event_blocks_its_aggregate_only_until_requeued(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice", "bob")
    p = await people.post("alice", "v1")
    await people.edit("alice", p, "v2")
    await people.edit("alice", p, "v3")
    q = await people.post("bob", "q1")
    rows = await owner.outbox()
    broken = find(rows, p, 2)
    assert broken.event_type == "post.updated"
    handlers, failing, recorder = with_failing_projection(app_context, {broken.id}, times=None)
    relay = relay_with(
        app_context,
        RelayPolicy(batch_size=50, claim_lease_seconds=30, max_attempts=3, backoff_base_seconds=0.05),
        handlers,
    )

    async def broken_row() -> OutboxRow:
        await run_until_idle(relay)
        return (await owner.by_id())[broken.id]

    dead = await eventually(broken_row, lambda r: r.status == "dead", timeout=20, what="the event dead")
    assert dead.attempts == 3
    assert "injected" in (dead.last_error or "")
    assert failing.failures[broken.id] == 3
    v3 = find(await owner.outbox(), p, 3)
    assert (v3.status, v3.attempts) == ("pending", 0)
    assert v3.id not in recorder.seen  # never handed to a handler behind its dead predecessor
    assert await post_version(app_context, p) == (1, "v1")
    assert await post_version(app_context, q) == (1, "q1")

    # other aggregates carry on; the dead post's own new events queue up behind it
    await people.edit("bob", q, "q2")
    await people.edit("alice", p, "v4")
    await people.ok("PATCH", "/api/users/me", "alice", {"bio": "still here"})
    await run_until_idle(relay)
    assert await post_version(app_context, q) == (2, "q2")
    assert await post_version(app_context, p) == (1, "v1")
    left = {
        (r.aggregate_id, r.aggregate_version, r.status)
        for r in await owner.outbox()
        if r.status != "published"
    }
    assert left == {(p, 2, "dead"), (p, 3, "pending"), (p, 4, "pending")}

    # the operator fixes the cause and requeues it
    assert await requeue_dead(app_context.pg_pool, [v3.id]) == 0  # not dead: untouched
    failing.healed = True
    assert await requeue_dead(app_context.pg_pool) == 1
    requeued = (await owner.by_id())[broken.id]
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    await run_until_idle(relay)
    assert await owner.unpublished() == 0
    assert await post_version(app_context, p) == (4, "v4")
    assert await requeue_dead(app_context.pg_pool) == 0


async def test_claims_of_a_relay_that_died_mid_batch_expire_and_another_run_takes_them(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice", "bob")
    p = await people.post("alice", "hello")
    policy = RelayPolicy(batch_size=50, claim_lease_seconds=1.0, max_attempts=3, backoff_base_seconds=0.05)
    dying = relay_with(app_context, policy)
    claimed = await dying.claim_batch()  # ... and then it never records anything
    assert [e.id for e in claimed] == [r.id for r in await owner.outbox()]
    assert all(r.claimed for r in await owner.outbox())

    recorder = Recorder()
    survivor = relay_with(app_context, policy, [*production_handlers(app_context), recorder])
    assert await survivor.run_once() == RoundReport()  # the lease still holds
    taken = await eventually(
        survivor.run_once, lambda r: r.claimed > 0, timeout=10, what="the expired claims taken over"
    )
    assert (taken.claimed, taken.published) == (len(claimed), len(claimed))
    assert recorder.seen == [e.id for e in claimed]
    rows = await owner.outbox()
    assert {(r.status, r.attempts) for r in rows} == {("published", 0)}  # a lost claim is not an attempt
    assert await post_version(app_context, p) == (1, "hello")


class HeldThenFailing:
    """Fails every event it gets, but only once `release` is set: a relay stuck past its lease."""

    name = "held"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.entered.set()
        await self.release.wait()
        return {e.id: TimeoutError("Cosmos timed out") for e in events}


async def test_a_relay_whose_lease_ran_out_cannot_undo_another_relays_success(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice")
    policy = RelayPolicy(batch_size=50, claim_lease_seconds=0.3, max_attempts=3, backoff_base_seconds=0.05)
    held = HeldThenFailing()
    slow = relay_with(app_context, policy, [held])
    slow_round = asyncio.create_task(slow.run_once())
    await asyncio.wait_for(held.entered.wait(), timeout=10)

    fast = relay_with(app_context, policy)
    taken = await eventually(fast.run_once, lambda r: r.claimed > 0, timeout=10, what="the claim taken over")
    assert taken.published == 1

    held.release.set()
    late = await asyncio.wait_for(slow_round, timeout=10)
    assert late.failed == 1  # its handler did fail ...
    [row] = await owner.outbox()
    # ... but the event stays done
    assert (row.status, row.attempts, row.last_error) == ("published", 0, None)
    assert await run_until_idle(fast) == 0


async def test_a_poison_event_dies_alone_not_with_the_rest_of_its_batch(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    [alice] = await people.join("alice")
    await run_until_idle(relay_with(app_context))
    # An event no handler can ever apply: the moderators' mirror rejects it (its post does not exist).
    ghost = uuid.uuid4()
    payload = PostCreated(
        post_id=ghost,
        author=AuthorSnapshot(
            user_id=uuid.UUID(alice), username="alice", display_name="Alice", avatar_url=None
        ),
        content="from nowhere",
        media=(),
        status="visible",
        created_at=datetime.now(UTC),
        author_counts=UserCounts(user_id=uuid.UUID(alice), followers=0, following=0, posts=1, version=2),
    )
    await owner.conn.execute(
        """INSERT INTO outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload)
           VALUES ('post', %s, 1, 'post.created', %s)""",
        (ghost, Jsonb(payload.to_json())),
    )
    real = await people.post("alice", "a real post")  # claimed in the same batches as the ghost
    relay = relay_with(app_context, FAST)

    async def ghost_row() -> OutboxRow:
        await run_until_idle(relay)
        return find(await owner.outbox(), str(ghost), 1)

    dead = await eventually(ghost_row, lambda r: r.status == "dead", timeout=20, what="the poison event dead")
    assert "ForeignKeyViolation" in (dead.last_error or "")
    row = find(await owner.outbox(), real, 1)
    assert (row.status, row.attempts) == ("published", 0)
    assert (await owner.admin_mirror())[real][1] == "a real post"
