"""Reposts, quotes and bookmarks over real HTTP, with the relay timer and change-feed functions running
in the local host: feeds show a repost once per feed with its newest reposter, undoing it takes it out
where nothing else keeps it, counts stay exact under concurrent reposts and replayed events, quotes
show their original until it goes, bookmarks page newest first and drop what the caller may not see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest
from azure.cosmos import exceptions

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(300)
# Under load (8 helpers on 2 cores) the relay and change feeds can lag: generous, never a sleep.
SETTLE = 90.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _people(
    http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, *names: str
) -> list[ApiUser]:
    users = []
    for name in names:
        user = ApiUser(http, host.base_url, api.token(f"rp-{name}"))
        users.append(await onboard_user(user, f"rp_{name}", name.title()))
    return users


async def _feed(user: ApiUser) -> dict[str, dict[str, Any]]:
    """The caller's feed by post id; fails if a post shows twice."""
    page = await user.ok("GET", "/api/feed?limit=100")
    ids = [item["postId"] for item in page["items"]]
    assert len(ids) == len(set(ids)), f"a post shows twice in {user.username}'s feed: {ids}"
    return {item["postId"]: item for item in page["items"]}


async def _feed_item(recipient: str, post_id: str) -> dict[str, Any] | None:
    from shared_code.bootstrap import get_app_context

    feed = (await get_app_context()).cosmos_db.get_container_client("userFeed")
    try:
        item: dict[str, Any] = await feed.read_item(f"{recipient}:{post_id}", partition_key=recipient)
    except exceptions.CosmosResourceNotFoundError:
        return None
    return item


async def _counter(post_id: str) -> dict[str, Any] | None:
    from shared_code.bootstrap import get_app_context

    counters = (await get_app_context()).cosmos_db.get_container_client("counters")
    try:
        doc: dict[str, Any] = await counters.read_item(f"{post_id}:counts", partition_key=post_id)
    except exceptions.CosmosResourceNotFoundError:
        return None
    return doc


