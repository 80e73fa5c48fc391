"""Feed items expire (a Cosmos ttl from their post's createdAt) and a reader paging past them goes on
from PostgreSQL with the same cursor, over real HTTP with the relay and change feed in the local host.
The retention is shortened to about 50 s so that expiry happens within the test."""

from __future__ import annotations

import aiohttp
import pytest
from azure.cosmos import exceptions

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

RETENTION_SECONDS = 50
SETTINGS = {"FEED_ITEM_TTL_DAYS": str(RETENTION_SECONDS / 86400)}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


@pytest.mark.timeout(240)
async def test_a_reader_paging_past_expired_items_goes_on_from_postgresql_with_the_same_cursor(
    local_host: FunctionHost, api: ApiClient, app_context: AppContext
) -> None:
    async with aiohttp.ClientSession() as http:
        author = await onboard_user(
            ApiUser(http, local_host.base_url, api.token("expiry-author")), "expiry_author"
        )
        reader = await onboard_user(
            ApiUser(http, local_host.base_url, api.token("expiry-reader")), "expiry_reader"
        )
        await reader.ok("PUT", f"/api/users/{author.id}/follow")
        posts = [
            str((await author.ok("POST", "/api/posts", {"content": f"post {i}"}))["id"]) for i in range(4)
        ]
        newest_first = posts[::-1]
        feed = app_context.cosmos_db.get_container_client("userFeed")

        await eventually(
            reader.feed_post_ids, lambda ids: ids == newest_first, timeout=30, what="all in the feed"
        )
        first = await reader.call("GET", "/api/feed?limit=2")
        assert first.status == 200 and "chorus-degraded" not in first.headers
        assert [i["postId"] for i in first.body["items"]] == newest_first[:2]
        item = await feed.read_item(f"{reader.id}:{posts[0]}", partition_key=reader.id)
        assert 0 < item["ttl"] <= RETENTION_SECONDS

        async def expired() -> bool:
            try:
                await feed.read_item(f"{reader.id}:{posts[0]}", partition_key=reader.id)
            except exceptions.CosmosResourceNotFoundError:
                return True
            return False

        await eventually(expired, bool, timeout=RETENTION_SECONDS + 60, interval=0.5, what="the item expired")
        second = await reader.call("GET", f"/api/feed?limit=2&cursor={first.body['nextCursor']}")
        assert second.status == 200 and "chorus-degraded" not in second.headers  # not an outage
        assert [i["postId"] for i in second.body["items"]] == newest_first[2:]
        # and a fresh pagination gives the whole feed, now from PostgreSQL
        assert await reader.feed_post_ids() == newest_first
