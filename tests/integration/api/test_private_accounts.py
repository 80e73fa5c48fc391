"""Private accounts and follow requests, over the API: the requests' flows (ask, approve, decline,
cancel, turning public), their events, and the privacy rule (shared_code/domain/privacy.py) on every
read it affects, for each kind of viewer: a non-follower, a pending requester, an approved follower,
a blocked user, the author, a moderator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import ContainerClient

from shared_code.app_context import AppContext
from shared_code.services.social import PendingApprovals
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb, keys
from tests.support.problems import assert_problem

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


async def _private(chorus: Chorus, subject: str) -> dict[str, Any]:
    r = await chorus.do("PATCH", "/api/users/me", subject, json_body={"visibility": "private"}, status=200)
    assert r.json["visibility"] == "private"
    me: dict[str, Any] = r.json
    return me


async def _request(api: ApiClient, target: dict[str, Any], subject: str) -> None:
    r = await api.call("PUT", f"/api/users/{target['id']}/follow", subject=subject)
    assert (r.status, r.json) == (202, {"status": "requested"}), r


async def _pending(api: ApiClient, subject: str) -> list[str]:
    r = await api.call("GET", "/api/users/me/follow-requests", subject=subject)
    assert r.status == 200, r
    return [item["username"] for item in r.json["items"]]


# --- requests -----------------------------------------------------------------------------------


async def test_following_a_private_account_is_a_request_until_it_approves(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await _private(chorus, "alice")
    mark = await db.mark()

    await _request(api, alice, "bob")
    await _request(api, alice, "bob")  # asking again: the same answer, nothing more
    assert await db.count("follows") == 0
    request_id = str(await db.scalar("SELECT id FROM follow_requests"))
    [requested] = await db.events(after=mark)
    assert requested.key == ("follow.requested", "follow_request", request_id, 1)
    assert requested.payload == {
        "requestId": request_id,
        "requesterId": bob["id"],
        "targetId": alice["id"],
        "createdAt": requested.payload["createdAt"],
    }
    r = await api.call("GET", "/api/users/me/follow-requests", subject="alice")
    assert r.json == {
        "items": [
            {
                "userId": bob["id"],
                "username": "bob",
                "displayName": "Bob",
                "avatarUrl": None,
                "requestedAt": r.json["items"][0]["requestedAt"],
            }
        ],
        "nextCursor": None,
    }
    assert await _pending(api, "bob") == []  # the requester's own list is requests to them

    mark = await db.mark()
    await chorus.do("POST", f"/api/users/me/follow-requests/{bob['id']}/approve", "alice")
    await chorus.do("POST", f"/api/users/me/follow-requests/{bob['id']}/approve", "alice")  # idempotent
    follow_id = str(await db.scalar("SELECT id FROM follows WHERE follower_id = %s", (bob["id"],)))
    events = await db.events(after=mark)
    assert keys(events) == [
        ("follow.created", "follow", follow_id, 1),
        ("follow.request_approved", "follow_request", request_id, 2),
    ]
    # The normal follow: counts and the event that back-fills bob's feed.
    assert events[0].payload["followeeCounts"]["followers"] == 1
    assert events[0].payload["followerCounts"]["following"] == 1
    assert events[1].payload["by"] == "target"
    assert await _pending(api, "alice") == []
    # Following again now that bob follows: 204, as for a public account.
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")


async def test_declining_and_cancelling_end_the_request_without_a_follow(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob, carol = await chorus.users("alice", "bob", "carol")
    await _private(chorus, "alice")
    await _request(api, alice, "bob")
    await _request(api, alice, "carol")
    assert await _pending(api, "alice") == ["carol", "bob"]  # newest first
    mark = await db.mark()

    await chorus.do("POST", f"/api/users/me/follow-requests/{bob['id']}/decline", "alice")
    await chorus.do("POST", f"/api/users/me/follow-requests/{bob['id']}/decline", "alice")  # idempotent
    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "carol")  # carol cancels
    assert [e.event_type for e in await db.events(after=mark)] == [
        "follow.request_declined",
        "follow.request_cancelled",
    ]
    assert await _pending(api, "alice") == []
    assert await db.count("follows") == 0
    # Nothing left to approve: 404; a user who never asked: 404.
    for user in (bob, carol):
        r = await api.call("POST", f"/api/users/me/follow-requests/{user['id']}/approve", subject="alice")
        assert_problem(r, 404, "not-found")
    r = await api.call("POST", f"/api/users/me/follow-requests/{alice['id']}/decline", subject="bob")
    assert_problem(r, 404, "not-found")
    # Asking again after a decline is a new request (the same row, its next version).
    await _request(api, alice, "bob")
    assert await _pending(api, "alice") == ["bob"]
    assert await db.scalar("SELECT version FROM follow_requests WHERE requester_id = %s", (bob["id"],)) == 3


async def test_a_block_ends_pending_requests_both_ways(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice, bob = await chorus.users("alice", "bob")
    await _private(chorus, "alice")
    await _request(api, alice, "bob")
    mark = await db.mark()
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    cancelled = await db.events(after=mark, event_type="follow.request_cancelled")
    assert [e.payload["cause"] for e in cancelled] == ["block"]
    assert await _pending(api, "alice") == []
    assert_problem(await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob"), 403, "forbidden")


async def test_following_a_public_account_is_unchanged(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice, _ = await chorus.users("alice", "bob")
    r = await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob")
    assert (r.status, r.body) == (204, b"")
    assert await db.count("follow_requests") == 0


async def test_turning_public_approves_pending_requests_through_the_follow_use_case(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob, carol = await chorus.users("alice", "bob", "carol")
    await _private(chorus, "alice")
    await _request(api, alice, "bob")
    await _request(api, alice, "carol")
    mark = await db.mark()

    r = await chorus.do("PATCH", "/api/users/me", "alice", json_body={"visibility": "public"}, status=200)
    assert (r.json["visibility"], r.json["followers"]) == ("public", 2)
    events = await db.events(after=mark)
    assert [e.event_type for e in events] == [
        "follow.created",
        "follow.request_approved",
        "follow.created",
        "follow.request_approved",
        "profile.visibility_changed",
    ]
    assert {e.payload["followerId"] for e in events if e.event_type == "follow.created"} == {
        bob["id"],
        carol["id"],
    }
    assert events[-1].payload == {"userId": alice["id"], "visibility": "public", "pendingRequests": 0}
    assert await _pending(api, "alice") == []
    # Setting the visibility it has already: 200, nothing recorded.
    mark = await db.mark()
    await chorus.do("PATCH", "/api/users/me", "alice", json_body={"visibility": "public"}, status=200)
    assert await db.events(after=mark) == []


async def test_turning_public_with_many_requests_approves_the_rest_in_batches(
    api: ApiClient, chorus: Chorus, db: OwnerDb, app_context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More pending requests than the request approves itself: the event says how many are left, and
    the relay's handler (run here batch by batch, as the relay would) approves them all."""
    from shared_code.services import accounts

    monkeypatch.setattr(accounts, "APPROVE_IN_REQUEST", 2)
    alice = await chorus.user("alice")
    await _private(chorus, "alice")
    fans = [await chorus.user(f"fan{n}") for n in range(5)]
    for n in range(5):
        await _request(api, alice, f"fan{n}")
    mark = await db.mark()

    await chorus.do("PATCH", "/api/users/me", "alice", json_body={"visibility": "public"}, status=200)
    [changed] = await db.events(after=mark, event_type="profile.visibility_changed")
    assert changed.payload["pendingRequests"] == 3
    approvals = PendingApprovals(app_context.system_pool, batch_size=2)
    await approvals.approve_batch(UUID(alice["id"]))
    [progress] = await db.events(after=mark, event_type="profile.follow_requests_approval_progressed")
    assert (progress.payload["approved"], progress.payload["pendingRequests"]) == (2, 1)
    await approvals.approve_batch(UUID(alice["id"]))
    assert len(await db.events(after=mark, event_type="profile.follow_requests_approval_progressed")) == 1
    assert await db.count("follow_requests", "resolved_at IS NULL") == 0
    followers = await db.scalar("SELECT followers FROM user_counts WHERE user_id = %s", (alice["id"],))
    assert followers == len(fans) == await db.count("follows")
    await approvals.approve_batch(UUID(alice["id"]))  # a replay: nothing left, nothing recorded
    assert len(await db.events(after=mark, event_type="follow.created")) == 5


