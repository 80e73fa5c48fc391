"""The relay under concurrency: two relays at once, a drain woken by NOTIFY, and counters after a storm of
concurrent reactions with replays: every projection ends equal to PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared_code.bootstrap import change_feed_service
from shared_code.domain.limits import REACTION_TYPES
from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.policy import RelayPolicy
from shared_code.outbox.relay import OutboxRelay
from shared_code.outbox.store import OutboxStore
from shared_code.projections.writes import COUNTERS, POSTS, REACTIONS
from tests.support.pipeline import (
    Owner,
    People,
    Recorder,
    all_docs,
    assert_projections_match_postgres,
    hub_messages,
    production_handlers,
    read_doc,
    relay_with,
    run_until_idle,
)
from tests.support.polling import eventually

if TYPE_CHECKING:
    from devhost.services.eventhubs import EventHubsStandIn
    from shared_code.app_context import AppContext


async def catch_up_change_feeds(ctx: AppContext) -> None:
    """What both change feed functions would be handed: every document at its latest version."""
    await change_feed_service(ctx).fan_out_posts(list((await all_docs(ctx, POSTS)).values()))
    await change_feed_service(ctx).apply_reactions(list((await all_docs(ctx, REACTIONS)).values()))


async def busy_graph(people: People) -> None:
    """Five people following, posting, editing, reacting, commenting, unfollowing and muting."""
    names = ["ann", "ben", "cat", "dan", "eve"]
    await people.join(*names)
    posts: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        for other in (names[(i + 1) % 5], names[(i + 2) % 5]):
            await people.edge("PUT", name, "follow", other)
        posts[name] = [await people.post(name, f"{name} {n}") for n in range(2)]
        await people.edit(name, posts[name][0], f"{name} 0, edited")
    for i, name in enumerate(names):
        target = posts[names[(i + 1) % 5]][0]
        await people.react(name, target, REACTION_TYPES[i % len(REACTION_TYPES)])
        await people.comment(name, posts[names[(i + 3) % 5]][1], f"from {name}")
    await people.react("ann", posts["ben"][0], None)
    await people.edge("DELETE", "ann", "follow", "ben")
    await people.edge("PUT", "cat", "mute", "dan")
    await people.ok("DELETE", f"/api/posts/{posts['eve'][1]}", "eve")
    await people.ok("PATCH", "/api/users/me", "dan", {"displayName": "Daniel"})


async def test_two_relays_at_once_publish_everything_and_leave_every_projection_exact(
    app_context: AppContext, people: People, owner: Owner, eventhubs_standin: EventHubsStandIn
) -> None:
    await busy_graph(people)
    rows = await owner.outbox()
    policy = RelayPolicy(batch_size=3, claim_lease_seconds=60, max_attempts=3, backoff_base_seconds=0.05)
    recorders = [Recorder("relay-a"), Recorder("relay-b")]
    relays = [relay_with(app_context, policy, [*production_handlers(app_context), r]) for r in recorders]

    async def until_all_published(relay: OutboxRelay) -> None:
        async def step() -> int:
            await run_until_idle(relay)
            return await owner.unpublished()

        await eventually(step, lambda left: left == 0, timeout=30, interval=0.02, what="outbox drained")

    await asyncio.gather(*(until_all_published(relay) for relay in relays))

    assert all(recorder.seen for recorder in recorders), "both relays took part"
    seen = [i for recorder in recorders for i in recorder.seen]
    assert set(seen) == {r.id for r in rows}  # every event at least once
    events = {str(e.event_id): e for e in await owner.stored_events()}
    messages = hub_messages(eventhubs_standin, app_context.settings.eventhub_name, events)
    assert {m["messageId"] for m in messages} == set(events)
    # whichever relay took them, each aggregate's events reached Event Hubs in version order
    versions: dict[str, list[int]] = {}
    for message in messages:
        event = events[message["messageId"]]
        versions.setdefault(str(event.aggregate_id), []).append(event.aggregate_version)
    assert all(v == sorted(v) for v in versions.values()), versions
    assert any(len(v) > 1 for v in versions.values())
    await catch_up_change_feeds(app_context)
    await assert_projections_match_postgres(app_context, owner)


class WatchedRelay(OutboxRelay):
    """The relay, telling when it starts waiting for a notification."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = asyncio.Event()
        self.waits = 0

    async def _wait_for_notify(self, listener: Any, timeout: float) -> None:
        self.waits += 1
        self.waiting.set()
        await super()._wait_for_notify(listener, timeout)


