"""Comments and reactions, the post counts they move, and who may do what."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared_code.domain.limits import REACTION_TYPES
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb, keys
from tests.support.problems import assert_problem, error_fields

ZERO_COUNTS = dict.fromkeys(REACTION_TYPES, 0)


async def _post_counts(db: OwnerDb, post_id: str) -> tuple[dict[str, int], int, int]:
    row = await db.row("SELECT reactions, comments, version FROM post_counts WHERE post_id = %s", (post_id,))
    assert row is not None
    return {**ZERO_COUNTS, **row[0]}, row[1], row[2]


# --- comments ----------------------------------------------------------------------------------


async def test_comment_answers_201_and_records_comment_created_with_the_new_count(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    mark = await db.mark()

    r = await api.call(
        "POST", f"/api/posts/{post['id']}/comments", subject="bob", json_body={"content": "nice!"}
    )

    assert r.status == 201, r
    comment = r.json
    assert r.headers["location"] == f"/api/comments/{comment['id']}"
    assert comment == {
        "id": comment["id"],
        "postId": post["id"],
        "authorId": bob["id"],
        "author": {"userId": bob["id"], "username": "bob", "displayName": "Bob", "avatarUrl": None},
        "parentId": None,
        "content": "nice!",
        "createdAt": comment["createdAt"],
        "replyCount": 0,
    }
    [event] = await db.events(after=mark)
    assert event.key == ("comment.created", "comment", comment["id"], 1)
    assert event.payload == {
        "commentId": comment["id"],
        "postId": post["id"],
        "postAuthorId": alice["id"],
        "authorId": bob["id"],
        "parentId": None,
        "content": "nice!",
        "createdAt": event.payload["createdAt"],
        "postCounts": {
            "postId": post["id"],
            "reactions": ZERO_COUNTS,
            "comments": 1,
            "version": 2,
            "reposts": 0,
        },
        "parentAuthorId": None,
        "mentions": [],
        "notifyMentions": [],
        "hashtags": [],
    }
    assert await _post_counts(db, post["id"]) == (ZERO_COUNTS, 1, 2)
    assert (await api.call("GET", f"/api/posts/{post['id']}", subject="alice")).json["commentCount"] == 1
    r = await api.call("GET", f"/api/posts/{post['id']}/comments", subject="alice")
    assert r.json == {"items": [comment], "nextCursor": None}


async def test_replies_need_a_live_parent_on_the_same_post(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.users("alice", "bob")
    post, other_post = await chorus.post("alice"), await chorus.post("alice")
    parent = await chorus.comment("bob", post["id"])
    elsewhere = await chorus.comment("bob", other_post["id"])
    deleted = await chorus.comment("bob", post["id"])
    await chorus.do("DELETE", f"/api/comments/{deleted['id']}", "bob")

    reply = await chorus.comment("alice", post["id"], "a reply", parent_id=parent["id"])
    assert reply["parentId"] == parent["id"]

    mark = await db.mark()
    for parent_id in (elsewhere["id"], deleted["id"], str(uuid.uuid4())):
        r = await api.call(
            "POST",
            f"/api/posts/{post['id']}/comments",
            subject="alice",
            json_body={"content": "x", "parentId": parent_id},
        )
        assert assert_problem(r, 422, "validation-failed")["field"] == "parentId"
    assert await db.events(after=mark) == []
    assert (await _post_counts(db, post["id"]))[1] == 2


COMMENT_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "empty": ({"content": ""}, "content"),
    "blank": ({"content": "   "}, "content"),
    "too long": ({"content": "x" * 1001}, "content"),
    "missing": ({}, "content"),
    "parent not a uuid": ({"content": "x", "parentId": "nope"}, "parentId"),
    "unknown field": ({"content": "x", "postId": "p"}, "postId"),
}


async def test_comment_validation(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice")
    mark = await db.mark()
    for case, (body, field) in COMMENT_REFUSALS.items():
        r = await api.call("POST", f"/api/posts/{post['id']}/comments", subject="alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
        assert field in error_fields(r), (case, r)
    assert await db.count("comments") == 0
    assert await db.events(after=mark) == []


async def test_comment_limits_and_unknown_posts(api: ApiClient, chorus: Chorus) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice")
    assert (await chorus.comment("alice", post["id"], "c" * 1000))["content"] == "c" * 1000
    r = await api.call(
        "POST", f"/api/posts/{uuid.uuid4()}/comments", subject="alice", json_body={"content": "x"}
    )
    assert_problem(r, 404, "not-found")
    assert_problem(
        await api.call("GET", f"/api/posts/{uuid.uuid4()}/comments", subject="alice"), 404, "not-found"
    )


async def test_comments_list_oldest_first(api: ApiClient, chorus: Chorus) -> None:
    await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    comments = [
        await chorus.comment(subject, post["id"], f"comment {n}")
        for n, subject in enumerate(("bob", "alice", "bob"))
    ]
    r = await api.call("GET", f"/api/posts/{post['id']}/comments", subject="bob")
    assert r.status == 200, r
    assert r.json == {"items": comments, "nextCursor": None}


@pytest.mark.parametrize(
    ("deleter", "role"),
    [("carol", "user"), ("alice", "user"), ("mod", "moderator")],
    ids=["comment-author", "post-author", "moderator"],
)
async def test_who_may_delete_a_comment(
    api: ApiClient, chorus: Chorus, db: OwnerDb, deleter: str, role: str
) -> None:
    users = {u["username"]: u for u in await chorus.users("alice", "bob", "carol", "mod")}
    post = await chorus.post("alice")
    comment = await chorus.comment("carol", post["id"])
    mark = await db.mark()

    # Neither a bystander nor a missing comment.
    r = await api.call("DELETE", f"/api/comments/{comment['id']}", subject="bob")
    assert_problem(r, 403, "forbidden")
    assert_problem(
        await api.call("DELETE", f"/api/comments/{uuid.uuid4()}", subject="alice"), 404, "not-found"
    )
    assert await db.events(after=mark) == []

    # A moderator deleting someone else's comment says why; the reason is recorded.
    reason = "?reason=off%20topic" if role == "moderator" else ""
    await chorus.do("DELETE", f"/api/comments/{comment['id']}{reason}", deleter, role=role)
    recorded = await db.row("SELECT count(*) FROM moderation_actions WHERE comment_id = %s", (comment["id"],))
    assert recorded == ((1,) if role == "moderator" else (0,))

    [event] = await db.events(after=mark)
    assert event.key == ("comment.deleted", "comment", comment["id"], 2)
    assert event.payload == {
        "commentId": comment["id"],
        "postId": post["id"],
        "authorId": users["carol"]["id"],
        "deletedBy": users[deleter]["id"],
        "postCounts": {
            "postId": post["id"],
            "reactions": ZERO_COUNTS,
            "comments": 0,
            "version": 3,
            "reposts": 0,
        },
    }
    assert await _post_counts(db, post["id"]) == (ZERO_COUNTS, 0, 3)
    assert (await api.call("GET", f"/api/posts/{post['id']}/comments", subject="bob")).json["items"] == []
    # A second delete finds nothing.
    r = await api.call("DELETE", f"/api/comments/{comment['id']}", subject=deleter, role=role)
    assert_problem(r, 404, "not-found")
    assert len(await db.events(after=mark)) == 1


# --- reactions ---------------------------------------------------------------------------------


async def test_a_users_one_reaction_through_set_change_remove_and_set_again(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    path = f"/api/posts/{post['id']}/reactions"
    mark = await db.mark()

    await chorus.do("PUT", path, "bob", json_body={"type": "like"})
    await chorus.do("PUT", path, "bob", json_body={"type": "like"})  # the same again: nothing
    assert await _post_counts(db, post["id"]) == ({**ZERO_COUNTS, "like": 1}, 0, 2)
    await chorus.do("PUT", path, "bob", json_body={"type": "love"})
    assert await _post_counts(db, post["id"]) == ({**ZERO_COUNTS, "love": 1}, 0, 3)
    await chorus.do("DELETE", path, "bob")
    await chorus.do("DELETE", path, "bob")  # nothing to remove: nothing
    assert await _post_counts(db, post["id"]) == (ZERO_COUNTS, 0, 4)
    await chorus.do("PUT", path, "bob", json_body={"type": "angry"})

    reaction_id = str(await db.scalar("SELECT id FROM reactions"))
    events = await db.events(after=mark)
    assert keys(events) == [
        ("reaction.set", "reaction", reaction_id, 1),
        ("reaction.set", "reaction", reaction_id, 2),
        ("reaction.removed", "reaction", reaction_id, 3),
        ("reaction.set", "reaction", reaction_id, 4),
    ]
    base = {"reactionId": reaction_id, "postId": post["id"], "postAuthorId": alice["id"], "userId": bob["id"]}
    assert events[0].payload == {
        **base,
        "type": "like",
        "previousType": None,
        "createdAt": events[0].payload["createdAt"],
        "postCounts": {
            "postId": post["id"],
            "reactions": {**ZERO_COUNTS, "like": 1},
            "comments": 0,
            "version": 2,
            "reposts": 0,
        },
    }
    assert (events[1].payload["type"], events[1].payload["previousType"]) == ("love", "like")
    assert events[2].payload == {
        **base,
        "previousType": "love",
        "postCounts": {
            "postId": post["id"],
            "reactions": ZERO_COUNTS,
            "comments": 0,
            "version": 4,
            "reposts": 0,
        },
    }
    assert (events[3].payload["type"], events[3].payload["previousType"]) == ("angry", None)
    assert [e.payload["postCounts"]["version"] for e in events] == [2, 3, 4, 5]
    assert await db.row("SELECT count(*), max(version) FROM reactions WHERE deleted_at IS NULL") == (1, 4)
    r = await api.call("GET", f"/api/posts/{post['id']}", subject="alice")
    assert r.json["counts"] == {**ZERO_COUNTS, "angry": 1}


async def test_reaction_validation_and_unknown_posts(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice")
    mark = await db.mark()
    path = f"/api/posts/{post['id']}/reactions"
    bad_bodies: list[dict[str, Any]] = [
        {"type": "dislike"},
        {"type": "LIKE"},
        {},
        {"type": "like", "weight": 2},
        {"type": None},
    ]
    for bad in bad_bodies:
        r = await api.call("PUT", path, subject="alice", json_body=bad)
        assert_problem(r, 422, "validation-failed")
    for method, body in (("PUT", {"type": "like"}), ("DELETE", None), ("GET", None)):
        r = await api.call(method, f"/api/posts/{uuid.uuid4()}/reactions", subject="alice", json_body=body)
        assert_problem(r, 404, "not-found")
    assert_problem(await api.call("GET", f"{path}?type=dislike", subject="alice"), 422, "validation-failed")
    assert await db.events(after=mark) == []
    assert await db.count("reactions") == 0


# --- blocks ------------------------------------------------------------------------------------


async def test_a_blocked_user_cannot_comment_on_or_react_to_the_blockers_posts(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    _, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    mark = await db.mark()

    # The blocker's posts do not exist for the blocked user (404, not 403: nothing to learn).
    r = await api.call(
        "POST", f"/api/posts/{post['id']}/comments", subject="bob", json_body={"content": "hey"}
    )
    assert_problem(r, 404, "not-found")
    r = await api.call(
        "PUT", f"/api/posts/{post['id']}/reactions", subject="bob", json_body={"type": "angry"}
    )
    assert_problem(r, 404, "not-found")
    assert_problem(
        await api.call("GET", f"/api/posts/{post['id']}/comments", subject="bob"), 404, "not-found"
    )
    assert await db.events(after=mark) == []
    assert await db.count("comments") + await db.count("reactions") == 0
    assert await _post_counts(db, post["id"]) == (ZERO_COUNTS, 0, 1)

    # Unblocked, they can again.
    await chorus.do("DELETE", f"/api/users/{bob['id']}/block", "alice")
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "bob", json_body={"type": "like"})
    await chorus.comment("bob", post["id"])


async def test_a_moderator_the_author_blocked_sees_the_post_but_cannot_react_or_comment(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    _, moderator = await chorus.users("alice", "mod")
    await chorus.user("bob")
    post = await chorus.post("alice")
    comment = await chorus.comment("bob", post["id"])
    await chorus.do("PUT", f"/api/users/{moderator['id']}/block", "alice")
    mark = await db.mark()

    r = await api.call(
        "PUT",
        f"/api/posts/{post['id']}/reactions",
        subject="mod",
        role="moderator",
        json_body={"type": "like"},
    )
    assert_problem(r, 403, "forbidden")
    r = await api.call(
        "POST",
        f"/api/posts/{post['id']}/comments",
        subject="mod",
        role="moderator",
        json_body={"content": "hi"},
    )
    assert_problem(r, 403, "forbidden")
    assert await db.events(after=mark) == []
    # But moderation still works.
    await chorus.do("DELETE", f"/api/comments/{comment['id']}?reason=abuse", "mod", role="moderator")


async def test_a_comment_restored_on_appeal_gets_its_mentions_tags_and_reply_back_under_todays_rules(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    """An overturned appeal brings a deleted reply back as a new reply would be: counted under its
    parent, its mentions and tags stored again, and an event that notifies whom the rules allow now
    (a mentioned account that blocked the replier since is stored as mentioned, not notified)."""
    _, ann, bob, cat, dan = await chorus.users("author", "ann", "bob", "cat", "dan")
    await chorus.users("mod", "mod2")
    post = await chorus.post("author", "a post")
    parent = await chorus.comment("dan", post["id"], "a parent")
    r = await api.call(
        "POST",
        f"/api/posts/{post['id']}/comments",
        subject="ann",
        json_body={"content": "hi @bob and @cat #Restored", "parentId": parent["id"]},
    )
    assert r.status == 201, r
    reply = r.json

    async def stored() -> tuple[list[str], list[str], int]:
        mentioned = await db.rows(
            "SELECT mentioned_user_id::text FROM mentions WHERE source_id = %s ORDER BY 1", (reply["id"],)
        )
        tags = await db.rows("SELECT tag FROM hashtag_uses WHERE source_id = %s", (reply["id"],))
        replies = await db.scalar(
            "SELECT coalesce(max(replies), 0) FROM comment_reply_counts WHERE comment_id = %s",
            (parent["id"],),
        )
        return [m for (m,) in mentioned], [t for (t,) in tags], int(replies)

    every_mention = sorted([bob["id"], cat["id"]])
    assert await stored() == (every_mention, ["restored"], 1)
    await chorus.do("DELETE", f"/api/comments/{reply['id']}?reason=rude", "mod", role="moderator")
    assert await stored() == ([], [], 0)
    await chorus.do("PUT", f"/api/users/{ann['id']}/block", "cat")
    appeal = await chorus.do(
        "POST",
        "/api/appeals",
        "ann",
        json_body={"postId": post["id"], "commentId": reply["id"], "statement": "not rude"},
        status=201,
    )
    mark = await db.mark()
    await chorus.do(
        "POST",
        f"/api/moderation/appeals/{appeal.json['id']}/decision",
        "mod2",
        role="moderator",
        json_body={"decision": "overturned", "reason": "fair"},
        status=200,
    )
    assert await stored() == (every_mention, ["restored"], 1)
    [restored] = await db.events(after=mark, event_type="comment.created")
    assert restored.aggregate_id == uuid.UUID(reply["id"])
    assert sorted(restored.payload["mentions"]) == every_mention
    assert restored.payload["notifyMentions"] == [bob["id"]]  # cat blocked ann meanwhile
    assert restored.payload["hashtags"] == ["restored"]
    assert restored.payload["parentAuthorId"] == dan["id"]
    replies = await api.call("GET", f"/api/comments/{parent['id']}/replies", subject="author")
    assert [(c["id"], c["replyCount"]) for c in replies.json["items"]] == [(reply["id"], 0)]
    parents = await api.call("GET", f"/api/posts/{post['id']}/comments", subject="author")
    assert {c["id"]: c["replyCount"] for c in parents.json["items"]}[parent["id"]] == 1