async def test_visibility_is_public_or_private(api: ApiClient, chorus: Chorus) -> None:
    await chorus.user("alice")
    r = await api.call("GET", "/api/users/me", subject="alice")
    assert r.json["visibility"] == "public"
    for bad in ("followers", "secret", None, 1):
        r = await api.call("PATCH", "/api/users/me", subject="alice", json_body={"visibility": bad})
        assert_problem(r, 422, "validation-failed")


async def test_the_public_profile_and_follower_lists_say_whether_an_account_is_private(
    api: ApiClient, chorus: Chorus
) -> None:
    alice, bob, _ = await chorus.users("alice", "bob", "stranger")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob", status=204)
    profile = await api.call("GET", f"/api/profiles/{alice['id']}", subject="bob")
    assert (profile.status, profile.json["visibility"]) == (200, "public"), profile
    await _private(chorus, "alice")
    # Read from PostgreSQL with the block check: shown at once, for a follower and a stranger alike.
    for viewer in ("bob", "stranger"):
        profile = await api.call("GET", f"/api/profiles/{alice['id']}", subject=viewer)
        assert (profile.status, profile.json["visibility"]) == (200, "private"), profile
    following = await api.call("GET", f"/api/users/{bob['id']}/following", subject="bob")
    assert [(p["userId"], p["visibility"]) for p in following.json["items"]] == [(alice["id"], "private")]
    followers = await api.call("GET", f"/api/users/{alice['id']}/followers", subject="bob")
    assert [(p["userId"], p["visibility"]) for p in followers.json["items"]] == [(bob["id"], "public")]


