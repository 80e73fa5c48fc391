"""The change-feed functions' work (shared_code/services/change_feed.py), fed the documents the relay wrote
to posts_v2 and reactions: given the same documents twice they leave the same state; notifications have
ids fixed by their cause; a batch that cannot be handled is recorded for replay once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared_code.bootstrap import change_feed_service, outbox_relay
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, POSTS, REACTIONS
from shared_code.services.feed_hydration import hydrate, projected_sources
from tests.support.pipeline import (
    Owner,
    People,
    all_docs,
    read_doc,
    run_until_idle,
    snapshot,
)

if TYPE_CHECKING:
    from shared_code.app_context import AppContext


async def documents(ctx: AppContext, container: str, *ids: str) -> list[dict[str, Any]]:
    """Documents as the change feed delivers them (Cosmos fields included)."""
    docs = await all_docs(ctx, container)
    return [docs[i] for i in ids]


async def feed_of(ctx: AppContext, recipient: str) -> dict[str, str]:
    """post id → content as one recipient's feed shows it: its items (references) hydrated with the
    current posts_v2, publicProfiles and counters documents."""
    items = [d for d in (await all_docs(ctx, FEED)).values() if d["recipientId"] == recipient]
    sources = await projected_sources(
        ctx.cosmos_db, [d["postId"] for d in items], sorted({d["authorId"] for d in items})
    )
    return {str(item.post_id): item.content for item in hydrate(items, sources, ctx.media_urls)}


async def test_fan_out_given_the_same_posts_twice_leaves_the_same_feeds(
    app_context: AppContext, people: People
) -> None:
    alice, bob, carol, _ = await people.join("alice", "bob", "carol", "dave")
    await people.edge("PUT", "bob", "follow", "alice")
    await people.edge("PUT", "carol", "follow", "alice")
    await people.edge("PUT", "carol", "mute", "alice")
    relay = outbox_relay(app_context)
    await run_until_idle(relay)  # the follows first, so that no back-fill brings the posts
    p = await people.post("alice", "one")
    q = await people.post("alice", "two")
    await run_until_idle(relay)
    assert await all_docs(app_context, FEED) == {}  # posts reach feeds through the change feed only

    posts = await documents(app_context, POSTS, p, q)
    assert (
        await change_feed_service(app_context).fan_out_posts(posts) == 4
    )  # alice herself and bob, two posts each
    once = await snapshot(app_context, [FEED])
    # again: each post's completed fan-out is recorded, so the same versions write nothing
    assert await change_feed_service(app_context).fan_out_posts(posts) == 0
    assert await snapshot(app_context, [FEED]) == once
    assert await feed_of(app_context, alice) == {p: "one", q: "two"}
    assert await feed_of(app_context, bob) == {p: "one", q: "two"}
    assert await feed_of(app_context, carol) == {}  # muted
    assert {d["postVersion"] for d in once[FEED].values()} == {1}

    await people.edit("alice", p, "one, edited")
    await people.ok("DELETE", f"/api/posts/{q}", "alice")
    await run_until_idle(relay)
    changed = await documents(app_context, POSTS, p, q)
    for _ in range(2):
        await change_feed_service(app_context).fan_out_posts(changed)
        assert await feed_of(app_context, alice) == {p: "one, edited"}
        assert await feed_of(app_context, bob) == {p: "one, edited"}
        assert await feed_of(app_context, carol) == {}


async def test_an_edit_rewrites_no_feed_item_unless_the_first_fan_out_never_completed(
    app_context: AppContext, people: People
) -> None:
    alice, bob = await people.join("alice", "bob")
    await people.edge("PUT", "bob", "follow", "alice")
    relay = outbox_relay(app_context)
    await run_until_idle(relay)
    fanned, coalesced = await people.post("alice", "fanned out"), await people.post("alice", "never fanned")
    await run_until_idle(relay)
    assert (
        await change_feed_service(app_context).fan_out_posts(await documents(app_context, POSTS, fanned)) == 2
    )
    before = await snapshot(app_context, [FEED])

    await people.edit("alice", fanned, "fanned out, edited")
    await people.edit("alice", coalesced, "never fanned, edited")
    await run_until_idle(relay)
    # The change feed may deliver only the latest version of a post: `coalesced` arrives as its edit.
    edited = await documents(app_context, POSTS, fanned, coalesced)
    assert await change_feed_service(app_context).fan_out_posts(edited[:1]) == 0  # O(1): no item written
    assert await snapshot(app_context, [FEED]) == before
    assert await change_feed_service(app_context).fan_out_posts(edited[1:]) == 2  # in full: never fanned out
    for reader in (alice, bob):
        assert await feed_of(app_context, reader) == {
            fanned: "fanned out, edited",
            coalesced: "never fanned, edited",
        }


async def test_reactions_given_twice_leave_the_same_counters_and_one_notification_each(
    app_context: AppContext, people: People
) -> None:
    alice, bob, carol = await people.join("alice", "bob", "carol")
    p = await people.post("alice", "react")
    await people.react("bob", p, "like")
    await people.react("carol", p, "love")
    await people.react("alice", p, "wow")  # her own post
    relay = outbox_relay(app_context)
    await run_until_idle(relay)
    reactions = await documents(app_context, REACTIONS, f"{p}:{bob}", f"{p}:{carol}", f"{p}:{alice}")

    await change_feed_service(app_context).apply_reactions(reactions)
    once = await snapshot(app_context, [COUNTERS, NOTIFICATIONS])
    await change_feed_service(app_context).apply_reactions(reactions)
    assert await snapshot(app_context, [COUNTERS, NOTIFICATIONS]) == once

    counts = once[COUNTERS][f"{p}:counts"]
    assert {k: v for k, v in counts["reactions"].items() if v} == {"like": 1, "love": 1, "wow": 1}
    notes = once[NOTIFICATIONS]
    # ids fixed by the cause; none for reacting to one's own post
    assert set(notes) == {f"reaction:{p}:{bob}", f"reaction:{p}:{carol}"}
    assert {(n["recipientId"], n["actorId"], n["subjectId"]) for n in notes.values()} == {
        (alice, bob, p),
        (alice, carol, p),
    }

    # alice reads bob's; bob changes his reaction: still one notification, still read, counters move on
    r = await people.api.call("POST", f"/api/notifications/reaction:{p}:{bob}/read", subject="alice")
    assert r.status == 204, r
    await people.react("bob", p, "laugh")
    await run_until_idle(relay)
    changed = await documents(app_context, REACTIONS, f"{p}:{bob}")
    for _ in range(2):
        await change_feed_service(app_context).apply_reactions(
            changed + reactions
        )  # the older ones replayed too
        notes = await all_docs(app_context, NOTIFICATIONS)
        assert set(notes) == {f"reaction:{p}:{bob}", f"reaction:{p}:{carol}"}
        assert notes[f"reaction:{p}:{bob}"]["read"] is True
        doc = await read_doc(app_context, COUNTERS, f"{p}:counts", p)
        assert doc is not None
        assert {k: v for k, v in doc["reactions"].items() if v} == {"laugh": 1, "love": 1, "wow": 1}


async def test_a_failed_batch_recorded_twice_is_kept_once(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("alice")
    p = await people.post("alice", "fan me out")
    await run_until_idle(outbox_relay(app_context))
    batch = await documents(app_context, POSTS, p)
    error = TimeoutError("Cosmos timed out")

    first = await change_feed_service(app_context).record_failure("fan_out_posts", POSTS, batch, error)
    again = await change_feed_service(app_context).record_failure("fan_out_posts", POSTS, batch, error)
    assert again == first
    rows = await owner.rows(
        "SELECT id, function, container, documents, error, correlation_ids FROM change_feed_failures"
    )
    assert len(rows) == 1
    _, function, container, stored, message, correlation_ids = rows[0]
    assert (function, container, message) == ("fan_out_posts", POSTS, "TimeoutError: Cosmos timed out")
    assert stored == batch
    assert correlation_ids == [batch[0]["correlationId"]]

    # once replayed, the same documents failing again are a new failure
    await owner.conn.execute("UPDATE change_feed_failures SET replayed_at = now()")
    third = await change_feed_service(app_context).record_failure("fan_out_posts", POSTS, batch, error)
    assert third != first
    # and another function's failure on the same documents is its own
    other = await change_feed_service(app_context).record_failure("count_reactions", POSTS, batch, error)
    assert other not in (first, third)


async def test_an_older_posts_v2_version_replayed_changes_no_feed(
    app_context: AppContext, people: People
) -> None:
    """A replayed old version (a wiped lease, a replayed failure) cannot undo an edit, nor bring back a
    deleted or hidden post."""
    alice, bob, _ = await people.join("alice", "bob", "moderator")
    await people.edge("PUT", "bob", "follow", "alice")
    relay = outbox_relay(app_context)
    await run_until_idle(relay)
    edited = await people.post("alice", "first words")
    deleted = await people.post("alice", "regrettable")
    hidden = await people.post("alice", "against the rules")
    await run_until_idle(relay)
    old = await documents(app_context, POSTS, edited, deleted, hidden)  # each at version 1
    await change_feed_service(app_context).fan_out_posts(old)
    assert await feed_of(app_context, bob) == {
        edited: "first words",
        deleted: "regrettable",
        hidden: "against the rules",
    }

    await people.edit("alice", edited, "better words")
    await people.ok("DELETE", f"/api/posts/{deleted}", "alice")
    await people.ok("POST", f"/api/posts/{hidden}/flags", "bob", {"reason": "spam"})
    r = await people.api.call(
        "POST",
        f"/api/moderation/posts/{hidden}/decision",
        subject="moderator",
        json_body={"action": "hide", "reason": "spam"},
        role="moderator",
    )
    assert r.status == 200, r
    await run_until_idle(relay)
    current = await documents(app_context, POSTS, edited, deleted, hidden)
    assert [d["version"] for d in current] == [2, 2, 2]
    await change_feed_service(app_context).fan_out_posts(current)
    after = {edited: "better words"}
    assert await feed_of(app_context, bob) == after
    settled = await snapshot(app_context, [FEED])

    # the old versions again, alone, then mixed with the current ones in the wrong order
    assert await change_feed_service(app_context).fan_out_posts(old) == 0
    await change_feed_service(app_context).fan_out_posts(current + old)
    assert await feed_of(app_context, bob) == after
    assert await feed_of(app_context, alice) == after
    assert await snapshot(app_context, [FEED]) == settled