async def _all_relayed(database_url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
        row = await cur.fetchone()
        return bool(row and row[0] == 0)


async def test_a_repost_shows_once_per_feed_with_the_newest_reposter_and_undoing_it_takes_it_out(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, cat, dan, eve = await _people(http, local_host, api, "ann", "ben", "cat", "dan", "eve")
    # dan follows the two reposters, not the author; eve follows the author and ben.
    for follower, followee in ((dan, ben), (dan, cat), (eve, ann), (eve, ben)):
        await follower.ok("PUT", f"/api/users/{followee.id}/follow")
    post = await ann.ok("POST", "/api/posts", {"content": "worth passing on"})
    await eventually(lambda: _feed(eve), lambda f: post["id"] in f, timeout=SETTLE, what="the post for eve")
    placed = (await _feed_item(eve.id, post["id"]) or {}).get("createdAt")

    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")
    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")  # again: nothing changes
    feed = await eventually(
        lambda: _feed(dan), lambda f: post["id"] in f, timeout=SETTLE, what="ben's repost in dan's feed"
    )
    item = feed[post["id"]]
    assert (item["repostedBy"], item["authorId"], item["content"]) == (ben.id, ann.id, "worth passing on")
    assert item["createdAt"] == post["createdAt"]  # the post's own time; the repost's is repostedAt
    first_position = (await _feed_item(dan.id, post["id"]) or {})["createdAt"]
    # The reposter sees their own repost; eve, who follows the author too, still has it once.
    await eventually(lambda: _feed(ben), lambda f: post["id"] in f, timeout=SETTLE, what="in ben's own feed")
    eve_item = await eventually(
        lambda: _feed_item(eve.id, post["id"]),
        lambda i: bool(i and i.get("repostedBy") == ben.id),
        timeout=SETTLE,
        what="eve's item shows ben as reposter",
    )
    assert eve_item is not None and eve_item["createdAt"] == placed  # its place in the feed never moves

    await cat.ok("PUT", f"/api/posts/{post['id']}/repost")
    item = (
        await eventually(
            lambda: _feed(dan),
            lambda f: f.get(post["id"], {}).get("repostedBy") == cat.id,
            timeout=SETTLE,
            what="cat, the newest reposter, shown to dan",
        )
    )[post["id"]]
    assert (await _feed_item(dan.id, post["id"]) or {})["createdAt"] == first_position
    assert (await ann.ok("GET", f"/api/posts/{post['id']}"))["repostCount"] == 2
    assert item["repostCount"] in (1, 2)  # the counters projection may be a moment behind

    # cat undoes: ben's repost still keeps it for dan, shown as ben's.
    await cat.ok("DELETE", f"/api/posts/{post['id']}/repost")
    await eventually(
        lambda: _feed(dan),
        lambda f: f.get(post["id"], {}).get("repostedBy") == ben.id,
        timeout=SETTLE,
        what="dan's item back to ben's repost",
    )
    # ben undoes too: nothing keeps it for dan; eve follows the author, so it stays for her.
    await ben.ok("DELETE", f"/api/posts/{post['id']}/repost")
    await ben.ok("DELETE", f"/api/posts/{post['id']}/repost")  # again: 204, nothing changes
    await eventually(
        lambda: _feed(dan), lambda f: post["id"] not in f, timeout=SETTLE, what="out of dan's feed"
    )
    await eventually(
        lambda: _feed_item(dan.id, post["id"]), lambda i: i is None, timeout=SETTLE, what="dan's item deleted"
    )
    eve_item = await eventually(
        lambda: _feed_item(eve.id, post["id"]),
        lambda i: bool(i and i.get("repostedBy") is None),
        timeout=SETTLE,
        what="eve's item without a reposter",
    )
    assert eve_item is not None and eve_item["createdAt"] == placed
    assert (await ann.ok("GET", f"/api/posts/{post['id']}"))["repostCount"] == 0


async def test_following_a_reposter_brings_their_recent_reposts(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, fay = await _people(http, local_host, api, "ann", "ben", "fay")
    post = await ann.ok("POST", "/api/posts", {"content": "passed on before fay came"})
    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")
    await fay.ok("PUT", f"/api/users/{ben.id}/follow")
    feed = await eventually(lambda: _feed(fay), lambda f: post["id"] in f, timeout=SETTLE, what="back-filled")
    assert (feed[post["id"]]["repostedBy"], feed[post["id"]]["authorId"]) == (ben.id, ann.id)


async def test_deleting_the_original_takes_its_reposts_out_of_feeds(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, dan = await _people(http, local_host, api, "ann", "ben", "dan")
    await dan.ok("PUT", f"/api/users/{ben.id}/follow")
    post = await ann.ok("POST", "/api/posts", {"content": "soon gone"})
    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")
    await eventually(lambda: _feed(dan), lambda f: post["id"] in f, timeout=SETTLE, what="the repost for dan")
    await ann.ok("DELETE", f"/api/posts/{post['id']}")
    assert post["id"] not in await _feed(dan)  # at once, by the read-time filter
    await eventually(
        lambda: _feed_item(dan.id, post["id"]),
        lambda i: i is None,
        timeout=SETTLE,
        what="the reposted item deleted from dan's feed",
    )


async def test_an_original_made_private_leaves_its_reposts_and_its_quotes_show_it_unavailable(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, dan = await _people(http, local_host, api, "ann", "ben", "dan")
    await dan.ok("PUT", f"/api/users/{ben.id}/follow")
    post = await ann.ok("POST", "/api/posts", {"content": "public for now"})
    quote = await ben.ok("POST", "/api/posts", {"content": "see this", "quotePostId": post["id"]})
    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")
    await eventually(lambda: _feed(dan), lambda f: post["id"] in f, timeout=SETTLE, what="the repost for dan")
    await dan.ok("PUT", f"/api/posts/{post['id']}/bookmark")
    await ann.ok("PATCH", "/api/users/me", {"visibility": "private"})
    # dan does not follow ann: her post leaves his feed, his bookmarks, and his view of ben's quote.
    assert post["id"] not in await _feed(dan)
    assert (await dan.ok("GET", "/api/bookmarks"))["items"] == []
    assert (await dan.ok("GET", f"/api/posts/{quote['id']}"))["quoted"]["unavailable"] is True
    assert (await ben.call("PUT", f"/api/posts/{post['id']}/repost")).status in (403, 404)


async def test_blocks_decide_who_may_repost_and_who_receives_a_repost(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    ann, ben, dan, eve, kim, fay = await _people(
        http, local_host, api, "ann", "ben", "dan", "eve", "kim", "fay"
    )
    for follower in (dan, eve):
        await follower.ok("PUT", f"/api/users/{ben.id}/follow")
    await fay.ok("PUT", f"/api/users/{ann.id}/follow")
    await dan.ok("PUT", f"/api/users/{ann.id}/block")  # dan blocked the author
    post = await ann.ok("POST", "/api/posts", {"content": "not for dan"})
    await ben.ok("PUT", f"/api/posts/{post['id']}/repost")
    await eventually(lambda: _feed(eve), lambda f: post["id"] in f, timeout=SETTLE, what="the repost for eve")
    await eventually(lambda: _all_relayed(database_url), bool, timeout=SETTLE, what="every event relayed")
    assert await _feed_item(dan.id, post["id"]) is None
    assert post["id"] not in await _feed(dan)

    # The author's block hides the post (404: the privacy rule, services/audience.py); the caller's own
    # block lets them see it but not pass it on (403, as for reactions).
    await ann.ok("PUT", f"/api/users/{kim.id}/block")
    assert (await kim.call("PUT", f"/api/posts/{post['id']}/repost")).status == 404
    assert (await dan.call("PUT", f"/api/posts/{post['id']}/repost")).status == 403
    assert (await kim.call("POST", "/api/posts", {"content": "q", "quotePostId": post["id"]})).status == 422
    assert (await kim.call("PUT", f"/api/posts/{post['id']}/bookmark")).status == 404

    # A private account's posts are not passed on by others.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("UPDATE profiles SET visibility = 'private' WHERE user_id = %s", (ann.id,))
    answer = await fay.call("PUT", f"/api/posts/{post['id']}/repost")  # fay follows ann: sees, cannot pass on
    assert answer.status == 403, answer
    assert (await eve.call("PUT", f"/api/posts/{post['id']}/repost")).status == 404  # eve does not follow
    await ann.ok("PUT", f"/api/posts/{post['id']}/repost")  # the author may
    # A block ends follows: when eve blocks ben, his repost leaves her feed.
    await eve.ok("PUT", f"/api/users/{ben.id}/block")
    await eventually(
        lambda: _feed_item(eve.id, post["id"]), lambda i: i is None, timeout=SETTLE, what="eve's item removed"
    )


async def test_the_repost_count_is_exact_under_concurrent_reposts_and_replayed_events(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    names = [f"r{i}" for i in range(8)]
    author, *reposters = await _people(http, local_host, api, "author", *names)
    post = await author.ok("POST", "/api/posts", {"content": "popular"})
    path = f"/api/posts/{post['id']}/repost"
    # Everyone at once, each twice; then half undo at once while the others repost again.
    answers = await asyncio.gather(*(r.call("PUT", path) for r in reposters for _ in range(2)))
    assert {a.status for a in answers} == {204}, answers
    answers = await asyncio.gather(
        *(r.call("DELETE" if i % 2 else "PUT", path) for i, r in enumerate(reposters))
    )
    assert {a.status for a in answers} == {204}, answers
    expected = len(reposters) - len(reposters) // 2
    assert (await author.ok("GET", f"/api/posts/{post['id']}"))["repostCount"] == expected
    await eventually(
        lambda: _counter(post["id"]),
        lambda doc: bool(doc and doc.get("reposts") == expected),
        timeout=SETTLE,
        what="the counters projection",
    )
    await eventually(lambda: _all_relayed(database_url), bool, timeout=SETTLE, what="every event relayed")

    # The relay delivers at least once: every repost event handled again changes no count.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            """UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), published_at = NULL,
                      projected_at = NULL
               WHERE event_type LIKE 'repost.%%' RETURNING id"""
        )
        replayed = len(await cur.fetchall())
    assert replayed == len(reposters) + len(reposters) // 2  # every repost and every undo
    await eventually(lambda: _all_relayed(database_url), bool, timeout=SETTLE, what="the replay relayed")
    doc = await _counter(post["id"])
    assert doc is not None and doc["reposts"] == expected
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            """SELECT pc.reposts, (SELECT count(*) FROM reposts r WHERE r.post_id = pc.post_id
                                     AND r.deleted_at IS NULL)
               FROM post_counts pc WHERE pc.post_id = %s""",
            (post["id"],),
        )
        assert await cur.fetchone() == (expected, expected)


async def test_a_quote_shows_the_original_until_it_is_deleted(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, dan = await _people(http, local_host, api, "ann", "ben", "dan")
    await dan.ok("PUT", f"/api/users/{ben.id}/follow")
    original = await ann.ok("POST", "/api/posts", {"content": "the original"})
    quote = await ben.ok("POST", "/api/posts", {"content": "look at this", "quotePostId": original["id"]})
    assert quote["quoted"]["postId"] == original["id"]
    assert (quote["quoted"]["unavailable"], quote["quoted"]["content"]) == (False, "the original")
    assert quote["quoted"]["author"]["userId"] == ann.id
    feed = await eventually(
        lambda: _feed(dan), lambda f: quote["id"] in f, timeout=SETTLE, what="quote in feed"
    )
    assert feed[quote["id"]]["quoted"]["content"] == "the original"

    # The original edited: quotes show it as it is now.
    await ann.ok("PATCH", f"/api/posts/{original['id']}", {"content": "the original, edited"})
    seen = await dan.ok("GET", f"/api/posts/{quote['id']}")
    assert seen["quoted"]["content"] == "the original, edited"

    await ann.ok("DELETE", f"/api/posts/{original['id']}")
    gone = {"postId": original["id"], "unavailable": True, "author": None, "content": None, "createdAt": None}
    assert (await dan.ok("GET", f"/api/posts/{quote['id']}"))["quoted"] == gone
    assert (await _feed(dan))[quote["id"]]["quoted"] == gone
    page = await dan.ok("GET", f"/api/users/{ben.id}/posts")
    assert page["items"][0]["quoted"] == gone
    # Nobody quotes what they cannot see.
    answer = await dan.call("POST", "/api/posts", {"content": "x", "quotePostId": original["id"]})
    assert answer.status == 422 and answer.body["field"] == "quotePostId", answer


async def test_bookmarks_page_newest_first_stay_private_and_drop_what_the_caller_may_not_see(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, cat, mod = await _people(http, local_host, api, "ann", "ben", "cat", "mod")
    moderator = ApiUser(http, local_host.base_url, api.token("rp-mod", role="moderator"), mod.id)
    posts = [await ann.ok("POST", "/api/posts", {"content": f"ann {i}"}) for i in range(4)]
    posts.append(await cat.ok("POST", "/api/posts", {"content": "cat's"}))
    for post in posts:
        await ben.ok("PUT", f"/api/posts/{post['id']}/bookmark")
    await ben.ok("PUT", f"/api/posts/{posts[0]['id']}/bookmark")  # again: no change, it stays oldest

    async def all_pages(user: ApiUser) -> list[str]:
        ids: list[str] = []
        cursor = ""
        while True:
            page = await user.ok("GET", f"/api/bookmarks?limit=2{cursor}")
            assert len(page["items"]) <= 2
            ids += [item["postId"] for item in page["items"]]
            assert all(item["post"]["id"] == item["postId"] for item in page["items"])
            if page["nextCursor"] is None:
                return ids
            cursor = f"&cursor={page['nextCursor']}"

    newest_first = [p["id"] for p in reversed(posts)]
    assert await all_pages(ben) == newest_first
    assert await all_pages(cat) == []  # private to whoever saved them
    # Saving again after removing puts it first.
    await ben.ok("DELETE", f"/api/posts/{posts[1]['id']}/bookmark")
    await ben.ok("DELETE", f"/api/posts/{posts[1]['id']}/bookmark")  # again: 204
    await ben.ok("PUT", f"/api/posts/{posts[1]['id']}/bookmark")
    assert (await all_pages(ben))[0] == posts[1]["id"]

    # Deleted, hidden by a moderator, or by an author who blocked the caller: dropped from the list.
    await ann.ok("DELETE", f"/api/posts/{posts[2]['id']}")
    decide = f"/api/moderation/posts/{posts[3]['id']}/decision"
    await moderator.ok("POST", decide, {"action": "hide", "reason": "review"})
    assert await all_pages(ben) == [posts[1]["id"], posts[4]["id"], posts[0]["id"]]
    await cat.ok("PUT", f"/api/users/{ben.id}/block")
    assert await all_pages(ben) == [posts[1]["id"], posts[0]["id"]]
    await cat.ok("DELETE", f"/api/users/{ben.id}/block")
    assert await all_pages(ben) == [posts[1]["id"], posts[4]["id"], posts[0]["id"]]
    # A post that is not there: 404; a cursor of another list: 400.
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await ben.call("PUT", f"/api/posts/{missing}/bookmark")).status == 404
    feed_page = await ben.ok("GET", "/api/feed?limit=1")
    if feed_page["nextCursor"]:
        assert (await ben.call("GET", f"/api/bookmarks?cursor={feed_page['nextCursor']}")).status == 400
