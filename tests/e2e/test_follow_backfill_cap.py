"""A follow back-fills at most FEED_BACKFILL_POSTS of the followee's posts into the follower's feed
(a follow costs a bounded number of writes); when the followee has more, the feed's floor goes up to
the oldest one copied, so paging goes on from PostgreSQL and the feed misses none of their posts. Over
real HTTP, with the relay and change-feed functions running in the local host."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from tests.e2e.test_hybrid_feeds import all_pages, in_cosmos, post, relayed
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

SETTINGS = {"FEED_BACKFILL_POSTS": "2"}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> AsyncIterator[dict[str, ApiUser]]:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("writer", "reader"):
            user = ApiUser(http, local_host.base_url, api.token(f"backfill-{name}"))
            clients[name] = await onboard_user(user, f"backfill_{name}", name.title())
        yield clients


@pytest.mark.timeout(180)
async def test_a_follow_back_fills_a_capped_few_and_the_rest_comes_from_postgresql(
    people: dict[str, ApiUser], app_context: AppContext
) -> None:
    writer, reader = people["writer"], people["reader"]
    newest_first = [await post(writer, f"before the follow {i}") for i in range(4)][::-1]
    await relayed(app_context)

    await reader.ok("PUT", f"/api/users/{writer.id}/follow")

    async def copied() -> list[bool]:
        return [
            await in_cosmos(app_context, "userFeed", f"{reader.id}:{post_id}", reader.id)
            for post_id in newest_first
        ]

    # the back-fill copies the newest two...
    await eventually(copied, lambda held: held[:2] == [True, True], timeout=30, what="the back-fill")
    # ...and says that older ones are to be read from PostgreSQL
    await eventually(
        lambda: in_cosmos(app_context, "userFeed", f"{reader.id}:floor", reader.id),
        bool,
        timeout=30,
        what="the feed's floor",
    )
    assert await copied() == [True, True, False, False]
    for limit in (1, 3, 10):
        assert await all_pages(reader, limit) == newest_first