# --- the privacy rule on every read ---------------------------------------------------------------


@pytest.fixture
async def container(app_context: AppContext) -> ContainerClient:
    client = app_context.blob_service.get_container_client(app_context.settings.media_container)
    with contextlib.suppress(ResourceExistsError):
        await client.create_container()
    return client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _post_with_media(api: ApiClient, http: aiohttp.ClientSession, subject: str) -> dict[str, Any]:
    r = await api.call(
        "POST", "/api/media", subject=subject, json_body={"contentType": "image/png", "sizeBytes": len(PNG)}
    )
    assert r.status == 201, r
    upload = r.json
    async with http.put(
        upload["uploadUrl"], data=PNG, headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "image/png"}
    ) as put:
        assert put.status == 201
    r = await api.call("POST", f"/api/media/{upload['mediaId']}/complete", subject=subject)
    assert r.status == 200, r
    r = await api.call(
        "POST", "/api/posts", subject=subject, json_body={"content": "mine", "mediaIds": [upload["mediaId"]]}
    )
    assert r.status == 201, r
    post: dict[str, Any] = r.json
    return post


async def _reads(
    api: ApiClient, author: dict[str, Any], post: dict[str, Any], subject: str, role: str = "user"
) -> dict[str, int]:
    """The status each read of the author's content answers `subject`."""
    media_id = post["media"][0]["mediaId"]
    paths = {
        "post": f"/api/posts/{post['id']}",
        "page": f"/api/users/{author['id']}/posts",
        "comments": f"/api/posts/{post['id']}/comments",
        "reactions": f"/api/posts/{post['id']}/reactions",
        "followers": f"/api/users/{author['id']}/followers",
        "following": f"/api/users/{author['id']}/following",
        "media": f"/api/media/{media_id}",
    }
    return {
        name: (await api.call("GET", path, subject=subject, role=role)).status for name, path in paths.items()
    }


ALL_SEEN = dict.fromkeys(("post", "page", "comments", "reactions", "followers", "following", "media"), 200)
NONE_SEEN = dict.fromkeys(ALL_SEEN, 404)


