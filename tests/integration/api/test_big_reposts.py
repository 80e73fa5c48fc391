"""Reposts by accounts too big to fan out, reposts in the PostgreSQL continuation of the home feed, and
the undo-repost race, over the API with the relay run by hand (tests/support/flows.drain) so each
step is decided before the next (docs/architecture.md "Reposts by big accounts")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared_code.app_context import AppContext
from shared_code.bootstrap import feed_service
from shared_code.projections.writes import AUTHOR_POSTS, FEED
from shared_code.services.feeds import FeedService
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.flows import drain
from tests.support.outbox import OwnerDb

# Above one follower an account is big: its posts and reposts are pulled, not fanned out.
SETTINGS = {"FANOUT_MAX_FOLLOWERS": "1"}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


async def _feed(api: ApiClient, subject: str, limit: int = 50) -> list[dict[str, Any]]:
    """The whole feed, page by page: each item as (postId, repostedBy)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await api.call(
            "GET", f"/api/feed?limit={limit}" + (f"&cursor={cursor}" if cursor else ""), subject=subject
        )
        assert r.status == 200, r
        items += r.json["items"]
        cursor = r.json["nextCursor"]
        if not cursor:
            return items


def _shown(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(item["postId"], item.get("repostedBy")) for item in items]


async def _in_feed(app_context: AppContext, recipient: str, post_id: str) -> bool:
    container = app_context.cosmos_db.get_container_client(FEED)
    found = [
        i
        async for i in container.query_items(
            "SELECT c.id FROM c WHERE c.recipientId = @r AND c.postId = @p",
            parameters=[{"name": "@r", "value": recipient}, {"name": "@p", "value": post_id}],
            partition_key=recipient,
        )
    ]
    return bool(found)


async def test_a_big_accounts_repost_reaches_its_followers_pulled_once_per_feed_and_undo_takes_it_out(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    star, fan, other, author = await chorus.users("star", "fan", "other", "author")
    for follower in ("fan", "other"):
        await chorus.do("PUT", f"/api/users/{star['id']}/follow", follower)
    await drain(app_context)
    post = await chorus.post("author", "worth passing on")

    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "star")
    await drain(app_context)
    # Pulled from star's authorPosts partition: no item was written to the followers' feeds.
    pulled = await app_context.cosmos_db.get_container_client(AUTHOR_POSTS).read_item(
        f"{post['id']}:repost", partition_key=star["id"]
    )
    assert (pulled["repostedBy"], pulled["deleted"]) == (star["id"], False)
    assert not await _in_feed(app_context, fan["id"], post["id"])
    for reader in ("fan", "other", "star"):
        assert _shown(await _feed(api, reader, limit=1)) == [(post["id"], star["id"])], reader

    # Undone: gone from the followers' feeds at once (PostgreSQL says so before the tombstone lands).
    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "star")
    assert await _feed(api, "fan") == []
    await drain(app_context)
    assert await _feed(api, "fan") == []

    # Reposted again, and the fan follows the author too: the post is in fan's own feed (back-filled
    # at its own time) and pulled as star's repost: it shows once, as reposted by star.
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "star")
    await chorus.do("PUT", f"/api/users/{author['id']}/follow", "fan")
    await drain(app_context)
    assert await _in_feed(app_context, fan["id"], post["id"])
    for limit in (1, 2, 50):
        assert _shown(await _feed(api, "fan", limit)) == [(post["id"], star["id"])], limit
    # A newer repost by someone fan follows that is fanned out shows as the newest reposter.
    await chorus.do("PUT", f"/api/users/{other['id']}/follow", "fan")
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "other")
    await drain(app_context)
    assert _shown(await _feed(api, "fan", 1)) == [(post["id"], other["id"])]
    # Undoing star's repost leaves other's; undoing other's too leaves the post (fan follows author).
    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "star")
    await drain(app_context)
    assert _shown(await _feed(api, "fan", 1)) == [(post["id"], other["id"])]
    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "other")
    await drain(app_context)
    assert _shown(await _feed(api, "fan", 1)) == [(post["id"], None)]


async def test_two_big_reposters_of_one_post_show_it_once_with_the_newest(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    star, nova, _, _, _ = await chorus.users("star", "nova", "fan", "xavier", "yann")
    await chorus.user("author")
    for big, followers in ((star, ("fan", "xavier")), (nova, ("fan", "yann"))):
        for follower in followers:
            await chorus.do("PUT", f"/api/users/{big['id']}/follow", follower)
    await drain(app_context)
    post = await chorus.post("author", "twice passed on")
    own = await chorus.post("star", "star's own")
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "star")
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "nova")
    await drain(app_context)
    for limit in (1, 2, 50):
        assert _shown(await _feed(api, "fan", limit)) == [(post["id"], nova["id"]), (own["id"], None)]
    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "nova")
    for limit in (1, 50):
        assert _shown(await _feed(api, "fan", limit)) == [(post["id"], star["id"]), (own["id"], None)]


