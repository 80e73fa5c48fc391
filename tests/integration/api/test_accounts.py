"""Identity and profiles: POST /api/users, GET, PATCH and DELETE /api/users/me."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from shared_code.app_context import AppContext
from shared_code.services.erasure import ErasureService, expire_keys_and_holds, username_digest
from tests.support.api import ApiClient
from tests.support.chorus import Chorus, token_with
from tests.support.outbox import OwnerDb, keys
from tests.support.problems import assert_problem, error_fields

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


# --- onboarding --------------------------------------------------------------------------------


async def test_onboarding_creates_the_account_and_records_user_created(api: ApiClient, db: OwnerDb) -> None:
    body = {"username": "alice_1", "displayName": "Alice", "bio": "hi", "avatarUrl": "https://img.test/a.png"}
    r = await api.call(
        "POST", "/api/users", subject="alice", json_body=body, headers={"traceparent": TRACEPARENT}
    )

    assert r.status == 201, r
    assert r.headers["location"] == "/api/users/me"
    assert r.headers["content-type"].startswith("application/json")
    me = r.json
    user_id = me["id"]
    assert uuid.UUID(user_id)
    assert me == {
        "id": user_id,
        "username": "alice_1",
        "displayName": "Alice",
        "bio": "hi",
        "avatarUrl": "https://img.test/a.png",
        "email": None,
        "authProvider": "email",
        "createdAt": me["createdAt"],
        "followers": 0,
        "following": 0,
        "posts": 0,
        "visibility": "public",
    }
    assert await db.row("SELECT auth_subject, username::text, version, deleted_at FROM users") == (
        "alice",
        "alice_1",
        1,
        None,
    )
    assert await db.row(
        "SELECT display_name, bio, avatar_url FROM profiles WHERE user_id = %s", (user_id,)
    ) == ("Alice", "hi", "https://img.test/a.png")
    assert await db.row(
        "SELECT followers, following, posts, version FROM user_counts WHERE user_id = %s", (user_id,)
    ) == (0, 0, 0, 1)

    [event] = await db.events()
    assert event.key == ("user.created", "user", user_id, 1)
    assert event.payload == {
        "userId": user_id,
        "username": "alice_1",
        "displayName": "Alice",
        "bio": "hi",
        "avatarUrl": "https://img.test/a.png",
        "createdAt": event.payload["createdAt"],
    }
    assert event.metadata == {
        "correlationId": TRACE_ID,
        "traceparent": TRACEPARENT,
        "actor": "alice",
        "actorUserId": user_id,
    }
    assert r.headers["x-correlation-id"] == TRACE_ID
    assert event.status == "pending"


async def test_onboarding_takes_the_identity_provider_and_email_from_the_token(api: ApiClient) -> None:
    token = token_with(api.state_dir, sub="google|123", idp="google.com", email="alice@example.com")
    r = await api.call("POST", "/api/users", token=token, json_body={"username": "alice", "displayName": "A"})
    assert r.status == 201, r
    assert (r.json["authProvider"], r.json["email"]) == ("google", "alice@example.com")

    r = await api.call("GET", "/api/users/me", token=token)
    assert r.status == 200, r
    assert (r.json["authProvider"], r.json["email"]) == ("google", "alice@example.com")


async def test_onboarding_accepts_values_at_their_limits(api: ApiClient) -> None:
    body = {"username": "a" * 30, "displayName": "d" * 50, "bio": "b" * 500}
    r = await api.call("POST", "/api/users", subject="alice", json_body=body)
    assert r.status == 201, r
    assert (r.json["username"], r.json["displayName"], r.json["bio"]) == ("a" * 30, "d" * 50, "b" * 500)


ONBOARDING_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "username too short": ({"username": "ab", "displayName": "A"}, "username"),
    "username too long": ({"username": "a" * 31, "displayName": "A"}, "username"),
    "username with a dash": ({"username": "bad-name", "displayName": "A"}, "username"),
    "username with a newline": ({"username": "alice\n", "displayName": "A"}, "username"),
    "no username": ({"displayName": "A"}, "username"),
    "empty display name": ({"username": "alice", "displayName": ""}, "displayName"),
    "blank display name": ({"username": "alice", "displayName": "   "}, "displayName"),
    "display name too long": ({"username": "alice", "displayName": "d" * 51}, "displayName"),
    "display name not a string": ({"username": "alice", "displayName": 7}, "displayName"),
    "bio too long": ({"username": "alice", "displayName": "A", "bio": "b" * 501}, "bio"),
    "avatar not https": (
        {"username": "alice", "displayName": "A", "avatarUrl": "http://img.test/a"},
        "avatarUrl",
    ),
    "avatar without host": ({"username": "alice", "displayName": "A", "avatarUrl": "https://"}, "avatarUrl"),
    "avatar too long": (
        {"username": "alice", "displayName": "A", "avatarUrl": "https://img.test/" + "a" * 2040},
        "avatarUrl",
    ),
    "unknown field": ({"username": "alice", "displayName": "A", "role": "admin"}, "role"),
    "snake_case field": ({"username": "alice", "display_name": "A"}, "display_name"),
}


async def test_onboarding_validation(api: ApiClient, db: OwnerDb) -> None:
    for case, (body, field) in ONBOARDING_REFUSALS.items():
        r = await api.call("POST", "/api/users", subject="alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
        assert field in error_fields(r), (case, r)
    assert await db.count("users") == 0
    assert await db.event_count() == 0


async def test_onboarding_twice_or_with_a_taken_username_is_409(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.user("alice")

    r = await api.call(
        "POST", "/api/users", subject="alice", json_body={"username": "other", "displayName": "A"}
    )
    assert_problem(r, 409, "conflict")

    # Usernames are case-insensitive (citext).
    r = await api.call(
        "POST", "/api/users", subject="bob", json_body={"username": "ALICE", "displayName": "B"}
    )
    body = assert_problem(r, 409, "conflict")
    assert body["field"] == "username"

    assert await db.count("users") == 1
    assert keys(await db.events()) == [("user.created", "user", keys(await db.events())[0][2], 1)]
    # bob is still free to pick another name.
    assert (await chorus.user("bob"))["username"] == "bob"


# --- the caller's own account ------------------------------------------------------------------


async def test_me_before_onboarding_is_403_not_onboarded(api: ApiClient) -> None:
    for method, body in (("GET", None), ("PATCH", {"bio": "x"}), ("DELETE", None)):
        r = await api.call(method, "/api/users/me", subject="nobody", json_body=body)
        problem = assert_problem(r, 403, "not-onboarded")
        assert "POST /api/users" in problem["detail"]


async def test_me_has_private_fields_and_live_counts(api: ApiClient, chorus: Chorus) -> None:
    alice, bob, _ = await chorus.users("alice", "bob", "carol")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    await chorus.post("alice")

    r = await api.call("GET", "/api/users/me", subject="alice")
    assert r.status == 200, r
    assert r.json == {**alice, "followers": 2, "following": 1, "posts": 1}


async def test_profile_update_changes_only_what_differs_with_one_version_per_change(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice = await chorus.user("alice", bio="old bio")
    user_id = alice["id"]

    async def patch(body: dict[str, Any]) -> dict[str, Any]:
        r = await api.call("PATCH", "/api/users/me", subject="alice", json_body=body)
        assert r.status == 200, r
        me: dict[str, Any] = r.json
        return me

    mark = await db.mark()
    me = await patch({"displayName": "Alice A."})
    assert me == {**alice, "displayName": "Alice A."}
    [event] = await db.events(after=mark)
    assert event.key == ("profile.updated", "user", user_id, 2)
    assert event.payload == {
        "userId": user_id,
        "username": "alice",
        "displayName": "Alice A.",
        "bio": "old bio",
        "avatarUrl": None,
        "changed": ["displayName"],
    }

    # The same values again: 200, nothing changes, nothing is recorded.
    mark = await db.mark()
    assert await patch({"displayName": "Alice A.", "bio": "old bio"}) == me
    assert await db.events(after=mark) == []
    assert await db.version("users", "id = %s", (user_id,)) == 2

    me = await patch({"displayName": "Alice A.", "bio": "new bio", "avatarUrl": "https://img.test/a.png"})
    assert (me["bio"], me["avatarUrl"]) == ("new bio", "https://img.test/a.png")
    me = await patch({"avatarUrl": None})
    assert me["avatarUrl"] is None
    me = await patch({"bio": ""})
    assert me["bio"] == ""

    events = await db.events(after=mark)
    assert [(e.aggregate_version, e.payload["changed"]) for e in events] == [
        (3, ["bio", "avatarUrl"]),
        (4, ["avatarUrl"]),
        (5, ["bio"]),
    ]
    assert await db.version("users", "id = %s", (user_id,)) == 5
    assert await db.row(
        "SELECT display_name, bio, avatar_url FROM profiles WHERE user_id = %s", (user_id,)
    ) == ("Alice A.", "", None)
    r = await api.call("GET", "/api/users/me", subject="alice")
    assert r.json == me


async def test_a_new_username_is_taken_under_the_sign_up_rules_and_frees_the_old_one(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice = await chorus.user("alice")
    await chorus.user("bob")

    async def rename(subject: str, username: str) -> Any:
        return await api.call("PATCH", "/api/users/me", subject=subject, json_body={"username": username})

    mark = await db.mark()
    # Taken by a live account (compared without case), or held after an erasure: 409, nothing changes.
    assert assert_problem(await rename("alice", "BOB"), 409, "conflict")["field"] == "username"
    await db.execute(
        "INSERT INTO username_holds VALUES (%s, now() + interval '1 day')", (username_digest("gone_one"),)
    )
    assert assert_problem(await rename("alice", "gone_one"), 409, "conflict")["field"] == "username"
    assert await db.events(after=mark) == []

    r = await rename("alice", "alice_2")
    assert r.status == 200, r
    assert r.json == {**alice, "username": "alice_2"}
    [event] = await db.events(after=mark)
    assert event.key == ("profile.updated", "user", alice["id"], 2)
    assert (event.payload["username"], event.payload["changed"]) == ("alice_2", ["username"])
    # The same name again records nothing; a change of case alone is a change.
    assert (await rename("alice", "alice_2")).json["username"] == "alice_2"
    assert len(await db.events(after=mark)) == 1
    assert (await rename("alice", "Alice_2")).json["username"] == "Alice_2"
    assert len(await db.events(after=mark)) == 2
    # The old name is free for someone else at once.
    assert (await chorus.user("carol", username="alice"))["username"] == "alice"


PROFILE_REFUSALS: dict[str, tuple[dict[str, Any], str | None]] = {
    "nothing to change": ({}, None),
    "null display name": ({"displayName": None}, None),
    "null bio": ({"bio": None}, None),
    "empty display name": ({"displayName": ""}, "displayName"),
    "display name too long": ({"displayName": "d" * 51}, "displayName"),
    "bio too long": ({"bio": "b" * 501}, "bio"),
    "avatar not https": ({"avatarUrl": "ftp://img.test/a.png"}, "avatarUrl"),
    "null username": ({"username": None}, None),
    "username too short": ({"username": "ab"}, "username"),
    "username with a dash": ({"username": "bad-name"}, "username"),
    "reserved username": ({"username": "Admin"}, "username"),
}


async def test_profile_update_validation(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    alice = await chorus.user("alice")
    mark = await db.mark()
    for case, (body, field) in PROFILE_REFUSALS.items():
        r = await api.call("PATCH", "/api/users/me", subject="alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
        if field is not None:
            assert field in error_fields(r), (case, r)
    assert await db.events(after=mark) == []
    assert await db.version("users", "id = %s", (alice["id"],)) == 1
    assert (await api.call("GET", "/api/users/me", subject="alice")).json == alice


async def test_public_profile_of_a_user(api: ApiClient, chorus: Chorus) -> None:
    """Before the relay has projected anything, GET /api/profiles answers from PostgreSQL."""
    alice, bob = await chorus.users("alice", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    r = await api.call("GET", f"/api/profiles/{alice['id']}", subject="bob")
    assert r.status == 200, r
    assert r.json == {
        "userId": alice["id"],
        "username": "alice",
        "displayName": "Alice",
        "bio": "",
        "avatarUrl": None,
        "followers": 1,
        "following": 0,
        "posts": 0,
        "visibility": "public",
    }
    assert_problem(await api.call("GET", f"/api/profiles/{uuid.uuid4()}", subject="bob"), 404, "not-found")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "alice")
    assert_problem(await api.call("GET", f"/api/profiles/{alice['id']}", subject="bob"), 404, "not-found")


# --- deleting an account -----------------------------------------------------------------------


async def test_account_deletion_locks_at_once_and_erases_in_batches(
    api: ApiClient, chorus: Chorus, db: OwnerDb, app_context: AppContext
) -> None:
    """The 202 locks the account and starts the job; the job (run here batch by batch, as the relay's
    erasure handler would) retracts every follow and post with its own event, and a replayed batch
    changes nothing. tests/security/test_erasure.py runs it all over HTTP with the relay."""
    alice, bob, carol = await chorus.users("alice", "bob", "carol")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    await chorus.do("PUT", f"/api/users/{carol['id']}/follow", "bob")  # not alice's: must survive
    posts = [await chorus.post("alice", f"post {n}") for n in range(3)]
    bobs_post = await chorus.post("bob")
    follow_ids = {
        str(row[0])
        for row in await db.rows(
            "SELECT id FROM follows WHERE %(a)s IN (follower_id, followee_id)", {"a": alice["id"]}
        )
    }

    mark = await db.mark()
    r = await api.call("DELETE", "/api/users/me", subject="alice")
    assert r.status == 202, r
    assert (r.json["userId"], r.json["status"]) == (alice["id"], "accepted")
    assert [e.key for e in await db.events(after=mark)] == [
        ("user.deleted", "user", alice["id"], 2),
        ("account.erasure_requested", "account_erasure", alice["id"], 1),
    ]
    assert await db.row(
        "SELECT deleted_at IS NOT NULL, version FROM users WHERE id = %s", (alice["id"],)
    ) == (True, 2)
    assert await db.scalar("SELECT deleted_at IS NOT NULL FROM profiles WHERE user_id = %s", (alice["id"],))
    # The account is gone for its owner and for everyone else at once; its rows wait for the job.
    assert_problem(await api.call("GET", "/api/users/me", subject="alice"), 403, "not-onboarded")
    assert_problem(await api.call("DELETE", "/api/users/me", subject="alice"), 403, "not-onboarded")
    assert_problem(await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob"), 404, "not-found")
    assert_problem(await api.call("GET", f"/api/users/{alice['id']}/posts", subject="bob"), 404, "not-found")
    comment = {"content": "x"}
    r = await api.call("POST", f"/api/posts/{posts[0]['id']}/comments", subject="bob", json_body=comment)
    assert_problem(r, 404, "not-found")

    # The job, one batch per event, two rows a batch; each event is handled twice (a relay retry).
    erasure = ErasureService(app_context.pg_pool, app_context.cosmos_db, batch_size=2)
    for _ in range(100):
        if await db.scalar(
            "SELECT completed_at IS NOT NULL FROM account_erasures WHERE user_id = %s", (alice["id"],)
        ):
            break
        latest = await db.row(
            """SELECT id, aggregate_version FROM outbox WHERE aggregate_type = 'account_erasure'
               AND aggregate_id = %s ORDER BY aggregate_version DESC LIMIT 1""",
            (alice["id"],),
        )
        assert latest is not None
        outbox_id, version = latest
        # No relay runs here: earlier events count as projected and published.
        await db.execute(
            "UPDATE outbox SET status = 'published', projected_at = now(), published_at = now() WHERE id < %s",
            (outbox_id,),
        )
        await erasure.run_step(UUID(alice["id"]), version, outbox_id)
        await erasure.run_step(UUID(alice["id"]), version, outbox_id)
    else:
        raise AssertionError("the erasure did not finish in 100 batches")

    events = await db.events(after=mark)
    assert sorted(e.key for e in events if e.event_type == "follow.deleted") == sorted(
        ("follow.deleted", "follow", follow_id, 2) for follow_id in follow_ids
    )
    assert {e.payload["cause"] for e in events if e.event_type == "follow.deleted"} == {"account_deleted"}
    assert sorted(e.key for e in events if e.event_type == "post.deleted") == sorted(
        ("post.deleted", "post", post["id"], 2) for post in posts
    )
    chain = [e for e in events if e.aggregate_type == "account_erasure"]
    assert [e.aggregate_version for e in chain] == list(range(1, len(chain) + 1))
    assert chain[-1].event_type == "account.erased"
    # Three posts, two a batch: two batches, then one that finds none left and moves on.
    steps = [e.payload["step"] for e in chain if e.event_type == "account.erasure_progressed"]
    assert steps[:3] == ["posts", "posts", "comments"]

    assert await db.count("follows", "deleted_at IS NULL") == 1
    assert await db.count("posts", "deleted_at IS NULL") == 1
    counts = {
        str(r[0]): r[1:]
        for r in await db.rows("SELECT user_id, followers, following, posts FROM user_counts")
    }
    assert counts[bob["id"]] == (0, 1, 1)
    assert counts[carol["id"]] == (1, 0, 0)
    assert counts[alice["id"]] == (0, 0, 0)
    assert await db.row("SELECT username, email FROM users WHERE id = %s", (alice["id"],)) == (
        f"erased_{UUID(alice['id']).hex[:20]}",
        None,
    )
    assert_problem(await api.call("GET", f"/api/posts/{posts[0]['id']}", subject="bob"), 404, "not-found")
    assert (await api.call("GET", f"/api/posts/{bobs_post['id']}", subject="bob")).status == 200

    # A deleted account frees its subject (a new account, new counts), not its username.
    taken = {"username": "alice", "displayName": "A"}
    assert_problem(await api.call("POST", "/api/users", subject="mallory", json_body=taken), 409, "conflict")
    again = await chorus.user("alice", username="alice_again")
    assert again["id"] != alice["id"]
    assert (again["followers"], again["following"], again["posts"]) == (0, 0, 0)


async def test_expired_idempotency_keys_and_username_holds_are_deleted(
    api: ApiClient, chorus: Chorus, db: OwnerDb, app_context: AppContext
) -> None:
    await chorus.user("alice")
    for key in ("old", "new"):
        r = await api.call(
            "POST",
            "/api/posts",
            subject="alice",
            json_body={"content": key},
            headers={"Idempotency-Key": key},
        )
        assert r.status == 201, r
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'")
    await db.execute(
        "INSERT INTO username_holds VALUES (%s, now() - interval '1 second'), (%s, now() + interval '1 day')",
        ("0" * 64, "1" * 64),
    )
    assert await expire_keys_and_holds(app_context.pg_pool, key_ttl_hours=24) == (1, 1)
    assert [r[0] for r in await db.rows("SELECT key FROM idempotency_keys")] == ["new"]
    assert [r[0] for r in await db.rows("SELECT username_sha256 FROM username_holds")] == ["1" * 64]
    # An expired key is a new request: the same key makes a second post.
    r = await api.call(
        "POST",
        "/api/posts",
        subject="alice",
        json_body={"content": "old"},
        headers={"Idempotency-Key": "old"},
    )
    assert r.status == 201 and "idempotent-replayed" not in r.headers
