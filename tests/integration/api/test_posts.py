"""Posts: create, read, edit, delete, visibility of moderated posts, and an author's list."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared_code.domain.limits import REACTION_TYPES
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb
from tests.support.problems import assert_problem, error_fields

ZERO_COUNTS = dict.fromkeys(REACTION_TYPES, 0)


async def _media(db: OwnerDb, owner_id: str, status: str = "ready", content_type: str = "image/png") -> str:
    """A media asset as the media routes would leave it (they are not part of this write path)."""
    media_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO media_assets (id, owner_id, content_type, size_bytes, blob_path, status, ready_at)
           VALUES (%s, %s, %s, 1234, %s, %s, CASE WHEN %s = 'ready' THEN now() END)""",
        (media_id, owner_id, content_type, f"{owner_id}/{media_id}", status, status),
    )
    return str(media_id)


async def _post_row(db: OwnerDb, post_id: str) -> tuple[Any, ...]:
    row = await db.row(
        "SELECT content, status, version, deleted_at IS NOT NULL FROM posts WHERE id = %s", (post_id,)
    )
    assert row is not None
    return row


# --- create ------------------------------------------------------------------------------------


async def test_create_post_answers_201_and_records_post_created(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice = await chorus.user("alice", avatarUrl="https://img.test/a.png")
    mark = await db.mark()

    r = await api.call("POST", "/api/posts", subject="alice", json_body={"content": "hello, world"})

    assert r.status == 201, r
    post = r.json
    assert r.headers["location"] == f"/api/posts/{post['id']}"
    author = {
        "userId": alice["id"],
        "username": "alice",
        "displayName": "Alice",
        "avatarUrl": "https://img.test/a.png",
    }
    assert post == {
        "id": post["id"],
        "authorId": alice["id"],
        "author": author,
        "content": "hello, world",
        "media": [],
        "status": "visible",
        "createdAt": post["createdAt"],
        "editedAt": None,
        "counts": ZERO_COUNTS,
        "commentCount": 0,
        "repostCount": 0,
        "quoted": None,
        "event": None,
    }
    assert await _post_row(db, post["id"]) == ("hello, world", "visible", 1, False)
    assert await db.row(
        "SELECT reactions, comments, version FROM post_counts WHERE post_id = %s", (post["id"],)
    ) == ({}, 0, 1)
    [event] = await db.events(after=mark)
    assert event.key == ("post.created", "post", post["id"], 1)
    assert event.payload == {
        "postId": post["id"],
        "author": author,
        "content": "hello, world",
        "media": [],
        "status": "visible",
        "createdAt": event.payload["createdAt"],
        "authorCounts": {"userId": alice["id"], "followers": 0, "following": 0, "posts": 1, "version": 2},
        "mentions": [],
        "notifyMentions": [],
        "hashtags": [],
        "quotePostId": None,
    }
    # What GET answers is what POST answered.
    r = await api.call("GET", f"/api/posts/{post['id']}", subject="alice")
    assert r.status == 200, r
    assert r.json == post


async def test_create_post_accepts_the_longest_content(chorus: Chorus) -> None:
    await chorus.user("alice")
    assert (await chorus.post("alice", "é" * 2000))["content"] == "é" * 2000


POST_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "empty": ({"content": ""}, "content"),
    "blank": ({"content": " \n\t "}, "content"),
    "too long": ({"content": "x" * 2001}, "content"),
    "missing": ({}, "content"),
    "not a string": ({"content": 5}, "content"),
    "unknown field": ({"content": "hi", "authorId": str(uuid.UUID(int=1))}, "authorId"),
    "media id not a uuid": ({"content": "hi", "mediaIds": ["not-a-uuid"]}, "mediaIds.0"),
    "media id repeated": ({"content": "hi", "mediaIds": [str(uuid.UUID(int=1))] * 2}, "mediaIds"),
    "too many media": (
        {"content": "hi", "mediaIds": [str(uuid.UUID(int=n)) for n in range(1, 12)]},
        "mediaIds",
    ),
}


