"""Every event type, through the real API and the app's own relay, into Cosmos DB, the admin mirror and
Event Hubs; and the relay's idempotence: a batch delivered twice, or an older event after a newer one,
leaves every projection as it was."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared_code.bootstrap import change_feed_service, outbox_relay
from shared_code.domain.events import EVENT_TYPES
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, POSTS, PROFILES, REACTIONS
from tests.support.pipeline import (
    Owner,
    People,
    all_docs,
    hub_messages,
    run_until_idle,
    snapshot,
)

if TYPE_CHECKING:
    from devhost.services.eventhubs import EventHubsStandIn
    from shared_code.app_context import AppContext


# Every event type but moderation's (flags, appeals, post.moderated): what the story below records.
SOCIAL_EVENT_TYPES = {
    "user.created",
    "profile.updated",
    "user.deleted",
    "follow.created",
    "follow.deleted",
    "block.created",
    "block.deleted",
    "mute.created",
    "mute.deleted",
    "post.created",
    "post.updated",
    "post.deleted",
    "comment.created",
    "comment.deleted",
    "reaction.set",
    "reaction.removed",
}
assert set(EVENT_TYPES) >= SOCIAL_EVENT_TYPES


@dataclass(frozen=True)
class Story:
    """Ids of what `everything_happens` made."""

    alice: str
    bob: str
    carol: str
    dave: str
    post: str  # alice's, edited, commented on and reacted to
    deleted_post: str
    comment: str  # bob's, still there
    deleted_comment: str


async def everything_happens(people: People) -> Story:
    """One story that records every event type at least once."""
    alice, bob, carol, dave = await people.join("alice", "bob", "carol", "dave")
    post = await people.post("alice", "hello")
    deleted_post = await people.post("alice", "to be deleted")
    await people.edit("alice", post, "hello, typo")
    await people.edit("alice", post, "hello, edited")
    await people.ok("DELETE", f"/api/posts/{deleted_post}", "alice")
    await people.ok("PATCH", "/api/users/me", "alice", {"displayName": "Alice Liddell", "bio": "curiouser"})
    await people.edge("PUT", "bob", "follow", "alice")
    await people.edge("PUT", "carol", "follow", "alice")
    await people.edge("DELETE", "carol", "follow", "alice")
    await people.edge("PUT", "bob", "mute", "alice")
    await people.edge("DELETE", "bob", "mute", "alice")
    await people.edge("PUT", "alice", "block", "carol")
    await people.edge("DELETE", "alice", "block", "carol")
    deleted_comment = await people.comment("bob", post, "first")
    await people.ok("DELETE", f"/api/comments/{deleted_comment}", "bob")
    comment = await people.comment("bob", post, "second")
    await people.react("bob", post, "like")
    await people.react("bob", post, None)
    await people.react("carol", post, "love")
    await people.react("alice", post, "wow")
    await people.ok("DELETE", "/api/users/me", "dave")
    return Story(alice, bob, carol, dave, post, deleted_post, comment, deleted_comment)


async def apply_reaction_change_feed(ctx: AppContext) -> None:
    """What the reactions change feed would hand its function: every reaction document, latest version."""
    await change_feed_service(ctx).apply_reactions(list((await all_docs(ctx, REACTIONS)).values()))


async def test_every_event_type_lands_in_its_containers(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    story = await everything_happens(people)
    # dave's deletion starts an erasure job: its later events come from the relay's erasure handler.
    assert {row.event_type for row in await owner.outbox()} == SOCIAL_EVENT_TYPES | {
        "account.erasure_requested"
    }

    published = await run_until_idle(outbox_relay(app_context))
    assert published == len(await owner.outbox())
    assert await owner.unpublished() == 0
    await apply_reaction_change_feed(app_context)
    docs = {
        name: await all_docs(app_context, name)
        for name in (PROFILES, POSTS, REACTIONS, COUNTERS, NOTIFICATIONS, FEED)
    }

    # publicProfiles: users (created, updated, deleted)
    profiles = docs[PROFILES]
    assert set(profiles) == {story.alice, story.bob, story.carol, story.dave}
    for user_id, version in await owner.rows("SELECT id::text, version FROM users"):
        assert profiles[user_id]["version"] == version
    assert profiles[story.alice]["displayName"] == "Alice Liddell"
    assert profiles[story.alice]["bio"] == "curiouser"
    assert profiles[story.bob]["deleted"] is False
    assert (profiles[story.dave]["deleted"], profiles[story.dave]["ttl"]) == (True, 24 * 3600)

    # posts_v2: created, updated, deleted
    posts = docs[POSTS]
    assert set(posts) == {story.post, story.deleted_post}
    assert (posts[story.post]["content"], posts[story.post]["version"]) == ("hello, edited", 3)
    assert posts[story.post]["deleted"] is False
    assert posts[story.post]["author"]["username"] == "alice"
    assert (posts[story.deleted_post]["deleted"], posts[story.deleted_post]["content"]) == (True, "")

    # reactions: set and removed
    reactions = {(d["userId"], d["type"], d["deleted"]) for d in docs[REACTIONS].values()}
    assert reactions == {(story.bob, "like", True), (story.carol, "love", False), (story.alice, "wow", False)}

    # counters: every user's counts and the post's counts equal PostgreSQL's
    # (a user whose counts never changed has none: the counters are a cache, rebuilt on a miss)
    counters = docs[COUNTERS]
    changed = await owner.rows(
        "SELECT user_id::text, followers, following, posts, version FROM user_counts WHERE version > 1"
    )
    assert {f"{r[0]}:counts" for r in changed} | {f"{story.post}:counts"} == set(counters)
    for user_id, followers, following, posts_count, version in changed:
        doc = counters[f"{user_id}:counts"]
        assert (doc["followers"], doc["following"], doc["posts"], doc["version"]) == (
            followers,
            following,
            posts_count,
            version,
        ), user_id
    reactions_count, comments_count, counts_version = (
        await owner.rows(
            "SELECT reactions, comments, version FROM post_counts WHERE post_id = %s", (story.post,)
        )
    )[0]
    post_counts = counters[f"{story.post}:counts"]
    assert post_counts["comments"] == comments_count == 1
    assert post_counts["version"] == counts_version
    assert (
        {k: v for k, v in post_counts["reactions"].items() if v}
        == {k: v for k, v in reactions_count.items() if v}
        == {"love": 1, "wow": 1}
    )

    # notifications: follows and comments from the relay, reactions from the change feed; none for
    # reacting to one's own post, none for a reaction that was removed before the feed saw it
    notes = {n["id"]: n for n in docs[NOTIFICATIONS].values()}
    assert set(notes) == {
        f"follow:{story.bob}:{story.alice}",
        f"follow:{story.carol}:{story.alice}",
        f"comment:{story.deleted_comment}",
        f"comment:{story.comment}",
        f"reaction:{story.post}:{story.carol}",
    }
    assert {n["recipientId"] for n in notes.values()} == {story.alice}

    # userFeed: bob's follow back-filled alice's post (with its edit); carol unfollowed; no deleted post
    feed = docs[FEED]
    assert set(feed) == {f"{story.bob}:{story.post}"}
    # a reference to the post, not a copy: readers show the current post and author (feed_hydration)
    assert {k: v for k, v in feed[f"{story.bob}:{story.post}"].items() if not k.startswith("_")}.keys() >= {
        "recipientId",
        "postId",
        "authorId",
        "createdAt",
        "postVersion",
    }
    assert not {"content", "author", "media"} & feed[f"{story.bob}:{story.post}"].keys()

    # the moderators' mirror in PostgreSQL
    mirror = await owner.admin_mirror()
    assert mirror[story.post] == (story.alice, "hello, edited", "visible", False, "post.updated", 3)
    assert mirror[story.deleted_post][3:] == (True, "post.deleted", 2)
    assert mirror[story.deleted_post][1] == "to be deleted"  # moderators keep the content


async def test_event_hubs_gets_every_event_once_keyed_by_its_aggregate(
    app_context: AppContext, people: People, owner: Owner, eventhubs_standin: EventHubsStandIn
) -> None:
    await everything_happens(people)
    await run_until_idle(outbox_relay(app_context))
    events = {str(e.event_id): e for e in await owner.stored_events()}
    messages = hub_messages(eventhubs_standin, app_context.settings.eventhub_name, events)

    assert Counter(m["messageId"] for m in messages) == Counter(set(events))  # each exactly once
    for message in messages:
        event = events[message["messageId"]]
        assert message["partitionKey"] == str(event.aggregate_id)
        assert message["bodyEncoding"] == "utf8"
        body = json.loads(message["body"])
        expected = event.envelope()
        assert datetime.fromisoformat(body.pop("occurredAt")) == datetime.fromisoformat(
            expected.pop("occurredAt")
        )
        # dave's erasure scrubbed his published events afterwards (docs/privacy.md): the outbox keeps
        # what was sent less the personal fields; every other event is kept as it was sent.
        sent, kept = (
            (body.pop("payload"), body.pop("metadata")),
            (expected.pop("payload"), expected.pop("metadata")),
        )
        assert body == expected
        if sent != kept:
            assert _within(kept, sent), (kept, sent)
        assert message["properties"]["eventType"] == event.event_type
        assert message["properties"]["aggregateType"] == event.aggregate_type
        assert message["properties"]["aggregateVersion"] == event.aggregate_version
    # per aggregate, Event Hubs saw the versions in order
    order: dict[str, list[int]] = {}
    for message in messages:
        event = events[message["messageId"]]
        order.setdefault(str(event.aggregate_id), []).append(event.aggregate_version)
    assert all(versions == sorted(versions) for versions in order.values()), order


async def test_the_same_batch_delivered_twice_leaves_the_same_state(
    app_context: AppContext, people: People, owner: Owner, eventhubs_standin: EventHubsStandIn
) -> None:
    await everything_happens(people)
    relay = outbox_relay(app_context)
    await run_until_idle(relay)
    await apply_reaction_change_feed(app_context)
    before, mirror_before = await snapshot(app_context), await owner.admin_mirror()

    rows = await owner.outbox()
    await owner.redeliver(r.id for r in rows)
    assert await run_until_idle(relay) == len(rows)
    await apply_reaction_change_feed(app_context)

    assert await snapshot(app_context) == before
    assert await owner.admin_mirror() == mirror_before
    # published twice, so on Event Hubs twice: once per publish
    events = await owner.stored_events()
    hub = app_context.settings.eventhub_name
    messages = hub_messages(eventhubs_standin, hub, (e.event_id for e in events))
    assert Counter(m["messageId"] for m in messages) == {str(e.event_id): 2 for e in events}


async def test_an_older_event_after_a_newer_one_changes_nothing(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await everything_happens(people)
    relay = outbox_relay(app_context)
    await run_until_idle(relay)
    await apply_reaction_change_feed(app_context)
    before, mirror_before = await snapshot(app_context), await owner.admin_mirror()

    # every event that has a newer one of its aggregate, delivered again after that newer one
    rows = await owner.outbox()
    latest: dict[tuple[str, str], int] = {}
    for row in rows:
        latest[(row.aggregate_type, row.aggregate_id)] = row.id
    older = [r for r in rows if r.id != latest[(r.aggregate_type, r.aggregate_id)]]
    assert {r.event_type for r in older} >= {
        "user.created",
        "post.created",
        "post.updated",
        "follow.created",
        "mute.created",
        "block.created",
        "comment.created",
        "reaction.set",
    }
    await owner.redeliver(r.id for r in older)
    assert await run_until_idle(relay) == len(older)

    assert await snapshot(app_context) == before
    assert await owner.admin_mirror() == mirror_before


def _within(kept: Any, sent: Any) -> bool:
    """Whether `kept` is `sent` with some object fields left out (at any depth)."""
    if isinstance(kept, dict) and isinstance(sent, dict):
        return all(name in sent and _within(value, sent[name]) for name, value in kept.items())
    if isinstance(kept, (list, tuple)) and isinstance(sent, (list, tuple)):
        return len(kept) == len(sent) and all(_within(a, b) for a, b in zip(kept, sent, strict=True))
    return bool(kept == sent)