async def test_the_postgresql_continuation_shows_reposts_once_at_their_newest_position(
    api: ApiClient, chorus: Chorus, app_context: AppContext, db: OwnerDb
) -> None:
    """Past what Cosmos DB keeps the feed comes from PostgreSQL: reposts too, a post once, at the newest
    repost of it by someone followed (or at its own time), with the same cursor."""
    small, author, _, _ = await chorus.users("small", "author", "reader", "nobody")
    for followee in (small, author):
        await chorus.do("PUT", f"/api/users/{followee['id']}/follow", "reader")
    post = await chorus.post("author", "old news")
    own = await chorus.post("small", "small's own")
    unfollowed = await chorus.post("nobody", "reposted from someone reader does not follow")
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "small")
    await chorus.do("PUT", f"/api/posts/{unfollowed['id']}/repost", "small")
    # All of it older than the feeds keep (30 days): only PostgreSQL has it.
    old = datetime.now(UTC) - timedelta(days=45)
    for table, key, value, at in (
        ("posts", "id", post["id"], old),
        ("posts", "id", unfollowed["id"], old + timedelta(hours=1)),
        ("posts", "id", own["id"], old + timedelta(hours=3)),
        ("reposts", "post_id", post["id"], old + timedelta(hours=4)),
        ("reposts", "post_id", unfollowed["id"], old + timedelta(hours=2)),
    ):
        await db.conn.execute(f"UPDATE {table} SET created_at = %s WHERE {key} = %s", (at, value))
    expected = [(post["id"], small["id"]), (own["id"], None), (unfollowed["id"], small["id"])]
    for limit in (1, 2, 50):
        items = await _feed(api, "reader", limit)
        assert _shown(items) == expected, limit
    by_id = {item["postId"]: item for item in items}
    assert datetime.fromisoformat(by_id[post["id"]]["repostedAt"]) == old + timedelta(hours=4)
    assert by_id[post["id"]]["repostCount"] == 1
    # Undone: the post is back at its own time (reader follows its author); the other one is gone.
    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "small")
    await chorus.do("DELETE", f"/api/posts/{unfollowed['id']}/repost", "small")
    assert _shown(await _feed(api, "reader", 1)) == [(own["id"], None), (post["id"], None)]
    # A muted author's post reposted by a followee does not show; a private one to a non-follower neither.
    await chorus.do("PUT", f"/api/posts/{unfollowed['id']}/repost", "small")
    await db.conn.execute(
        "UPDATE reposts SET created_at = %s WHERE post_id = %s", (old + timedelta(hours=5), unfollowed["id"])
    )
    assert _shown(await _feed(api, "reader", 1))[0] == (unfollowed["id"], small["id"])
    await chorus.do("PATCH", "/api/users/me", "nobody", json_body={"visibility": "private"}, status=200)
    assert unfollowed["id"] not in [i["postId"] for i in await _feed(api, "reader")]


class _PausedFeed:
    """A userFeed container whose first item write waits until the test lets it go: the fan-out of a
    repost is held between deciding to write and writing, the window where an undo can overtake it."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def create_item(self, *args: Any, **kwargs: Any) -> Any:
        if not self.reached.is_set():
            self.reached.set()
            await self.release.wait()
        return await self._container.create_item(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)


@pytest.mark.timeout(120)
async def test_a_fan_out_overtaken_by_the_undo_of_its_repost_leaves_nothing(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    """The fan-out reads the repost as live, then waits before its first write; meanwhile the repost is
    undone and the undo's retraction runs to the end (nothing to remove yet). When the fan-out goes
    on, its writes land after the retraction: it must notice and take them out again."""
    reposter, fan, author = await chorus.users("reposter", "fan", "author")
    await chorus.do("PUT", f"/api/users/{reposter['id']}/follow", "fan")
    post = await chorus.post("author", "contested")
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "reposter")

    real = feed_service(app_context)
    paused = _PausedFeed(app_context.cosmos_db.get_container_client(FEED))
    late = FeedService(app_context.system_pool, paused, max_followers=1)  # type: ignore[arg-type]
    fan_out = asyncio.create_task(late.fan_out_repost(post["id"], reposter["id"]))
    await asyncio.wait_for(paused.reached.wait(), timeout=60)

    await chorus.do("DELETE", f"/api/posts/{post['id']}/repost", "reposter")
    await real.retract_repost(post["id"], reposter["id"])
    paused.release.set()
    await asyncio.wait_for(fan_out, timeout=60)

    for recipient in (reposter, fan):
        assert not await _in_feed(app_context, recipient["id"], post["id"]), recipient
    assert await _feed(api, "fan") == []
    # A repost made again meanwhile is not undone by the late fan-out's clean-up.
    await chorus.do("PUT", f"/api/posts/{post['id']}/repost", "reposter")
    await real.fan_out_repost(post["id"], reposter["id"])
    assert await _in_feed(app_context, fan["id"], post["id"])
    assert _shown(await _feed(api, "fan")) == [(post["id"], reposter["id"])]
    assert author["id"] != fan["id"]