async def test_a_private_accounts_content_reaches_only_approved_followers_and_the_author(
    api: ApiClient, chorus: Chorus, container: ContainerClient, http: aiohttp.ClientSession
) -> None:
    alice, _, _, stranger, blocked = await chorus.users("alice", "follower", "pending", "stranger", "blocked")
    await chorus.user("mod")
    post = await _post_with_media(api, http, "alice")
    await chorus.comment("alice", post["id"])
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "alice", json_body={"type": "like"})
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "follower")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "blocked")
    # Public: everyone but the blocked user sees it all.
    for viewer in ("stranger", "pending", "follower"):
        assert await _reads(api, alice, post, viewer) == ALL_SEEN, viewer

    await _private(chorus, "alice")
    await _request(api, alice, "pending")
    await chorus.do("PUT", f"/api/users/{blocked['id']}/block", "alice")

    # At once, for everyone who is not an approved follower (nothing waits for a projection).
    assert await _reads(api, alice, post, "stranger") == NONE_SEEN
    assert await _reads(api, alice, post, "pending") == NONE_SEEN
    assert await _reads(api, alice, post, "blocked") == NONE_SEEN
    assert await _reads(api, alice, post, "follower") == ALL_SEEN
    assert await _reads(api, alice, post, "alice") == ALL_SEEN
    assert await _reads(api, alice, post, "mod", role="moderator") == ALL_SEEN
    # The profile itself stays public, so people can ask to follow.
    assert (await api.call("GET", f"/api/profiles/{alice['id']}", subject="stranger")).status == 200
    # Nothing to comment on or react to for whoever may not see it.
    r = await api.call(
        "POST", f"/api/posts/{post['id']}/comments", subject="stranger", json_body={"content": "hi"}
    )
    assert_problem(r, 404, "not-found")
    r = await api.call(
        "PUT", f"/api/posts/{post['id']}/reactions", subject="pending", json_body={"type": "like"}
    )
    assert_problem(r, 404, "not-found")

    # Approved: the pending requester sees it all; unfollowing ends it; turning public opens it again.
    await chorus.do(
        "POST", f"/api/users/me/follow-requests/{_id(await _me(api, 'pending'))}/approve", "alice"
    )
    assert await _reads(api, alice, post, "pending") == ALL_SEEN
    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "follower")
    assert await _reads(api, alice, post, "follower") == NONE_SEEN
    await chorus.do("PATCH", "/api/users/me", "alice", json_body={"visibility": "public"}, status=200)
    assert await _reads(api, alice, post, "stranger") == ALL_SEEN
    assert await _reads(api, alice, post, "blocked") == NONE_SEEN  # a block still hides it
    assert stranger["id"] != blocked["id"]


async def test_comments_and_reactions_under_a_private_accounts_posts_follow_the_rule(
    api: ApiClient, chorus: Chorus
) -> None:
    """A follower's comment and reaction on a private account's post reach that account's followers
    only; the commenter's own public posts are untouched."""
    alice, _, _ = await chorus.users("alice", "follower", "stranger")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "follower")
    await _private(chorus, "alice")
    await chorus.comment("follower", post["id"], "only for alice's followers")
    await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", "follower", json_body={"type": "love"})

    r = await api.call("GET", f"/api/posts/{post['id']}/comments", subject="follower")
    assert [c["content"] for c in r.json["items"]] == ["only for alice's followers"]
    for path in (f"/api/posts/{post['id']}/comments", f"/api/posts/{post['id']}/reactions"):
        assert_problem(await api.call("GET", path, subject="stranger"), 404, "not-found")
    followers_post = await chorus.post("follower")
    assert (await api.call("GET", f"/api/posts/{followers_post['id']}", subject="stranger")).status == 200


async def _me(api: ApiClient, subject: str) -> dict[str, Any]:
    r = await api.call("GET", "/api/users/me", subject=subject)
    me: dict[str, Any] = r.json
    return me


def _id(user: dict[str, Any]) -> str:
    return str(user["id"])


