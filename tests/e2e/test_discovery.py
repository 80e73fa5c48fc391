"""Mentions, hashtags, trending, search and comment replies over real HTTP through the local host
(relay timer and change feeds running), with the block, privacy, moderation and deletion rules on
every read they add."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest

from devhost.host.server import FunctionHost
from shared_code.services.discovery import post_search_sql, user_search_params, user_search_sql
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _user(
    http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, username: str, display: str | None = None
) -> ApiUser:
    return await onboard_user(ApiUser(http, host.base_url, api.token(f"disc-{username}")), username, display)


async def _post(user: ApiUser, content: str) -> dict[str, Any]:
    post: dict[str, Any] = await user.ok("POST", "/api/posts", {"content": content})
    return post


async def _ids(user: ApiUser, path: str) -> list[str]:
    page = await user.ok("GET", path)
    return [item.get("id") or item.get("userId") for item in page["items"]]


async def _notifications(user: ApiUser) -> list[dict[str, Any]]:
    # On a loaded machine the Cosmos emulator may miss the read's budget (503, retry): ask again.
    answer = await eventually(
        lambda: user.call("GET", "/api/notifications?limit=100"),
        lambda a: a.status != 503,
        timeout=60,
        interval=0.2,
        what="the notifications read answered",
    )
    assert answer.status == 200, answer
    items: list[dict[str, Any]] = answer.body["items"]
    return items


async def test_a_mention_notifies_once_and_an_edit_notifies_only_the_newly_mentioned(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice = await _user(http, local_host, api, "m_alice")
    bob = await _user(http, local_host, api, "m_bob")
    cat = await _user(http, local_host, api, "m_cat")
    dan = await _user(http, local_host, api, "m_dan")
    await dan.ok("PUT", f"/api/users/{alice.id}/block")

    post = await _post(alice, "hello @M_Bob and @m_dan and @nobody_here, #Intro")
    mentions = await eventually(
        lambda: _notifications(bob),
        lambda items: any(n["type"] == "mention" for n in items),
        what="bob's mention notification",
    )
    mention = next(n for n in mentions if n["type"] == "mention")
    assert (mention["actorId"], mention["subjectId"]) == (alice.id, post["id"])

    # An edit keeping bob and adding cat: cat is notified, bob not a second time.
    await alice.ok("PATCH", f"/api/posts/{post['id']}", {"content": "hello @m_bob and @m_cat"})
    await eventually(
        lambda: _notifications(cat),
        lambda items: [n["type"] for n in items] == ["mention"],
        what="cat's mention notification",
    )
    # Dropping bob and mentioning him again is the same (text, account) pair: still one notification.
    await alice.ok("PATCH", f"/api/posts/{post['id']}", {"content": "hello @m_cat"})
    await alice.ok("PATCH", f"/api/posts/{post['id']}", {"content": "hello again @m_bob @m_cat"})
    # A comment mentioning bob is another text: one more notification, and its own.
    comment = await alice.ok("POST", f"/api/posts/{post['id']}/comments", {"content": "@m_bob look"})
    assert comment["replyCount"] == 0
    await eventually(
        lambda: _notifications(bob),
        lambda items: sum(n["type"] == "mention" for n in items) == 2,
        what="bob's second mention (the comment's)",
    )
    assert sum(n["type"] == "mention" for n in await _notifications(bob)) == 2
    # dan blocked alice: mentioned in the text, never notified.
    assert [n for n in await _notifications(dan) if n["type"] == "mention"] == []

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT u.username::text FROM mentions m JOIN users u ON u.id = m.mentioned_user_id WHERE source_id = %s",
            (post["id"],),
        ).fetchall()
        assert sorted(r[0] for r in rows) == ["m_bob", "m_cat"]
        # The events carry the notified accounts: bob once (created), cat once (first edit), bob
        # never again although mentioned anew by the last edit (the notification id is the pair).
        events = conn.execute(
            """SELECT event_type, payload->'notifyMentions' FROM outbox
               WHERE aggregate_id = %s ORDER BY aggregate_version""",
            (post["id"],),
        ).fetchall()
    assert [e[0] for e in events] == ["post.created", *["post.updated"] * 3]
    assert events[0][1] == [bob.id]
    assert events[1][1] == [cat.id]


async def test_too_many_mentions_or_tags_is_refused_and_writes_nothing(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice = await _user(http, local_host, api, "b_alice")
    tags = " ".join(f"#t{i}" for i in range(11))
    answer = await alice.call("POST", "/api/posts", {"content": tags})
    assert answer.status == 422, answer
    assert answer.body["field"] == "content" and "at most 10 distinct #hashtags" in answer.body["detail"]
    mentions = " ".join(f"@user_{i:02}" for i in range(11))
    assert (await alice.call("POST", "/api/posts", {"content": mentions})).status == 422
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (0,)


async def test_a_tags_posts_respect_blocks_privacy_moderation_and_deletion(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice = await _user(http, local_host, api, "h_alice")
    bob = await _user(http, local_host, api, "h_bob")
    cat = await _user(http, local_host, api, "h_cat")
    mod = ApiUser(http, local_host.base_url, api.token("disc-h_mod", role="moderator"))
    await onboard_user(mod, "h_mod")
    first = await _post(alice, "one #Café")
    second = await _post(bob, "two #CAFE\u0301 and #other")
    third = await _post(cat, "three #café")
    # Any spelling of the tag names it; newest first; paged.
    assert await _ids(alice, "/api/hashtags/caf%C3%A9/posts") == [third["id"], second["id"], first["id"]]
    page = await alice.ok("GET", "/api/hashtags/CAF%C3%89/posts?limit=2")
    assert [p["id"] for p in page["items"]] == [third["id"], second["id"]]
    rest = await alice.ok("GET", f"/api/hashtags/caf%C3%A9/posts?limit=2&cursor={page['nextCursor']}")
    assert ([p["id"] for p in rest["items"]], rest["nextCursor"]) == ([first["id"]], None)
    assert (await alice.call("GET", "/api/hashtags/%2D%2D/posts")).status == 404

    # A block either way hides the other's posts.
    await bob.ok("PUT", f"/api/users/{alice.id}/block")
    assert await _ids(alice, "/api/hashtags/café/posts") == [third["id"], first["id"]]
    assert await _ids(bob, "/api/hashtags/café/posts") == [third["id"], second["id"]]
    # A private author's posts reach only followers.
    await cat.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert await _ids(alice, "/api/hashtags/café/posts") == [first["id"]]
    assert third["id"] in await _ids(cat, "/api/hashtags/café/posts")
    # A hidden post drops out (and comes back when restored); a deleted one drops out for good.
    await mod.ok(
        "POST", f"/api/moderation/posts/{first['id']}/decision", {"action": "hide", "reason": "test"}
    )
    assert await _ids(alice, "/api/hashtags/café/posts") == []
    assert (await _trending(alice)).get("café") == 2  # the hidden post's use no longer counts
    await mod.ok(
        "POST", f"/api/moderation/posts/{first['id']}/decision", {"action": "restore", "reason": "ok"}
    )
    assert await _ids(alice, "/api/hashtags/café/posts") == [first["id"]]
    assert (await _trending(alice)).get("café") == 3
    await bob.ok("DELETE", f"/api/posts/{second['id']}")
    assert second["id"] not in await _ids(bob, "/api/hashtags/café/posts")
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM hashtag_uses WHERE post_id = %s", (second["id"],)
        ).fetchone() == (0,)


async def _trending(user: ApiUser) -> dict[str, int]:
    page = await user.ok("GET", "/api/hashtags/trending?limit=100")
    return {item["tag"]: item["uses"] for item in page["items"]}


async def test_trending_counts_uses_exactly_through_edits_deletions_and_replays(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice = await _user(http, local_host, api, "t_alice")
    bob = await _user(http, local_host, api, "t_bob")
    a1 = await _post(alice, "#rust #go")
    await _post(alice, "#rust again, #Rust twice in one text counts once")
    b1 = await _post(bob, "#go")
    await bob.ok("POST", f"/api/posts/{a1['id']}/comments", {"content": "me too #rust"})
    # A replayed request (same Idempotency-Key) writes nothing, so counts nothing.
    for _ in range(2):
        answer = await bob.call(
            "POST", "/api/posts", {"content": "#zig"}, headers={"Idempotency-Key": "k-zig"}
        )
        assert answer.status == 201, answer
    assert await _trending(alice) == {"rust": 3, "go": 2, "zig": 1}
    await alice.ok("PATCH", f"/api/posts/{a1['id']}", {"content": "#rust #zig"})  # go out, zig in
    await bob.ok("DELETE", f"/api/posts/{b1['id']}")
    assert await _trending(alice) == {"rust": 3, "zig": 2}
    # The buckets equal the live uses they count (what a scan would find).
    with psycopg.connect(database_url) as conn:
        buckets: dict[str, int] = dict(
            conn.execute("SELECT tag, sum(uses) FROM hashtag_hourly_uses GROUP BY tag").fetchall()
        )
        scanned: dict[str, int] = dict(
            conn.execute("SELECT tag, count(*) FROM hashtag_uses GROUP BY tag").fetchall()
        )
    assert buckets == scanned == {"rust": 3, "zig": 2}


async def test_user_search_by_name_prefix_without_case_or_accents(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    me = await _user(http, local_host, api, "s_me")
    zoe = await _user(http, local_host, api, "zoe_k", "Zoë Kravitz")
    zed = await _user(http, local_host, api, "zed_99", "Zoë Zed")
    zola = await _user(http, local_host, api, "Zola", "Émile Zola")
    gone = await _user(http, local_host, api, "zoe_gone", "Zoe Gone")
    blocker = await _user(http, local_host, api, "zoe_blocks", "Zoe B")
    await blocker.ok("PUT", f"/api/users/{me.id}/block")
    assert (await gone.call("DELETE", "/api/users/me")).status == 202

    found = await me.ok("GET", "/api/search/users?q=ZOE")
    # By username (zoe_k), then by display name for zed_99, whose username does not match.
    assert [u["userId"] for u in found["items"]] == [zed.id, zoe.id]
    assert found["items"][1] == {
        "userId": zoe.id,
        "username": "zoe_k",
        "displayName": "Zoë Kravitz",
        "avatarUrl": None,
    }
    assert await _ids(me, "/api/search/users?q=%C3%A9mile") == [zola.id]
    assert await _ids(me, "/api/search/users?q=zo") == [zed.id, zoe.id, zola.id]
    # An account matching by both names is listed once; paging walks the same order.
    first = await me.ok("GET", "/api/search/users?q=z&limit=2")
    second = await me.ok("GET", f"/api/search/users?q=z&limit=2&cursor={first['nextCursor']}")
    walked = [u["userId"] for u in first["items"] + second["items"]]
    assert walked == [zed.id, zoe.id, zola.id] and second["nextCursor"] is None
    # Bad q: 422 problems.
    for bad in ("", "%20%20", "x" * 101):
        answer = await me.call("GET", f"/api/search/users?q={bad}")
        assert answer.status == 422, (bad, answer)
    assert (await me.call("GET", "/api/search/users")).status == 422


async def test_searches_are_index_scans_on_many_rows(database_url: str) -> None:
    """The plans PostgreSQL picks for the searches' own queries over 20,000 accounts and posts: each
    name branch is a range scan of its index that stops after the page (no scan of the table, no
    sort of the matches), and post search goes through the GIN index."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """INSERT INTO users (auth_subject, auth_provider, username)
               SELECT 'bulk-' || i, 'email', 'bulk' || i FROM generate_series(1, 20000) AS i"""
        )
        conn.execute(
            """INSERT INTO profiles (user_id, display_name)
               SELECT id, 'Námé ' || substr(username::text, 5) FROM users WHERE auth_subject LIKE 'bulk-%'"""
        )
        conn.execute(
            """INSERT INTO posts (author_id, content)
               SELECT id, 'words about number ' || substr(username::text, 5) FROM users
               WHERE auth_subject LIKE 'bulk-%'"""
        )
        conn.execute("INSERT INTO post_counts (post_id) SELECT id FROM posts ON CONFLICT DO NOTHING")
        conn.execute("ANALYZE users; ANALYZE profiles; ANALYZE posts; ANALYZE post_counts")
        for low, high in (("bulk1", "bulk2"), ("name 1", "name 2")):
            params = user_search_params(low, high, None, 21)
            plan = "\n".join(
                row[0] for row in conn.execute("EXPLAIN " + user_search_sql(bounded=True), params)
            )
            assert "users_live_by_search_key" in plan and "profiles_live_by_search_key" in plan, plan
            assert "Seq Scan" not in plan and "Bitmap" not in plan, plan
            # The scan starts at the prefix: one bound below, the row comparison (a second, scalar
            # one let PostgreSQL start at the lowest key and read every entry below the prefix).
            assert plan.count(f"ROW('{low}'::text, '00000000-0000-0000-0000-000000000000'::uuid)") == 2, plan
        # Post search ranks only the newest candidates: a word in every post walks the posts by time and
        # stops there, a rare one goes through the GIN index (each planned for its own query).
        searcher = conn.execute("SELECT id FROM users WHERE auth_subject = 'bulk-1'").fetchone()
        assert searcher is not None

        def post_search(q: str, candidates: int, explain: str = "") -> list[tuple[Any, ...]]:
            params = {
                "viewer": searcher[0],
                "moderator": False,
                "config": "simple",
                "q": q,
                "candidates": candidates,
                "until": None,
                "limit": 21,
            }
            return conn.execute(explain + post_search_sql(first_page=True), params, prepare=False).fetchall()

        common = "\n".join(row[0] for row in post_search("words", 1000, "EXPLAIN "))
        assert "posts_live_newest" in common and "posts_search_vector" not in common, common
        newest = conn.execute(
            "SELECT id FROM posts WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 2"
        ).fetchall()
        assert {row[0] for row in post_search("words", 2)} == {row[0] for row in newest}
        # At 20,000 short posts a sequential scan is still cheap enough for the planner to prefer; that
        # the GIN index serves the match is what matters here (bench/ measures a million posts).
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                """EXPLAIN SELECT id FROM posts
                   WHERE deleted_at IS NULL AND search_vector @@ websearch_to_tsquery('simple', '12345')"""
            )
        )
        assert "posts_search_vector" in plan, plan
        rare = "\n".join(row[0] for row in post_search("12345", 1000, "EXPLAIN "))
        assert "posts_search_vector" in rare and "posts_live_newest" not in rare, rare


async def test_post_search_is_ranked_and_respects_blocks_privacy_moderation_and_deletion(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice = await _user(http, local_host, api, "p_alice")
    bob = await _user(http, local_host, api, "p_bob")
    cat = await _user(http, local_host, api, "p_cat")
    mod = ApiUser(http, local_host.base_url, api.token("disc-p_mod", role="moderator"))
    await onboard_user(mod, "p_mod")
    weak = await _post(alice, "a post that mentions kestrels once, among many other words here")
    strong = await _post(bob, "kestrels kestrels: all about kestrels")
    other = await _post(cat, "nothing to see")
    assert await _ids(alice, "/api/search/posts?q=kestrels") == [strong["id"], weak["id"]]
    page = await alice.ok("GET", "/api/search/posts?q=kestrels&limit=1")
    # A post written after the first page is not among the candidates its cursor ranks.
    newer = await _post(alice, "kestrels kestrels kestrels kestrels")
    rest = await alice.ok("GET", f"/api/search/posts?q=kestrels&limit=1&cursor={page['nextCursor']}")
    assert [p["id"] for p in page["items"] + rest["items"]] == [strong["id"], weak["id"]]
    assert rest["nextCursor"] is None
    assert newer["id"] in await _ids(alice, "/api/search/posts?q=kestrels")
    await alice.ok("DELETE", f"/api/posts/{newer['id']}")
    assert await _ids(alice, "/api/search/posts?q=%22see%22") == [other["id"]]

    # A block either way: neither finds the other's posts.
    await alice.ok("PUT", f"/api/users/{bob.id}/block")
    assert await _ids(bob, "/api/search/posts?q=kestrels") == [strong["id"]]
    assert await _ids(alice, "/api/search/posts?q=kestrels") == [weak["id"]]
    # Private: only followers (and the author).
    await cat.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert await _ids(bob, "/api/search/posts?q=see") == []
    assert (await bob.call("PUT", f"/api/users/{cat.id}/follow")).status == 202  # a request
    assert await _ids(bob, "/api/search/posts?q=see") == []
    await cat.ok("POST", f"/api/users/me/follow-requests/{bob.id}/approve")
    assert await _ids(bob, "/api/search/posts?q=see") == [other["id"]]
    # Hidden by a moderator, or deleted: gone from search.
    await mod.ok("POST", f"/api/moderation/posts/{strong['id']}/decision", {"action": "hide", "reason": "x"})
    assert await _ids(cat, "/api/search/posts?q=kestrels") == [weak["id"]]
    await alice.ok("DELETE", f"/api/posts/{weak['id']}")
    assert await _ids(cat, "/api/search/posts?q=kestrels") == []
    # An edit re-indexes.
    await cat.ok("PATCH", f"/api/posts/{other['id']}", {"content": "now about kestrels"})
    assert await _ids(cat, "/api/search/posts?q=kestrels") == [other["id"]]
    assert (await cat.call("GET", "/api/search/posts?q=%00")).status == 422


async def test_replies_are_counted_listed_and_notified(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    alice = await _user(http, local_host, api, "r_alice")
    bob = await _user(http, local_host, api, "r_bob")
    cat = await _user(http, local_host, api, "r_cat")
    post = await _post(alice, "thread")
    top = await bob.ok("POST", f"/api/posts/{post['id']}/comments", {"content": "first"})
    r1 = await cat.ok(
        "POST", f"/api/posts/{post['id']}/comments", {"content": "reply", "parentId": top["id"]}
    )
    r2 = await alice.ok(
        "POST", f"/api/posts/{post['id']}/comments", {"content": "also", "parentId": top["id"]}
    )
    nested = await bob.ok(
        "POST", f"/api/posts/{post['id']}/comments", {"content": "deeper", "parentId": r1["id"]}
    )

    replies = await bob.ok("GET", f"/api/comments/{top['id']}/replies")
    assert [(c["id"], c["replyCount"]) for c in replies["items"]] == [(r1["id"], 1), (r2["id"], 0)]
    assert await _ids(bob, f"/api/comments/{r1['id']}/replies") == [nested["id"]]
    comments = await alice.ok("GET", f"/api/posts/{post['id']}/comments")
    assert {c["id"]: c["replyCount"] for c in comments["items"]}[top["id"]] == 2
    page = await bob.ok("GET", f"/api/comments/{top['id']}/replies?limit=1")
    rest = await bob.ok("GET", f"/api/comments/{top['id']}/replies?limit=1&cursor={page['nextCursor']}")
    assert [c["id"] for c in page["items"] + rest["items"]] == [r1["id"], r2["id"]]

    # The parent's author hears of each reply (bob of cat's and alice's; cat of bob's).
    await eventually(
        lambda: _notifications(bob),
        lambda items: (
            sorted(n["actorId"] for n in items if n["type"] == "reply") == sorted([cat.id, alice.id])
        ),
        what="bob's reply notifications",
    )
    await eventually(
        lambda: _notifications(cat),
        lambda items: [n["actorId"] for n in items if n["type"] == "reply"] == [bob.id],
        what="cat's reply notification",
    )
    # Deleting a reply lowers the count; a block hides the blocked one's replies from the blocker.
    await alice.ok("DELETE", f"/api/comments/{r2['id']}")
    comments = await bob.ok("GET", f"/api/posts/{post['id']}/comments")
    assert {c["id"]: c["replyCount"] for c in comments["items"]}[top["id"]] == 1
    await bob.ok("PUT", f"/api/users/{cat.id}/block")
    assert await _ids(bob, f"/api/comments/{top['id']}/replies") == []
    assert (await cat.call("GET", f"/api/comments/{top['id']}/replies")).status == 404
    assert (await bob.call("GET", f"/api/comments/{r2['id']}/replies")).status == 404


async def test_erasure_leaves_no_mention_or_tag_of_the_account(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    gone = await _user(http, local_host, api, "e_gone")
    bob = await _user(http, local_host, api, "e_bob")
    own = await _post(gone, "mine #gonetag @e_bob")
    bobs = await _post(bob, "hi @e_gone #bobtag")
    await gone.ok("POST", f"/api/posts/{bobs['id']}/comments", {"content": "#gonetag @e_bob"})
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM mentions WHERE author_id = %(u)s OR mentioned_user_id = %(u)s",
            {"u": gone.id},
        ).fetchone() == (3,)
    assert (await gone.call("DELETE", "/api/users/me")).status == 202

    def erased() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT completed_at IS NOT NULL FROM account_erasures WHERE user_id = %s", (gone.id,)
            ).fetchone()
            return bool(row and row[0])

    async def done() -> bool:
        return erased()

    await eventually(done, bool, timeout=90, interval=0.2, what="the erasure completed")
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM mentions WHERE author_id = %(u)s OR mentioned_user_id = %(u)s",
            {"u": gone.id},
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM hashtag_uses WHERE author_id = %s", (gone.id,)
        ).fetchone() == (0,)
        # The trending counts lost the account's uses; nothing names its tag any more.
        assert conn.execute("SELECT tag, uses FROM hashtag_hourly_uses").fetchall() == [("bobtag", 1)]
    assert own["id"] not in await _ids(bob, "/api/hashtags/gonetag/posts")
    assert await _ids(bob, "/api/search/users?q=e_gone") == []


async def test_a_private_author_notifies_only_mentioned_followers(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    eve = await _user(http, local_host, api, "v_eve")
    fan = await _user(http, local_host, api, "v_fan")
    stranger = await _user(http, local_host, api, "v_stranger")
    await eve.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert (await fan.call("PUT", f"/api/users/{eve.id}/follow")).status == 202
    await eve.ok("POST", f"/api/users/me/follow-requests/{fan.id}/approve")
    post = await _post(eve, "hello @v_fan and @v_stranger")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT payload->'mentions', payload->'notifyMentions' FROM outbox WHERE aggregate_id = %s",
            (post["id"],),
        ).fetchone()
    assert row == ([fan.id, stranger.id], [fan.id])
    await eventually(
        lambda: _notifications(fan),
        lambda items: [n["type"] for n in items if n["type"] == "mention"] == ["mention"],
        what="the follower's mention notification",
    )
    assert [n for n in await _notifications(stranger) if n["type"] == "mention"] == []
