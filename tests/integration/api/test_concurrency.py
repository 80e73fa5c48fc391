"""Many requests at once (asyncio.gather over the app's pool of 20 connections): duplicates
collapse to one row and one event, counts are exact, versions step by one per real change."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from shared_code.domain.limits import REACTION_TYPES
from tests.support.api import ApiClient, Response
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb, assert_versions_step_by_one

BURST = 20


async def _burst(*calls: Any) -> list[Response]:
    return list(await asyncio.gather(*calls))


async def test_concurrent_duplicate_follows_leave_one_edge_one_event_and_exact_counts(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    mark = await db.mark()

    responses = await _burst(
        *(api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob") for _ in range(BURST))
    )

    assert [r.status for r in responses] == [204] * BURST, responses
    assert await db.rows("SELECT version, deleted_at FROM follows") == [(1, None)]
    assert [e.event_type for e in await db.events(after=mark)] == ["follow.created"]
    counts = dict(
        (str(r[0]), r[1:])
        for r in await db.rows("SELECT user_id, followers, following, version FROM user_counts")
    )
    assert counts == {alice["id"]: (1, 0, 2), bob["id"]: (0, 1, 2)}


async def test_many_followers_at_once_each_move_the_count_by_one(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    star = await chorus.user("star")
    fans = [await chorus.user(f"fan{n}") for n in range(BURST)]
    mark = await db.mark()

    responses = await _burst(
        *(api.call("PUT", f"/api/users/{star['id']}/follow", subject=fan["username"]) for fan in fans)
    )

    assert [r.status for r in responses] == [204] * BURST, responses
    assert await db.row("SELECT followers, version FROM user_counts WHERE user_id = %s", (star["id"],)) == (
        BURST,
        BURST + 1,
    )
    events = await db.events(after=mark)
    assert len(events) == BURST
    # Each event carries the star's counts right after its own change: no lost or shared updates.
    snapshots = sorted(
        (e.payload["followeeCounts"]["version"], e.payload["followeeCounts"]["followers"]) for e in events
    )
    assert snapshots == [(version, version - 1) for version in range(2, BURST + 2)]


async def test_concurrent_follow_and_unfollow_storm_keeps_counts_equal_to_edges(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    users = [await chorus.user(f"user{n}") for n in range(5)]
    mark = await db.mark()
    calls = []
    # Everyone follows everyone (crossing follows included), and some unfollow at the same time.
    for follower, followee in itertools.permutations(users, 2):
        calls.append(api.call("PUT", f"/api/users/{followee['id']}/follow", subject=follower["username"]))
        if (users.index(follower) + users.index(followee)) % 3 == 0:
            calls.append(
                api.call("DELETE", f"/api/users/{followee['id']}/follow", subject=follower["username"])
            )

    responses = await _burst(*calls)

    assert {r.status for r in responses} == {204}, [r for r in responses if r.status != 204]
    events = await db.events(after=mark)
    assert_versions_step_by_one(events)
    for user_id, followers, following, version in await db.rows(
        "SELECT user_id, followers, following, version FROM user_counts"
    ):
        assert followers == await db.count("follows", "followee_id = %s AND deleted_at IS NULL", (user_id,))
        assert following == await db.count("follows", "follower_id = %s AND deleted_at IS NULL", (user_id,))
        changes = sum(
            1
            for e in events
            for side in ("followerCounts", "followeeCounts")
            if e.payload[side]["userId"] == str(user_id)
        )
        assert version == 1 + changes
    for follow_id, version in await db.rows("SELECT id, version FROM follows"):
        assert version == sum(1 for e in events if e.aggregate_id == follow_id)


async def test_concurrent_duplicate_reactions_leave_one_row_one_event_and_exact_counts(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    mark = await db.mark()

    responses = await _burst(
        *(
            api.call("PUT", f"/api/posts/{post['id']}/reactions", subject="bob", json_body={"type": "love"})
            for _ in range(BURST)
        )
    )

    assert [r.status for r in responses] == [204] * BURST, responses
    assert await db.rows("SELECT type, version FROM reactions") == [("love", 1)]
    assert [e.event_type for e in await db.events(after=mark)] == ["reaction.set"]
    assert await db.row("SELECT reactions, version FROM post_counts") == ({"love": 1}, 2)


async def test_many_users_reacting_at_once_are_all_counted(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice")
    fans = [await chorus.user(f"fan{n}") for n in range(BURST)]
    kinds = [REACTION_TYPES[n % len(REACTION_TYPES)] for n in range(BURST)]
    mark = await db.mark()

    responses = await _burst(
        *(
            api.call(
                "PUT", f"/api/posts/{post['id']}/reactions", subject=fan["username"], json_body={"type": kind}
            )
            for fan, kind in zip(fans, kinds, strict=True)
        )
    )

    assert [r.status for r in responses] == [204] * BURST, responses
    expected = {kind: kinds.count(kind) for kind in REACTION_TYPES}
    r = await api.call("GET", f"/api/posts/{post['id']}", subject="alice")
    assert r.json["counts"] == expected
    assert await db.scalar("SELECT version FROM post_counts") == BURST + 1
    events = await db.events(after=mark)
    assert sorted(e.payload["postCounts"]["version"] for e in events) == list(range(2, BURST + 2))
    latest = max(events, key=lambda e: e.payload["postCounts"]["version"])
    assert latest.payload["postCounts"]["reactions"] == expected


async def test_one_user_switching_reactions_concurrently_keeps_one_reaction(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    path = f"/api/posts/{post['id']}/reactions"
    mark = await db.mark()
    calls = []
    for n in range(BURST):
        if n % 5 == 4:
            calls.append(api.call("DELETE", path, subject="bob"))
        else:
            calls.append(api.call("PUT", path, subject="bob", json_body={"type": REACTION_TYPES[n % 3]}))

    responses = await _burst(*calls)

    assert [r.status for r in responses] == [204] * BURST, responses
    events = await db.events(after=mark)
    assert_versions_step_by_one(events)
    live = await db.rows("SELECT type, version FROM reactions WHERE deleted_at IS NULL")
    counts, version = await db.row("SELECT reactions, version FROM post_counts") or ({}, 0)
    # Whatever the interleaving: at most one live reaction, counted once, and one event per change.
    assert {k: v for k, v in counts.items() if v} == ({live[0][0]: 1} if live else {})
    assert await db.scalar("SELECT version FROM reactions") == len(events)
    assert version == 1 + len(events)
    assert events[-1].payload["postCounts"]["reactions"] == {t: counts.get(t, 0) for t in REACTION_TYPES}


async def test_a_block_racing_follows_never_leaves_a_follow_across_the_block(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    """Each pair races "B follows A" against "A blocks B". Whatever the order, a block ends
    the follow or refuses it: a live follow across a live block would break the block's promise."""
    blockers = [await chorus.user(f"blocker{n}") for n in range(8)]
    followers = [await chorus.user(f"follower{n}") for n in range(8)]
    calls = []
    for blocker, follower in zip(blockers, followers, strict=True):
        calls.append(api.call("PUT", f"/api/users/{blocker['id']}/follow", subject=follower["username"]))
        calls.append(api.call("PUT", f"/api/users/{follower['id']}/block", subject=blocker["username"]))
        calls.append(api.call("PUT", f"/api/users/{follower['id']}/follow", subject=blocker["username"]))

    responses = await _burst(*calls)

    assert {r.status for r in responses} <= {204, 403}, responses
    assert all(r.status == 204 for r in responses[1::3]), "every block succeeds"
    across = await db.count(
        "follows f",
        """f.deleted_at IS NULL AND EXISTS (
            SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
              AND ((b.blocker_id = f.followee_id AND b.blocked_id = f.follower_id)
                OR (b.blocker_id = f.follower_id AND b.blocked_id = f.followee_id)))""",
    )
    assert across == 0
    for user_id, followers_count, following_count in await db.rows(
        "SELECT user_id, followers, following FROM user_counts"
    ):
        assert followers_count == await db.count(
            "follows", "followee_id = %s AND deleted_at IS NULL", (user_id,)
        )
        assert following_count == await db.count(
            "follows", "follower_id = %s AND deleted_at IS NULL", (user_id,)
        )
    assert_versions_step_by_one(await db.events())


async def test_concurrent_onboarding_creates_one_account(api: ApiClient, db: OwnerDb) -> None:
    same_subject = await _burst(
        *(
            api.call(
                "POST", "/api/users", subject="alice", json_body={"username": f"alice{n}", "displayName": "A"}
            )
            for n in range(10)
        )
    )
    same_username = await _burst(
        *(
            api.call(
                "POST",
                "/api/users",
                subject=f"subject{n}",
                json_body={"username": "popular", "displayName": "P"},
            )
            for n in range(10)
        )
    )

    for responses in (same_subject, same_username):
        assert sorted(r.status for r in responses) == [201] + [409] * 9, responses
    assert all(r.json["field"] == "username" for r in same_username if r.status == 409)
    assert await db.count("users") == 2
    assert [e.event_type for e in await db.events()] == ["user.created", "user.created"]