async def test_the_notification_gate_drops_what_the_recipient_may_not_see_or_turned_off(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    """Where notifications are written (the relay and the change feed pass them through this gate): one
    about a post of a private account the recipient does not follow is not written, nor a type the
    recipient turned off; the rest pass, and other writes are untouched."""
    from shared_code.projections.documents import notification_document
    from shared_code.projections.writes import COUNTERS, NOTIFICATIONS, CreateOnce, VersionedUpsert
    from shared_code.services.notification_settings import NotificationGate

    alice, bob, carol = await chorus.users("alice", "bob", "carol")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    await _private(chorus, "alice")
    await chorus.do(
        "PATCH", "/api/users/me/notification-settings", "carol", json_body={"comment": False}, status=200
    )

    def note(recipient: dict[str, Any], kind: str, subject: str) -> CreateOnce:
        return CreateOnce(
            NOTIFICATIONS,
            notification_document(
                str(recipient["id"]), kind, alice["id"], subject, f"{kind}:{recipient['id']}", None, None
            ),
        )

    counter = VersionedUpsert(COUNTERS, {"id": "x:counts", "subjectId": "x", "version": 1})
    about_post_to_bob = note(bob, "mention", post["id"])  # bob may not see alice's posts
    about_post_to_carol = note(carol, "mention", post["id"])  # carol follows: written
    comment_to_carol = note(carol, "comment", post["id"])  # carol turned comments off
    follow_to_bob = note(bob, "follow", alice["id"])  # about a user, not a post: written
    admitted = await NotificationGate(app_context.system_pool).admit(
        [counter, about_post_to_bob, about_post_to_carol, comment_to_carol, follow_to_bob]
    )
    assert admitted == [counter, about_post_to_carol, follow_to_bob]
    assert await NotificationGate(app_context.system_pool).admit([counter]) == [counter]


async def test_notification_settings_are_each_users_own(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.users("alice", "bob")
    r = await chorus.do(
        "PATCH", "/api/users/me/notification-settings", "alice", json_body={"comment": False}, status=200
    )
    assert r.json["comment"] is False
    r = await chorus.do(
        "PATCH",
        "/api/users/me/notification-settings",
        "alice",
        json_body={"comment": True, "follow_request": False},
        status=200,
    )
    # The key is the type's value, as a notification's `type` says it.
    assert (r.json["comment"], r.json["follow_request"]) == (True, False)
    bobs = (await api.call("GET", "/api/users/me/notification-settings", subject="bob")).json
    assert bobs["follow_request"] is True
    assert "followRequest" not in bobs
    assert await db.count("notification_settings") == 1
    for bad in ({}, {"comment": None}, {"telepathy": True}, {"comment": 0}, {"followRequest": False}):
        r = await api.call("PATCH", "/api/users/me/notification-settings", subject="alice", json_body=bad)
        assert_problem(r, 422, "validation-failed")


async def test_a_feed_still_holding_a_private_accounts_post_does_not_show_it_to_a_non_follower(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    """An ex-follower's feed may hold a post until feed maintenance removes it (the relay does not
    run here, so the item stays): the feed read's privacy screen hides it at once."""
    from shared_code.projections.writes import FEED
    from shared_code.services.feeds import feed_item

    alice, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    item = feed_item(
        str(bob["id"]), {"postId": post["id"], "authorId": alice["id"], "createdAt": post["createdAt"]}
    )
    await app_context.cosmos_db.get_container_client(FEED).upsert_item(item)

    async def feed_ids() -> list[str]:
        r = await api.call("GET", "/api/feed", subject="bob")
        assert r.status == 200, r
        return [i["postId"] for i in r.json["items"]]

    assert await feed_ids() == [post["id"]]
    await _private(chorus, "alice")
    assert await feed_ids() == []
    await chorus.do("PATCH", "/api/users/me", "alice", json_body={"visibility": "public"}, status=200)
    assert await feed_ids() == [post["id"]]


async def test_notifications_about_posts_the_recipient_may_no_longer_see_are_left_out(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    """A notification written while the post was visible (here one put in place directly, as a mention
    would be) is left out once its author turns private, and shows again for an approved follower."""
    from shared_code.projections.documents import notification_document
    from shared_code.projections.writes import NOTIFICATIONS

    alice, bob = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    notes = app_context.cosmos_db.get_container_client(NOTIFICATIONS)
    about_post = notification_document(
        bob["id"], "mention", alice["id"], post["id"], "m1", post["createdAt"], None
    )
    about_alice = notification_document(
        bob["id"], "follow", alice["id"], alice["id"], "f1", post["createdAt"], None
    )
    for document in (about_post, about_alice):
        await notes.upsert_item(document)

    async def subjects() -> list[str]:
        r = await api.call("GET", "/api/notifications", subject="bob")
        assert r.status == 200, r
        return sorted(n["subjectId"] for n in r.json["items"])

    assert await subjects() == sorted([post["id"], alice["id"]])
    await _private(chorus, "alice")
    assert await subjects() == [alice["id"]]
    await _request(api, alice, "bob")
    await chorus.do("POST", f"/api/users/me/follow-requests/{bob['id']}/approve", "alice")
    assert await subjects() == sorted([post["id"], alice["id"]])
