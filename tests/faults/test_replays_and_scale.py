"""Replays and scale-out: the change feed read again from the start, two hosts at once, and a
poison event that an operator skips."""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import Any

import aiohttp
import psycopg
import pytest
from azure.cosmos.aio import DatabaseProxy

from tests.faults.checks import (
    duplicate_notifications,
    notifications_of,
    reaction_counts,
    scalar,
)
from tests.support.fault_suite import FAULT_HOST_SETTINGS, People, record
from tests.support.polling import eventually
from tests.support.running_stack import HostProcess, RunningStack

SETTLE_DEADLINE = 60.0


async def _feed_items(cosmos: DatabaseProxy, recipient_id: str) -> dict[str, dict[str, Any]]:
    """The reader's whole home feed, by post id, without Cosmos system fields."""
    container = cosmos.get_container_client("userFeed")
    items = [d async for d in container.query_items("SELECT * FROM c", partition_key=recipient_id)]
    return {d["postId"]: {k: v for k, v in d.items() if not k.startswith("_")} for d in items}


async def _leases(cosmos: DatabaseProxy) -> list[dict[str, Any]]:
    container = cosmos.get_container_client("leases")
    return [d async for d in container.query_items("SELECT * FROM c")]


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {kind: n for kind, n in counts.items() if n}


def _owner(lease: dict[str, Any]) -> str | None:
    owner = lease.get("Owner", lease.get("owner"))
    return str(owner) if owner else None


@pytest.mark.timeout(420)
async def test_wiped_leases_replay_the_whole_change_feed_and_change_nothing(
    people: People,
    host: HostProcess,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
) -> None:
    author, reader, fan, moderator = (
        await people.new(),
        await people.new(),
        await people.new(),
        await people.new(role="moderator"),
    )
    await reader.ok("PUT", f"/api/users/{author.id}/follow")
    edited = await author.ok("POST", "/api/posts", {"content": "first words"})
    deleted = await author.ok("POST", "/api/posts", {"content": "to be deleted"})
    hidden = await author.ok("POST", "/api/posts", {"content": "to be hidden"})
    kept = await author.ok("POST", "/api/posts", {"content": "stays as it is"})
    await author.ok("PATCH", f"/api/posts/{edited['id']}", {"content": "second thoughts"})
    await author.ok("DELETE", f"/api/posts/{deleted['id']}")
    await moderator.ok(
        "POST", f"/api/moderation/posts/{hidden['id']}/decision", {"action": "hide", "reason": "fault suite"}
    )
    await reader.ok("PUT", f"/api/posts/{edited['id']}/reactions", {"type": "love"})
    await fan.ok("PUT", f"/api/posts/{edited['id']}/reactions", {"type": "like"})
    await fan.ok("DELETE", f"/api/posts/{edited['id']}/reactions")
    await fan.ok("PUT", f"/api/posts/{kept['id']}/reactions", {"type": "wow"})

    async def shown_feed() -> dict[str, str]:
        """post id -> content as the reader's feed shows it (items are references, read with the current post)."""
        page = await reader.ok("GET", "/api/feed?limit=50")
        return {item["postId"]: item["content"] for item in page["items"]}

    await eventually(
        lambda: _feed_items(cosmos, reader.id),
        lambda feed: set(feed) == {edited["id"], kept["id"]},
        timeout=SETTLE_DEADLINE,
        what="the feed settled",
    )
    await eventually(
        shown_feed,
        lambda feed: feed.get(edited["id"]) == "second thoughts",
        timeout=SETTLE_DEADLINE,
        what="the edit shown",
    )
    # Each post's reactions are in their own partition (and change-feed lease): wait for both posts.
    await eventually(
        lambda: reaction_counts(cosmos, kept["id"]), lambda c: c.get("wow") == 1, what="the counters settled"
    )
    await eventually(
        lambda: reaction_counts(cosmos, edited["id"]),
        lambda c: _nonzero(c) == {"love": 1},
        what="the removed reaction counted out",
    )
    feed_before = await _feed_items(cosmos, reader.id)
    edited_counts_before = _nonzero(await reaction_counts(cosmos, edited["id"]))
    kept_counts_before = _nonzero(await reaction_counts(cosmos, kept["id"]))
    notifications_before = {str(n["id"]) for n in await notifications_of(cosmos, author.id)}
    assert edited_counts_before == {"love": 1}

    host.kill()
    leases = cosmos.get_container_client("leases")
    wiped = 0
    for lease in await _leases(cosmos):
        await leases.delete_item(lease["id"], partition_key=lease["id"])
        wiped += 1
    started = time.monotonic()
    host.start()
    await host.wait_ready()
    # A marker written after the replay started is processed after everything before it in its
    # partition: once it shows, the replay of what came before has been applied.
    marker = await author.ok("POST", "/api/posts", {"content": "marker after the replay"})
    await reader.ok("PUT", f"/api/posts/{kept['id']}/reactions", {"type": "like"})
    await eventually(
        lambda: _feed_items(cosmos, reader.id),
        lambda feed: marker["id"] in feed,
        timeout=SETTLE_DEADLINE * 2,
        what="the marker post after the replay",
    )
    await eventually(
        lambda: reaction_counts(cosmos, kept["id"]),
        lambda c: c.get("like") == 1,
        timeout=SETTLE_DEADLINE * 2,
        what="the marker reaction after the replay",
    )
    replayed = time.monotonic() - started
    after_feed = await _feed_items(cosmos, reader.id)
    after_feed.pop(marker["id"])
    after_kept = _nonzero(await reaction_counts(cosmos, kept["id"]))
    after_kept.pop("like")
    notifications = await notifications_of(cosmos, author.id)
    record(
        "change-feed leases wiped (full replay)",
        leases_wiped=wiped,
        replayed_s=round(replayed, 1),
        feed_changed=after_feed != feed_before,
        duplicate_notifications=duplicate_notifications(notifications),
    )
    assert set(after_feed) == set(feed_before), "the replay brought back or dropped a post"
    assert (await shown_feed())[edited["id"]] == "second thoughts", "the replay undid an edit"
    assert _nonzero(await reaction_counts(cosmos, edited["id"])) == edited_counts_before
    assert after_kept == kept_counts_before
    assert duplicate_notifications(notifications) == 0
    assert {n["id"] for n in notifications} >= notifications_before


