"""The social graph: follow, block, mute, and the follower and following lists."""

from __future__ import annotations

import uuid

from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb, keys
from tests.support.problems import assert_problem


async def _counts(db: OwnerDb, user_id: str) -> tuple[int, int, int, int]:
    row = await db.row(
        "SELECT followers, following, posts, version FROM user_counts WHERE user_id = %s", (user_id,)
    )
    assert row is not None
    return row[0], row[1], row[2], row[3]


# --- follow ------------------------------------------------------------------------------------


async def test_follow_creates_the_edge_moves_both_counts_and_records_follow_created(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    mark = await db.mark()

    r = await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob")
    assert r.status == 204, r
    assert r.body == b""

    follow_id, version, deleted_at = (
        await db.row(
            "SELECT id, version, deleted_at FROM follows WHERE follower_id = %s AND followee_id = %s",
            (bob["id"], alice["id"]),
        )
        or ()
    )
    assert (version, deleted_at) == (1, None)
    assert await _counts(db, bob["id"]) == (0, 1, 0, 2)
    assert await _counts(db, alice["id"]) == (1, 0, 0, 2)

    [event] = await db.events(after=mark)
    assert event.key == ("follow.created", "follow", str(follow_id), 1)
    assert event.payload == {
        "followId": str(follow_id),
        "followerId": bob["id"],
        "followeeId": alice["id"],
        "followerCounts": {"userId": bob["id"], "followers": 0, "following": 1, "posts": 0, "version": 2},
        "followeeCounts": {"userId": alice["id"], "followers": 1, "following": 0, "posts": 0, "version": 2},
        "createdAt": event.payload["createdAt"],
    }
    assert (event.metadata["actor"], event.metadata["actorUserId"]) == ("bob", bob["id"])


async def test_follow_again_changes_nothing_and_records_nothing(chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    mark = await db.mark()

    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")

    assert await db.events(after=mark) == []
    assert await db.count("follows") == 1
    assert await db.version("follows", "follower_id = %s", (bob["id"],)) == 1
    assert await _counts(db, alice["id"]) == (1, 0, 0, 2)
    assert await _counts(db, bob["id"]) == (0, 1, 0, 2)


async def test_unfollow_and_follow_again_move_one_edge_through_its_versions(
    chorus: Chorus, db: OwnerDb
) -> None:
    alice, _ = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    follow_id = str(await db.scalar("SELECT id FROM follows"))
    mark = await db.mark()

    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "bob")  # idempotent: nothing more
    assert await _counts(db, alice["id"]) == (0, 0, 0, 3)
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")

    events = await db.events(after=mark)
    assert keys(events) == [
        ("follow.deleted", "follow", follow_id, 2),
        ("follow.created", "follow", follow_id, 3),
    ]
    assert events[0].payload["cause"] == "unfollow"
    assert events[0].payload["followeeCounts"] == {
        "userId": alice["id"],
        "followers": 0,
        "following": 0,
        "posts": 0,
        "version": 3,
    }
    assert events[1].payload["followeeCounts"]["followers"] == 1
    assert await db.row("SELECT count(*), max(version) FROM follows") == (1, 3)
    assert await _counts(db, alice["id"]) == (1, 0, 0, 4)


async def test_unfollowing_someone_not_followed_is_204_and_silent(chorus: Chorus, db: OwnerDb) -> None:
    alice, _ = await chorus.users("alice", "bob")
    mark = await db.mark()
    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("DELETE", f"/api/users/{uuid.uuid4()}/follow", "bob")
    assert await db.events(after=mark) == []
    assert await db.count("follows") == 0


async def test_follow_rules(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice, _ = await chorus.users("alice", "bob")
    gone = await chorus.user("carol")
    await chorus.do("DELETE", "/api/users/me", "carol", status=202)
    mark = await db.mark()

    assert_problem(
        await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="alice"), 422, "validation-failed"
    )
    assert_problem(
        await api.call("PUT", f"/api/users/{uuid.uuid4()}/follow", subject="bob"), 404, "not-found"
    )
    assert_problem(await api.call("PUT", f"/api/users/{gone['id']}/follow", subject="bob"), 404, "not-found")
    # Not a UUID: the route's {userId:guid} constraint does not match.
    assert (await api.call("PUT", "/api/users/alice/follow", subject="bob")).status == 404

    assert await db.events(after=mark) == []
    assert await db.count("follows") == 0


async def test_follower_and_following_lists_are_public_profiles_newest_first(
    api: ApiClient, chorus: Chorus
) -> None:
    alice, bob, carol = await chorus.users("alice", "bob", "carol")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    await chorus.post("carol")

    r = await api.call("GET", f"/api/users/{alice['id']}/followers", subject="bob")
    assert r.status == 200, r
    assert r.json == {
        "items": [
            {
                "userId": carol["id"],
                "username": "carol",
                "displayName": "Carol",
                "bio": "",
                "avatarUrl": None,
                "followers": 0,
                "following": 1,
                "posts": 1,
                "visibility": "public",
            },
            {
                "userId": bob["id"],
                "username": "bob",
                "displayName": "Bob",
                "bio": "",
                "avatarUrl": None,
                "followers": 1,
                "following": 1,
                "posts": 0,
                "visibility": "public",
            },
        ],
        "nextCursor": None,
    }
    r = await api.call("GET", f"/api/users/{alice['id']}/following", subject="carol")
    assert [p["userId"] for p in r.json["items"]] == [bob["id"]]
    r = await api.call("GET", f"/api/users/{carol['id']}/followers", subject="carol")
    assert r.json == {"items": [], "nextCursor": None}

    for direction in ("followers", "following"):
        r = await api.call("GET", f"/api/users/{uuid.uuid4()}/{direction}", subject="bob")
        assert_problem(r, 404, "not-found")


# --- block -------------------------------------------------------------------------------------


async def test_block_removes_follows_both_ways_each_with_follow_deleted(chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    edges = {
        (str(r[1]), str(r[2])): str(r[0])
        for r in await db.rows("SELECT id, follower_id, followee_id FROM follows")
    }
    mark = await db.mark()

    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")

    block_id = str(await db.scalar("SELECT id FROM blocks WHERE blocker_id = %s", (alice["id"],)))
    events = await db.events(after=mark)
    assert keys(events) == [
        ("follow.deleted", "follow", edges[(alice["id"], bob["id"])], 2),
        ("follow.deleted", "follow", edges[(bob["id"], alice["id"])], 2),
        ("block.created", "block", block_id, 1),
    ]
    assert [e.payload["cause"] for e in events[:2]] == ["block", "block"]
    assert events[2].payload == {"blockId": block_id, "blockerId": alice["id"], "blockedId": bob["id"]}
    assert await db.count("follows", "deleted_at IS NULL") == 0
    assert await _counts(db, alice["id"]) == (0, 0, 0, 5)
    assert await _counts(db, bob["id"]) == (0, 0, 0, 5)


async def test_a_block_stops_follows_both_ways(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    mark = await db.mark()

    assert_problem(await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob"), 403, "forbidden")
    assert_problem(await api.call("PUT", f"/api/users/{bob['id']}/follow", subject="alice"), 403, "forbidden")

    assert await db.events(after=mark) == []
    assert await db.count("follows") == 0


async def test_block_is_idempotent_and_unblock_lifts_it(chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    block_id = str(await db.scalar("SELECT id FROM blocks"))
    mark = await db.mark()

    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    assert await db.events(after=mark) == []

    await chorus.do("DELETE", f"/api/users/{bob['id']}/block", "alice")
    await chorus.do("DELETE", f"/api/users/{bob['id']}/block", "alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")  # allowed again
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")

    events = await db.events(after=mark)
    follow_id = str(await db.scalar("SELECT id FROM follows"))
    assert keys(events) == [
        ("block.deleted", "block", block_id, 2),
        ("follow.created", "follow", follow_id, 1),
        ("follow.deleted", "follow", follow_id, 2),
        ("block.created", "block", block_id, 3),
    ]
    assert events[0].payload == {"blockId": block_id, "blockerId": alice["id"], "blockedId": bob["id"]}
    assert await db.row("SELECT count(*), max(version) FROM blocks WHERE deleted_at IS NULL") == (1, 3)


async def test_block_and_mute_rules(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice = await chorus.user("alice")
    mark = await db.mark()
    for edge in ("block", "mute"):
        r = await api.call("PUT", f"/api/users/{alice['id']}/{edge}", subject="alice")
        assert_problem(r, 422, "validation-failed")
        r = await api.call("PUT", f"/api/users/{uuid.uuid4()}/{edge}", subject="alice")
        assert_problem(r, 404, "not-found")
        # Lifting an edge that does not exist is a no-op.
        await chorus.do("DELETE", f"/api/users/{uuid.uuid4()}/{edge}", "alice")
    assert await db.events(after=mark) == []
    assert await db.count("blocks") + await db.count("mutes") == 0


# --- mute --------------------------------------------------------------------------------------


async def test_mute_and_unmute_are_idempotent_and_leave_follows_alone(chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    mark = await db.mark()

    await chorus.do("PUT", f"/api/users/{bob['id']}/mute", "alice")
    await chorus.do("PUT", f"/api/users/{bob['id']}/mute", "alice")
    await chorus.do("DELETE", f"/api/users/{bob['id']}/mute", "alice")
    await chorus.do("DELETE", f"/api/users/{bob['id']}/mute", "alice")
    await chorus.do("PUT", f"/api/users/{bob['id']}/mute", "alice")

    mute_id = str(await db.scalar("SELECT id FROM mutes"))
    events = await db.events(after=mark)
    assert keys(events) == [
        ("mute.created", "mute", mute_id, 1),
        ("mute.deleted", "mute", mute_id, 2),
        ("mute.created", "mute", mute_id, 3),
    ]
    assert events[0].payload == {"muteId": mute_id, "muterId": alice["id"], "mutedId": bob["id"]}
    assert await db.count("follows", "deleted_at IS NULL") == 1
    # A mute is private: the muted user can still follow the muter.
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