async def test_create_post_validation(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    mark = await db.mark()
    for case, (body, field) in POST_REFUSALS.items():
        r = await api.call("POST", "/api/posts", subject="alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
        assert field in error_fields(r), (case, r)
    assert await db.count("posts") == 0
    assert await db.events(after=mark) == []


async def test_create_post_with_media_keeps_their_order(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice = await chorus.user("alice")
    first, second = await _media(db, alice["id"], content_type="image/jpeg"), await _media(db, alice["id"])
    mark = await db.mark()

    r = await api.call(
        "POST", "/api/posts", subject="alice", json_body={"content": "look", "mediaIds": [second, first]}
    )

    assert r.status == 201, r
    media = r.json["media"]
    assert [(m["mediaId"], m["contentType"]) for m in media] == [(second, "image/png"), (first, "image/jpeg")]
    # A URL a client can read the blob at (signed: the container is private).
    url = urlsplit(media[0]["url"])
    assert url.scheme in ("http", "https")
    assert url.path.endswith(f"/{alice['id']}/{second}")
    [event] = await db.events(after=mark)
    assert event.payload["media"] == [
        {"mediaId": second, "contentType": "image/png", "blobPath": f"{alice['id']}/{second}"},
        {"mediaId": first, "contentType": "image/jpeg", "blobPath": f"{alice['id']}/{first}"},
    ]
    again = (await api.call("GET", f"/api/posts/{r.json['id']}", subject="alice")).json["media"]
    assert [(m["mediaId"], urlsplit(m["url"]).path) for m in again] == [
        (m["mediaId"], urlsplit(m["url"]).path) for m in media
    ]


async def test_create_post_with_unusable_media_leaves_no_post_no_count_and_no_event(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    used = await _media(db, alice["id"])
    await chorus.do(
        "POST", "/api/posts", "alice", json_body={"content": "first", "mediaIds": [used]}, status=201
    )
    unusable = {
        "already used": used,
        "someone else's": await _media(db, bob["id"]),
        "not uploaded yet": await _media(db, alice["id"], status="pending"),
        "unknown": str(uuid.uuid4()),
    }
    fine = await _media(db, alice["id"])
    mark = await db.mark()

    for reason, media_id in unusable.items():
        r = await api.call(
            "POST",
            "/api/posts",
            subject="alice",
            json_body={"content": "second", "mediaIds": [fine, media_id]},
        )
        body = assert_problem(r, 422, "validation-failed")
        assert body["mediaIds"] == [media_id], reason

    # The post row was written before the media were checked: the whole transaction rolled back.
    assert await db.count("posts") == 1
    assert await db.count("post_counts") == 1
    assert await db.count("post_media") == 1
    assert await db.row("SELECT posts, version FROM user_counts WHERE user_id = %s", (alice["id"],)) == (1, 2)
    assert await db.events(after=mark) == []
    # And the media that was fine is still free to use.
    await chorus.do(
        "POST", "/api/posts", "alice", json_body={"content": "second", "mediaIds": [fine]}, status=201
    )


# --- read --------------------------------------------------------------------------------------


async def test_get_post_shows_reaction_counts_for_every_type_and_the_comment_count(
    api: ApiClient, chorus: Chorus
) -> None:
    await chorus.users("alice", "bob", "carol")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "bob", json_body={"type": "wow"})
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "carol", json_body={"type": "wow"})
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "alice", json_body={"type": "sad"})
    await chorus.comment("bob", post["id"])

    r = await api.call("GET", f"/api/posts/{post['id']}", subject="carol")
    assert r.status == 200, r
    assert r.json["counts"] == {**ZERO_COUNTS, "wow": 2, "sad": 1}
    assert r.json["commentCount"] == 1


async def test_get_unknown_post_is_404(api: ApiClient, chorus: Chorus) -> None:
    await chorus.user("alice")
    assert_problem(await api.call("GET", f"/api/posts/{uuid.uuid4()}", subject="alice"), 404, "not-found")
    assert (await api.call("GET", "/api/posts/123", subject="alice")).status == 404


# --- edit --------------------------------------------------------------------------------------


async def test_the_author_edits_a_post(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice", "frist")
    mark = await db.mark()

    r = await api.call("PATCH", f"/api/posts/{post['id']}", subject="alice", json_body={"content": "first"})

    assert r.status == 200, r
    edited = r.json
    assert edited == {**post, "content": "first", "editedAt": edited["editedAt"]}
    assert edited["editedAt"] is not None and edited["editedAt"] >= post["createdAt"]
    [event] = await db.events(after=mark)
    assert event.key == ("post.updated", "post", post["id"], 2)
    assert event.payload == {
        "postId": post["id"],
        "author": post["author"],
        "content": "first",
        "media": [],
        "status": "visible",
        "createdAt": event.payload["createdAt"],
        "editedAt": event.payload["editedAt"],
        "mentions": [],
        "notifyMentions": [],
        "hashtags": [],
        "quotePostId": None,
    }
    assert await _post_row(db, post["id"]) == ("first", "visible", 2, False)
    assert (await api.call("GET", f"/api/posts/{post['id']}", subject="alice")).json == edited


async def test_only_the_author_edits_a_post(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.users("alice", "bob")
    await chorus.user("mod")
    post = await chorus.post("alice", "original")
    mark = await db.mark()

    r = await api.call("PATCH", f"/api/posts/{post['id']}", subject="bob", json_body={"content": "mine now"})
    assert_problem(r, 403, "forbidden")
    r = await api.call(
        "PATCH",
        f"/api/posts/{post['id']}",
        subject="mod",
        role="moderator",
        json_body={"content": "moderated"},
    )
    assert_problem(r, 403, "forbidden")
    for body in ({"content": ""}, {"content": "x" * 2001}, {}, {"content": "ok", "status": "visible"}):
        r = await api.call("PATCH", f"/api/posts/{post['id']}", subject="alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
    r = await api.call("PATCH", f"/api/posts/{uuid.uuid4()}", subject="alice", json_body={"content": "x"})
    assert_problem(r, 404, "not-found")

    assert await db.events(after=mark) == []
    assert await _post_row(db, post["id"]) == ("original", "visible", 1, False)


# --- delete ------------------------------------------------------------------------------------


async def test_the_author_deletes_a_post(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice = await chorus.user("alice")
    post = await chorus.post("alice")
    mark = await db.mark()

    await chorus.do("DELETE", f"/api/posts/{post['id']}", "alice")

    [event] = await db.events(after=mark)
    assert event.key == ("post.deleted", "post", post["id"], 2)
    assert event.payload == {
        "postId": post["id"],
        "authorId": alice["id"],
        "deletedAt": event.payload["deletedAt"],
        "authorCounts": {"userId": alice["id"], "followers": 0, "following": 0, "posts": 0, "version": 3},
    }
    assert await _post_row(db, post["id"]) == ("hello, world", "visible", 2, True)
    # Gone, for its author too; a second delete finds nothing.
    for method, body in (("GET", None), ("PATCH", {"content": "x"}), ("DELETE", None)):
        r = await api.call(method, f"/api/posts/{post['id']}", subject="alice", json_body=body)
        assert_problem(r, 404, "not-found")
    assert (await api.call("GET", f"/api/users/{alice['id']}/posts", subject="alice")).json["items"] == []
    assert await db.events(after=mark) == [event]


async def test_others_cannot_delete_a_post_but_a_moderator_removes_it_with_a_reason(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.users("alice", "bob", "mod")
    post = await chorus.post("alice")
    mark = await db.mark()

    assert_problem(await api.call("DELETE", f"/api/posts/{post['id']}", subject="bob"), 403, "forbidden")
    # A moderator deleting someone else's post says why.
    r = await api.call("DELETE", f"/api/posts/{post['id']}", subject="mod", role="moderator")
    assert_problem(r, 422, "validation-failed")
    assert await db.events(after=mark) == []

    await chorus.do("DELETE", f"/api/posts/{post['id']}?reason=spam", "mod", role="moderator")
    [event] = await db.events(after=mark)
    assert event.key == ("post.moderated", "post", post["id"], 2)
    assert event.metadata["actor"] == "mod"
    # A removal (appealable, recorded with its reason), not a deletion: the author keeps the post.
    assert await _post_row(db, post["id"]) == ("hello, world", "removed", 2, False)
    assert await db.row(
        "SELECT action, reason FROM moderation_actions WHERE post_id = %s", (post["id"],)
    ) == ("remove", "spam")


async def test_a_moderator_the_author_blocked_still_sees_and_deletes_the_post(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, moderator = await chorus.users("alice", "mod")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/users/{moderator['id']}/block", "alice")

    r = await api.call("GET", f"/api/posts/{post['id']}", subject="mod", role="moderator")
    assert r.status == 200, r
    r = await api.call("GET", f"/api/users/{alice['id']}/posts", subject="mod", role="moderator")
    assert [p["id"] for p in r.json["items"]] == [post["id"]]
    # Without the role, the same user is blocked like anyone else.
    assert_problem(await api.call("GET", f"/api/posts/{post['id']}", subject="mod"), 404, "not-found")

    await chorus.do("DELETE", f"/api/posts/{post['id']}?reason=abuse", "mod", role="moderator")
    assert await _post_row(db, post["id"]) == ("hello, world", "removed", 2, False)


# --- moderated posts ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["hidden", "removed"])
async def test_moderated_posts_are_404_to_others_and_visible_to_the_author_and_moderators(
    api: ApiClient, chorus: Chorus, db: OwnerDb, status: str
) -> None:
    alice, _, _ = await chorus.users("alice", "bob", "mod")
    visible = await chorus.post("alice", "visible one")
    post = await chorus.post("alice", "moderated one")
    await chorus.comment("alice", post["id"])
    await db.execute("UPDATE posts SET status = %s WHERE id = %s", (status, post["id"]))
    mark = await db.mark()

    path = f"/api/posts/{post['id']}"
    for method, suffix, body in (
        ("GET", "", None),
        ("GET", "/comments", None),
        ("GET", "/reactions", None),
        ("POST", "/comments", {"content": "hi"}),
        ("PUT", "/reactions", {"type": "like"}),
        ("DELETE", "/reactions", None),
        ("PATCH", "", {"content": "x"}),
        ("DELETE", "", None),
    ):
        r = await api.call(method, path + suffix, subject="bob", json_body=body)
        assert_problem(r, 404, "not-found")
    r = await api.call("GET", f"/api/users/{alice['id']}/posts", subject="bob")
    assert [p["id"] for p in r.json["items"]] == [visible["id"]]

    for subject, role in (("alice", "user"), ("mod", "moderator")):
        r = await api.call("GET", path, subject=subject, role=role)
        assert r.status == 200, r
        assert r.json["status"] == status
        r = await api.call("GET", f"{path}/comments", subject=subject, role=role)
        assert len(r.json["items"]) == 1
        r = await api.call("GET", f"/api/users/{alice['id']}/posts", subject=subject, role=role)
        assert [p["id"] for p in r.json["items"]] == [post["id"], visible["id"]]

    assert await db.events(after=mark) == []
    # Its author cannot edit it (that would change what the moderators judged): 409, nothing changes.
    r = await api.call("PATCH", path, subject="alice", json_body={"content": "fixed"})
    assert_problem(r, 409, "conflict")
    assert (await _post_row(db, post["id"]))[:2] == ("moderated one", status)
    assert await db.events(after=mark) == []


async def test_a_blocked_user_sees_none_of_the_blockers_posts(api: ApiClient, chorus: Chorus) -> None:
    alice, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    bobs_post = await chorus.post("bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")

    assert_problem(await api.call("GET", f"/api/posts/{post['id']}", subject="bob"), 404, "not-found")
    assert_problem(await api.call("GET", f"/api/users/{alice['id']}/posts", subject="bob"), 404, "not-found")
    # The blocker still sees the blocked user's posts: a block binds the blocked user.
    assert (await api.call("GET", f"/api/posts/{bobs_post['id']}", subject="alice")).status == 200


async def test_an_authors_posts_newest_first(api: ApiClient, chorus: Chorus) -> None:
    alice, _ = await chorus.users("alice", "bob")
    posts = [await chorus.post("alice", f"post {n}") for n in range(3)]
    await chorus.post("bob")

    r = await api.call("GET", f"/api/users/{alice['id']}/posts", subject="bob")
    assert r.status == 200, r
    assert r.json == {"items": list(reversed(posts)), "nextCursor": None}
    assert_problem(await api.call("GET", f"/api/users/{uuid.uuid4()}/posts", subject="bob"), 404, "not-found")