@pytest.mark.timeout(420)
async def test_two_hosts_split_the_leases_and_reach_the_same_end_state(
    people: People,
    stack: RunningStack,
    host: HostProcess,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
) -> None:
    second = HostProcess(stack, "second", settings=dict(FAULT_HOST_SETTINGS))
    second.start()
    try:
        await second.wait_ready()
        leases = await eventually(
            lambda: _leases(cosmos),
            lambda ls: len({_owner(lease) for lease in ls} - {None}) >= 2,
            timeout=SETTLE_DEADLINE * 2,
            interval=0.5,
            what="the change-feed leases split between the two hosts",
        )
        authors = [await people.new() for _ in range(4)]
        reader = await people.new()
        readers = [reader, people.via(reader, second)]
        for index, author in enumerate(authors):
            await readers[index % 2].ok("PUT", f"/api/users/{author.id}/follow")
        posts: list[str] = []
        for index, author in enumerate(authors):
            writer = author if index % 2 == 0 else people.via(author, second)
            for n in range(5):
                posts.append(
                    (await writer.ok("POST", "/api/posts", {"content": f"from host {index % 2} #{n}"}))["id"]
                )
        fans = [await people.new() for _ in range(6)]
        for index, fan in enumerate(fans):
            client = fan if index % 2 == 0 else people.via(fan, second)
            for post_id in posts[::3]:
                await client.ok("PUT", f"/api/posts/{post_id}/reactions", {"type": "like"})

        await eventually(
            lambda: _feed_items(cosmos, reader.id),
            lambda feed: set(posts) <= set(feed),
            timeout=SETTLE_DEADLINE,
            what="every post in the reader's feed",
        )
        for post_id in posts[::3]:
            await eventually(
                partial(reaction_counts, cosmos, post_id),
                lambda c: c.get("like") == len(fans),
                timeout=SETTLE_DEADLINE,
                what="exact counters",
            )
        pending = await eventually(
            lambda: scalar(owner_db, "SELECT count(*) FROM outbox WHERE status <> 'published'"),
            lambda n: n == 0,
            timeout=SETTLE_DEADLINE,
            what="the outbox drained by both relays",
        )
        duplicates = 0
        for author in authors:
            duplicates += duplicate_notifications(await notifications_of(cosmos, author.id))
        owners = sorted({o for o in (_owner(lease) for lease in leases) if o})
        record(
            "two hosts at once",
            lease_owners=len(owners),
            leases=len(leases),
            posts=len(posts),
            duplicate_notifications=duplicates,
            outbox_unpublished=pending,
        )
        assert duplicates == 0
    finally:
        second.stop()