async def test_drain_is_woken_by_notify_for_an_event_committed_while_it_waits(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice")
    recorder = Recorder()
    relay = WatchedRelay(
        OutboxStore(app_context.pg_pool, listen_url=app_context.settings.postgres_url.get_secret_value()),
        [*production_handlers(app_context), recorder],
        RelayPolicy(batch_size=50, claim_lease_seconds=30),
    )
    await run_until_idle(relay)  # nothing left: the drain below starts by waiting
    # Shorter than the idle recheck (5 s): only a notification can wake the drain before its budget ends.
    budget = 2.0
    drain = asyncio.create_task(relay.drain(budget))
    await asyncio.wait_for(relay.waiting.wait(), timeout=10)
    assert (
        await owner.scalar(
            """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND query = 'LISTEN outbox' AND state = 'idle'"""
        )
        == 1
    )
    waits_before = relay.waits
    batches_before = len(recorder.batches)

    post = await people.post("alice", "are you listening?")
    report = await asyncio.wait_for(drain, timeout=budget + 10)

    assert report.errors == []
    assert report.published == 1
    assert report.seconds >= budget  # it kept waiting after the wake-up, as a drain does
    [post_event] = await owner.stored_events("event_type = 'post.created'")
    assert post_event.id in [i for batch in recorder.batches[batches_before:] for i in batch]
    assert relay.waits > waits_before  # it went back to waiting after handling the woken round
    assert (await owner.by_id())[post_event.id].status == "published"
    assert await read_doc(app_context, POSTS, post, post) is not None


async def test_counters_equal_postgres_after_a_storm_of_reactions_with_replays(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    names = [f"fan{i}" for i in range(8)]
    await people.join("star", *names)
    post = await people.post("star", "react to this")
    relay = relay_with(app_context, RelayPolicy(batch_size=20, claim_lease_seconds=60))
    shuffle = random.Random(20240501)
    seen_documents: list[dict[str, Any]] = []  # every reaction document the change feed was handed

    async def pipeline_pass() -> None:
        """The relay, then the reactions change feed on what it finds (the storm may still be running)."""
        await run_until_idle(relay)
        docs = list((await all_docs(app_context, REACTIONS)).values())
        seen_documents.extend(docs)
        await change_feed_service(app_context).apply_reactions(docs)

    async def fan(name: str, moves: Sequence[str | None]) -> None:
        for move in moves:
            await people.react(name, post, move)

    comment_ids: list[str] = []
    for wave in range(3):
        moves = {n: [shuffle.choice([*REACTION_TYPES, None]) for _ in range(3)] for n in names}
        await asyncio.gather(
            *(fan(n, m) for n, m in moves.items()),
            people.react("star", post, shuffle.choice(REACTION_TYPES)),  # one's own post counts too
            people.comment(names[wave], post, f"wave {wave}"),
            pipeline_pass(),
        )
        comment_ids.extend(
            r[0]
            for r in await owner.rows(
                "SELECT id::text FROM comments WHERE deleted_at IS NULL AND content = %s", (f"wave {wave}",)
            )
        )
    await people.ok("DELETE", f"/api/comments/{comment_ids[0]}", names[0])
    await pipeline_pass()

    async def assert_exact() -> None:
        truth = dict(
            await owner.rows(
                "SELECT type, count(*) FROM reactions WHERE post_id = %s AND deleted_at IS NULL GROUP BY type",
                (post,),
            )
        )
        comments = await owner.scalar(
            "SELECT count(*) FROM comments WHERE post_id = %s AND deleted_at IS NULL", (post,)
        )
        [(stored, stored_comments, version)] = await owner.rows(
            "SELECT reactions, comments, version FROM post_counts WHERE post_id = %s", (post,)
        )
        assert {k: v for k, v in stored.items() if v} == truth  # PostgreSQL's own counts are the truth
        assert stored_comments == comments
        doc = await read_doc(app_context, COUNTERS, f"{post}:counts", post)
        assert doc is not None
        assert ({k: v for k, v in doc["reactions"].items() if v}, doc["comments"], doc["version"]) == (
            truth,
            comments,
            version,
        )

    await assert_exact()
    assert len(await all_docs(app_context, REACTIONS)) == await owner.scalar(
        "SELECT count(*) FROM reactions WHERE post_id = %s", (post,)
    )

    # replays: older documents after newer ones, in any order, twice over
    stale = seen_documents[:]
    shuffle.shuffle(stale)
    await change_feed_service(app_context).apply_reactions(stale)
    await change_feed_service(app_context).apply_reactions(stale)
    await assert_exact()

    # the relay delivering every event of the storm again, then the change feed on its documents
    events: list[StoredEvent] = await owner.stored_events("aggregate_type IN ('reaction', 'comment')")
    await owner.redeliver(e.id for e in events)
    await pipeline_pass()
    await change_feed_service(app_context).apply_reactions(stale)
    await assert_exact()

    notes = await all_docs(app_context, "notifications")
    assert all(n["recipientId"] == people.ids["star"] for n in notes.values())
    assert all(n["actorId"] != people.ids["star"] for n in notes.values())  # no note for one's own reaction
