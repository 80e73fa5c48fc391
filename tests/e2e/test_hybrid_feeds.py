"""Hybrid fan-out and bounded feeds over real HTTP, with the relay and change-feed functions running
in the local host (docs/architecture.md "Home feeds at any audience size"): a big author's posts reach
followers by being pulled, a threshold crossing either way changes nothing a follower sees, and a
reader paging past what Cosmos DB keeps goes on from PostgreSQL with the same cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from azure.cosmos import exceptions

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from shared_code.db.unit_of_work import system_connection
from shared_code.ops.reconcile import reconcile
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

# A follower count above 1 makes an author big here; a feed keeps 3 items.
SETTINGS = {"FANOUT_MAX_FOLLOWERS": "1", "FEED_MAX_ITEMS": "3"}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    """The session's settings with this module's thresholds: the app context and the host use them."""
    return {**app_settings_values, **SETTINGS}


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> AsyncIterator[dict[str, ApiUser]]:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("star", "fan", "other", "reader", "small"):
            user = ApiUser(http, local_host.base_url, api.token(f"hybrid-{name}"))
            clients[name] = await onboard_user(user, f"hybrid_{name}", name.title())
        yield clients


async def all_pages(user: ApiUser, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await user.ok("GET", f"/api/feed?limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        ids += [item["postId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            return ids


async def in_cosmos(app_context: AppContext, container: str, item_id: str, partition: str) -> bool:
    client = app_context.cosmos_db.get_container_client(container)
    try:
        await client.read_item(item_id, partition_key=partition)
    except exceptions.CosmosResourceNotFoundError:
        return False
    return True


async def relayed(app_context: AppContext) -> None:
    """Wait until the relay has handled every event so far."""

    async def pending() -> int:
        async with system_connection(app_context.system_pool) as conn:
            cur = await conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    await eventually(pending, lambda n: n == 0, timeout=30, what="the relay idle")


async def post(user: ApiUser, content: str) -> str:
    return str((await user.ok("POST", "/api/posts", {"content": content}))["id"])


@pytest.mark.timeout(180)
async def test_a_big_authors_post_reaches_followers_pulled_and_crossing_the_threshold_changes_nothing(
    people: dict[str, ApiUser], app_context: AppContext
) -> None:
    star, fan, other = people["star"], people["fan"], people["other"]
    await fan.ok("PUT", f"/api/users/{star.id}/follow")
    await other.ok("PUT", f"/api/users/{star.id}/follow")  # 2 followers: above the threshold
    await relayed(app_context)  # the follows' back-fills are done before the post

    pulled = await post(star, "to the many")
    await eventually(
        fan.feed_post_ids, lambda ids: pulled in ids, timeout=30, what="pulled post in fan's feed"
    )
    await eventually(other.feed_post_ids, lambda ids: pulled in ids, timeout=30, what="pulled post for other")
    # Not fanned out: only the author's own feed item and the author's partition of authorPosts.
    await eventually(
        lambda: in_cosmos(app_context, "userFeed", f"{star.id}:{pulled}", star.id),
        bool,
        timeout=30,
        what="the author's own feed item",
    )
    assert not await in_cosmos(app_context, "userFeed", f"{fan.id}:{pulled}", fan.id)
    assert await in_cosmos(app_context, "authorPosts", pulled, star.id)

    # Below the threshold again: the next post is fanned out; the pulled one still shows.
    await other.ok("DELETE", f"/api/users/{star.id}/follow")
    pushed = await post(star, "to the few")
    await eventually(
        lambda: in_cosmos(app_context, "userFeed", f"{fan.id}:{pushed}", fan.id),
        bool,
        timeout=30,
        what="the post fanned out to the fan's feed",
    )
    # And above once more.
    await other.ok("PUT", f"/api/users/{star.id}/follow")
    again = await post(star, "to the many again")
    # (a page served from PostgreSQL while Cosmos DB is slow may show it before its fan-out has run)
    expected = [again, pushed, pulled]
    await eventually(fan.feed_post_ids, lambda ids: ids == expected, timeout=30, what="pulled again")
    await eventually(
        lambda: in_cosmos(app_context, "userFeed", f"{star.id}:{again}", star.id),
        bool,
        timeout=30,
        what="the pulled post's fan-out done",
    )
    assert not await in_cosmos(app_context, "userFeed", f"{fan.id}:{again}", fan.id)
    for limit in (1, 2):  # no duplicates, no gaps, whichever source a page ends in
        assert await all_pages(fan, limit) == expected

    # Reconcile does not expect pulled posts in the fan's feed.
    report = await reconcile(app_context.system_pool, app_context.cosmos_db, False, feed_user=UUID(fan.id))
    assert [d for d in report.differences if d["container"] == "userFeed"] == []

    # Deleting a pulled post takes it out of followers' feeds.
    await star.ok("DELETE", f"/api/posts/{again}")
    assert await fan.feed_post_ids() == [pushed, pulled]


@pytest.mark.timeout(180)
async def test_paging_past_a_trimmed_feed_goes_on_from_postgresql_with_the_same_cursor(
    people: dict[str, ApiUser], app_context: AppContext
) -> None:
    small, reader = people["small"], people["reader"]
    await reader.ok("PUT", f"/api/users/{small.id}/follow")
    posts = [await post(small, f"post {i}") for i in range(6)]
    newest_first = posts[::-1]
    feed = app_context.cosmos_db.get_container_client("userFeed")

    async def held() -> list[str]:
        query = "SELECT VALUE c.postId FROM c WHERE c.recipientId = @r AND IS_DEFINED(c.postId)"
        parameters: list[dict[str, Any]] = [{"name": "@r", "value": reader.id}]
        return [str(p) async for p in feed.query_items(query, parameters=parameters, partition_key=reader.id)]

    # The feed is trimmed to about FEED_MAX_ITEMS (3), keeping the newest; the floor says where.
    await eventually(
        held,
        lambda ids: set(newest_first[:3]) <= set(ids) and len(ids) < len(posts),
        timeout=30,
        what="a trimmed feed holding the newest posts",
    )
    await eventually(
        lambda: in_cosmos(app_context, "userFeed", f"{reader.id}:floor", reader.id),
        bool,
        timeout=30,
        what="the feed's floor",
    )
    item = await feed.read_item(f"{reader.id}:{posts[-1]}", partition_key=reader.id)
    assert 0 < item["ttl"] <= 30 * 86400  # and every item expires with its post's age

    # The operators' reconcile expects in the feed only what it keeps (newer than the floor).
    report = await reconcile(app_context.system_pool, app_context.cosmos_db, False, feed_user=UUID(reader.id))
    assert [d for d in report.differences if d["container"] == "userFeed"] == []

    first = await reader.ok("GET", "/api/feed?limit=2")
    assert [i["postId"] for i in first["items"]] == newest_first[:2]
    assert await all_pages(reader, 2) == newest_first
    assert await all_pages(reader, 4) == newest_first