@pytest.mark.timeout(300)
async def test_a_poison_event_holds_only_its_aggregate_and_an_operator_skips_it(
    people: People,
    host: HostProcess,
    owner_db: psycopg.AsyncConnection[Any],
    http: aiohttp.ClientSession,
) -> None:
    author, reader, admin = await people.new(), await people.new(), await people.new(role="admin")
    await reader.ok("PUT", f"/api/users/{author.id}/follow")
    # An event no handler can read (as a bug in a release would write), then a later one of the same
    # aggregate: the later one must wait, everything else must flow.
    poisoned = str(uuid.uuid4())
    ids = []
    for version in (1, 2):
        cur = await owner_db.execute(
            """INSERT INTO outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload)
               VALUES ('post', %s, %s, 'post.created', '{"unexpected": true}') RETURNING id""",
            (poisoned, version),
        )
        row = await cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
    poison, follower_event = ids

    healthy = await author.ok("POST", "/api/posts", {"content": "flows past the poison"})
    await eventually(
        reader.feed_post_ids, lambda seen: healthy["id"] in seen, what="a healthy post in the feed"
    )

    async def status_of(event_id: int) -> tuple[str, int]:
        cur = await owner_db.execute("SELECT status, attempts FROM outbox WHERE id = %s", (event_id,))
        row = await cur.fetchone()
        assert row is not None
        return str(row[0]), int(row[1])

    await eventually(
        lambda: status_of(poison), lambda s: s[0] == "dead", timeout=SETTLE_DEADLINE, what="dead"
    )
    assert await status_of(follower_event) == ("pending", 0), "a later event of the aggregate overtook it"
    health = await admin.call("GET", "/api/admin/health")
    assert "dead" in str(health.body), health

    skipped = await admin.call(
        "POST", "/api/admin/outbox/skip", {"eventIds": [poison], "reason": "fault suite: unreadable payload"}
    )
    assert skipped.status == 200, skipped
    assert skipped.body["skipped"] == [poison]
    reason = await scalar(owner_db, "SELECT row_to_json(o)::text FROM outbox o WHERE id = %s", (poison,))
    assert "fault suite: unreadable payload" in reason
    # Once skipped, the aggregate's next event gets its turn.
    await eventually(
        lambda: status_of(follower_event),
        lambda s: s[1] > 0 or s[0] != "pending",
        what="the next event tried",
    )
    await eventually(
        lambda: status_of(follower_event), lambda s: s[0] == "dead", what="the second poison dead"
    )
    cleaned = await admin.call(
        "POST", "/api/admin/outbox/skip", {"eventIds": [follower_event], "reason": "fault suite: clean-up"}
    )
    assert cleaned.status == 200, cleaned
    record(
        "a poison event",
        attempts=(await status_of(poison))[1],
        later_event_of_aggregate=(await status_of(follower_event))[0],
        skipped_with_reason=True,
    )
