"""Idempotency-Key on the creating POSTs, and keyset pagination with signed cursors."""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from typing import Any

from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb
from tests.support.problems import assert_problem

# --- Idempotency-Key ---------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_and_body_replays_the_first_response(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.user("alice")
    mark = await db.mark()
    key = {"Idempotency-Key": "post-1"}

    first = await api.call("POST", "/api/posts", subject="alice", json_body={"content": "once"}, headers=key)
    # The same request, written differently (field order, a default spelled out), is the same request.
    again = await api.call(
        "POST", "/api/posts", subject="alice", headers=key, body=b'{ "mediaIds": [],\n  "content": "once" }'
    )

    assert first.status == again.status == 201, (first, again)
    assert again.json == first.json
    assert again.headers["location"] == first.headers["location"] == f"/api/posts/{first.json['id']}"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await db.count("posts") == 1
    assert len(await db.events(after=mark)) == 1
    assert await db.scalar("SELECT posts FROM user_counts WHERE user_id = %s", (first.json["authorId"],)) == 1


async def test_the_same_key_with_another_body_is_409(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    post = await chorus.post("alice")
    key = {"Idempotency-Key": "k"}
    await chorus.api.call("POST", "/api/posts", subject="alice", json_body={"content": "one"}, headers=key)
    mark = await db.mark()

    r = await api.call("POST", "/api/posts", subject="alice", json_body={"content": "two"}, headers=key)
    assert_problem(r, 409, "conflict")
    # The same key on another operation is another request too.
    r = await api.call(
        "POST",
        f"/api/posts/{post['id']}/comments",
        subject="alice",
        json_body={"content": "one"},
        headers=key,
    )
    assert_problem(r, 409, "conflict")

    assert await db.count("posts") == 2
    assert await db.count("comments") == 0
    assert await db.events(after=mark) == []


async def test_keys_are_per_caller_and_per_target(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.users("alice", "bob")
    post, other = await chorus.post("alice"), await chorus.post("alice")
    key = {"Idempotency-Key": "same-key"}

    a = await api.call("POST", "/api/posts", subject="alice", json_body={"content": "x"}, headers=key)
    b = await api.call("POST", "/api/posts", subject="bob", json_body={"content": "x"}, headers=key)
    assert (a.status, b.status) == (201, 201)
    assert a.json["id"] != b.json["id"]
    assert "idempotent-replayed" not in b.headers

    # A comment with the same key and body on another post is a different request: 409, not a replay.
    c = await api.call(
        "POST",
        f"/api/posts/{post['id']}/comments",
        subject="bob",
        json_body={"content": "c"},
        headers={"Idempotency-Key": "comment"},
    )
    assert c.status == 201, c
    r = await api.call(
        "POST",
        f"/api/posts/{other['id']}/comments",
        subject="bob",
        json_body={"content": "c"},
        headers={"Idempotency-Key": "comment"},
    )
    assert_problem(r, 409, "conflict")
    r = await api.call(
        "POST",
        f"/api/posts/{post['id']}/comments",
        subject="bob",
        json_body={"content": "c"},
        headers={"Idempotency-Key": "comment"},
    )
    assert (r.status, r.json, r.headers["idempotent-replayed"]) == (201, c.json, "true")
    assert r.headers["location"] == f"/api/comments/{c.json['id']}"
    assert await db.count("comments") == 1


async def test_onboarding_with_a_key_replays_instead_of_409(api: ApiClient, db: OwnerDb) -> None:
    body = {"username": "alice", "displayName": "Alice"}
    key = {"Idempotency-Key": "signup"}
    first = await api.call("POST", "/api/users", subject="alice", json_body=body, headers=key)
    again = await api.call("POST", "/api/users", subject="alice", json_body=body, headers=key)
    assert (first.status, again.status) == (201, 201)
    assert again.json == first.json
    assert again.headers["idempotent-replayed"] == "true"
    # Without the key, the retry is what it is: the account exists.
    assert_problem(await api.call("POST", "/api/users", subject="alice", json_body=body), 409, "conflict")
    assert await db.count("users") == 1
    assert await db.event_count() == 1


async def test_a_failed_attempt_leaves_its_key_unused(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    key = {"Idempotency-Key": "retry-me"}
    r = await api.call(
        "POST",
        "/api/posts",
        subject="alice",
        headers=key,
        json_body={"content": "x", "mediaIds": [str(uuid.uuid4())]},
    )
    assert_problem(r, 422, "validation-failed")
    assert await db.count("idempotency_keys") == 0

    # Had the failure kept the key, this other body would be a 409.
    r = await api.call("POST", "/api/posts", subject="alice", headers=key, json_body={"content": "x"})
    assert r.status == 201, r
    assert "idempotent-replayed" not in r.headers
    assert await db.row("SELECT subject, key, response_status FROM idempotency_keys") == (
        "alice",
        "retry-me",
        201,
    )


async def test_a_malformed_key_is_422(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    for key in ("k" * 256, "tab\tkey"):
        r = await api.call(
            "POST",
            "/api/posts",
            subject="alice",
            json_body={"content": "x"},
            headers={"Idempotency-Key": key},
        )
        assert_problem(r, 422, "validation-failed")
    assert await db.count("posts") == 0
    # 255 printable characters are fine.
    r = await api.call(
        "POST",
        "/api/posts",
        subject="alice",
        json_body={"content": "x"},
        headers={"Idempotency-Key": "k" * 255},
    )
    assert r.status == 201, r


async def test_concurrent_requests_with_one_key_create_once(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await chorus.user("alice")
    mark = await db.mark()

    responses = await asyncio.gather(
        *(
            api.call(
                "POST",
                "/api/posts",
                subject="alice",
                json_body={"content": "once"},
                headers={"Idempotency-Key": "burst"},
            )
            for _ in range(12)
        )
    )

    assert {r.status for r in responses} == {201}, responses
    assert len({r.json["id"] for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await db.count("posts") == 1
    assert [e.event_type for e in await db.events(after=mark)] == ["post.created"]
    assert await db.row("SELECT posts, version FROM user_counts") == (1, 2)


# --- pagination --------------------------------------------------------------------------------


async def page_through(
    api: ApiClient, path: str, subject: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, following nextCursor; and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = f"{path}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = await api.call("GET", url, subject=subject)
        assert r.status == 200, r
        page = r.json["items"]
        assert len(page) <= limit
        items += page
        pages += 1
        cursor = r.json["nextCursor"]
        if cursor is None:
            return items, pages
        assert page, "a page with a next cursor must not be empty"
        assert pages < 100


def tamper(cursor: str) -> str:
    """The same cursor with one byte of its signed body changed."""
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-3] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_followers_and_following_page_through_every_item_once(api: ApiClient, chorus: Chorus) -> None:
    alice = await chorus.user("alice")
    fans = [await chorus.user(f"fan{n}") for n in range(5)]
    for fan in fans:
        await chorus.do("PUT", f"/api/users/{alice['id']}/follow", fan["username"])
        await chorus.do("PUT", f"/api/users/{fan['id']}/follow", "alice")
    newest_first = [fan["id"] for fan in reversed(fans)]

    for limit in (1, 2, 5, 100):
        for direction in ("followers", "following"):
            items, pages = await page_through(api, f"/api/users/{alice['id']}/{direction}", "fan0", limit)
            assert [p["userId"] for p in items] == newest_first, (direction, limit)
            assert pages == math.ceil(len(fans) / limit)


async def test_posts_and_comments_page_through_every_item_once(api: ApiClient, chorus: Chorus) -> None:
    alice = await chorus.user("alice")
    posts = [await chorus.post("alice", f"post {n}") for n in range(5)]
    comments = [await chorus.comment("alice", posts[0]["id"], f"comment {n}") for n in range(5)]

    items, pages = await page_through(api, f"/api/users/{alice['id']}/posts", "alice", 2)
    assert [p["id"] for p in items] == [p["id"] for p in reversed(posts)]
    assert pages == 3
    items, pages = await page_through(api, f"/api/posts/{posts[0]['id']}/comments", "alice", 2)
    assert items == comments
    assert pages == 3


async def test_pages_hold_when_timestamps_tie(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    """Keyset pagination orders by (time, id): rows written in the same instant are neither
    skipped nor repeated."""
    alice = await chorus.user("alice")
    fans = [await chorus.user(f"fan{n}") for n in range(5)]
    for fan in fans:
        await chorus.do("PUT", f"/api/users/{alice['id']}/follow", fan["username"])
    posts = [await chorus.post("alice", f"post {n}") for n in range(5)]
    comments = [await chorus.comment("alice", posts[0]["id"], f"c{n}") for n in range(5)]
    for table in ("follows", "posts", "comments"):
        await db.execute(f"UPDATE {table} SET created_at = '2030-01-01T00:00:00Z'")

    items, _ = await page_through(api, f"/api/users/{alice['id']}/followers", "alice", 2)
    assert [p["userId"] for p in items] == sorted((f["id"] for f in fans), key=uuid.UUID, reverse=True)
    items, _ = await page_through(api, f"/api/users/{alice['id']}/posts", "alice", 2)
    assert [p["id"] for p in items] == sorted((p["id"] for p in posts), key=uuid.UUID, reverse=True)
    items, _ = await page_through(api, f"/api/posts/{posts[0]['id']}/comments", "alice", 2)
    assert [c["id"] for c in items] == sorted((c["id"] for c in comments), key=uuid.UUID)


async def test_a_tampered_or_foreign_cursor_is_400(api: ApiClient, chorus: Chorus) -> None:
    alice, bob = await chorus.users("alice", "bob")
    for n in range(3):
        fan = await chorus.user(f"fan{n}")
        await chorus.do("PUT", f"/api/users/{alice['id']}/follow", fan["username"])
        await chorus.do("PUT", f"/api/users/{fan['id']}/follow", "alice")
        await chorus.post("alice")
        await chorus.post("bob")
    followers = f"/api/users/{alice['id']}/followers"
    r = await api.call("GET", f"{followers}?limit=1", subject="bob")
    cursor = r.json["nextCursor"]
    assert cursor is not None
    assert (await api.call("GET", f"{followers}?limit=1&cursor={cursor}", subject="bob")).status == 200
    posts_cursor = (await api.call("GET", f"/api/users/{alice['id']}/posts?limit=1", subject="bob")).json[
        "nextCursor"
    ]

    for path, bad in (
        (followers, tamper(cursor)),
        (followers, "not-a-cursor"),
        (followers, "%%%"),
        (followers, cursor[:-4]),
        (f"/api/users/{alice['id']}/following", cursor),  # the same user's other list
        (f"/api/users/{bob['id']}/followers", cursor),  # the same list of another user
        (f"/api/users/{bob['id']}/posts", posts_cursor),
        (followers, posts_cursor),
    ):
        r = await api.call("GET", f"{path}?limit=1&cursor={bad}", subject="bob")
        assert_problem(r, 400, "bad-cursor")


async def test_limit_must_be_1_to_100(api: ApiClient, chorus: Chorus) -> None:
    alice = await chorus.user("alice")
    post = await chorus.post("alice")
    paths = (
        f"/api/users/{alice['id']}/followers",
        f"/api/users/{alice['id']}/posts",
        f"/api/posts/{post['id']}/comments",
    )
    for path in paths:
        for limit in ("0", "101", "-1", "abc", "1.5", "²"):
            r = await api.call("GET", f"{path}?limit={limit}", subject="alice")
            body = assert_problem(r, 422, "validation-failed")
            assert body["field"] == "limit"
        for limit in ("1", "100"):
            assert (await api.call("GET", f"{path}?limit={limit}", subject="alice")).status == 200
