"""Reposts by accounts too big to fan out, over real HTTP with the relay and change-feed functions
running in the local host (docs/architecture.md "Reposts by big accounts"): the repost reaches the
reposter's followers pulled, once per feed even where the post is also fanned out, shows the newest
reposter, and goes when undone; a feed trimmed below it goes on from PostgreSQL with reposts too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from azure.cosmos import exceptions

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

# Above one follower an account is big; a feed keeps 3 items.
SETTINGS = {"FANOUT_MAX_FOLLOWERS": "1", "FEED_MAX_ITEMS": "3"}
SETTLE = 60


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> AsyncIterator[dict[str, ApiUser]]:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("star", "fan", "other", "author", "small"):
            user = ApiUser(http, local_host.base_url, api.token(f"bigrepost-{name}"))
            clients[name] = await onboard_user(user, f"bigrepost_{name}", name.title())
        yield clients


async def shown(user: ApiUser, limit: int = 50) -> list[tuple[str, str | None]]:
    """Every page of the user's feed: (postId, repostedBy) of each item."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await user.ok("GET", f"/api/feed?limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        items += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return [(i["postId"], i.get("repostedBy")) for i in items]


@pytest.mark.timeout(300)
async def test_a_big_accounts_repost_reaches_its_followers_once_with_the_newest_reposter(
    people: dict[str, ApiUser],
) -> None:
    star, fan, other, author, small = (people[n] for n in ("star", "fan", "other", "author", "small"))
    for follower in (fan, other):
        await follower.ok("PUT", f"/api/users/{star.id}/follow")  # 2 followers: star is big
    await fan.ok("PUT", f"/api/users/{author.id}/follow")  # the post is fanned out to fan too
    await fan.ok("PUT", f"/api/users/{small.id}/follow")
    post = (await author.ok("POST", "/api/posts", {"content": "worth passing on"}))["id"]
    await eventually(lambda: shown(fan), lambda s: s == [(post, None)], timeout=SETTLE, what="fanned out")

    await star.ok("PUT", f"/api/posts/{post}/repost")
    await eventually(
        lambda: shown(other), lambda s: s == [(post, star.id)], timeout=SETTLE, what="pulled for other"
    )
    await eventually(
        lambda: shown(fan), lambda s: s == [(post, star.id)], timeout=SETTLE, what="once for fan, by star"
    )
    for limit in (1, 2):
        assert await shown(fan, limit) == [(post, star.id)]

    # A newer repost by a small account fan follows (fanned out) is now the newest reposter.
    await small.ok("PUT", f"/api/posts/{post}/repost")
    await eventually(
        lambda: shown(fan), lambda s: s == [(post, small.id)], timeout=SETTLE, what="small, the newest"
    )
    await small.ok("DELETE", f"/api/posts/{post}/repost")
    await eventually(lambda: shown(fan), lambda s: s == [(post, star.id)], timeout=SETTLE, what="star again")

    # Undone: gone for other at once; fan, who follows the author, keeps the post.
    await star.ok("DELETE", f"/api/posts/{post}/repost")
    assert await shown(other) == []
    assert await shown(fan) == [(post, None)]


@pytest.mark.timeout(300)
async def test_a_trimmed_feed_goes_on_from_postgresql_with_its_reposts(
    people: dict[str, ApiUser], app_context: AppContext
) -> None:
    small, fan, author = people["small"], people["fan"], people["author"]
    await fan.ok("PUT", f"/api/users/{small.id}/follow")
    reposted = (await author.ok("POST", "/api/posts", {"content": "from someone fan does not follow"}))["id"]
    await small.ok("PUT", f"/api/posts/{reposted}/repost")
    await eventually(
        lambda: shown(fan),
        lambda s: s == [(reposted, small.id)],
        timeout=SETTLE,
        what="the repost in fan's feed",
    )
    newer = [(await small.ok("POST", "/api/posts", {"content": f"post {i}"}))["id"] for i in range(5)]
    expected = [(p, None) for p in reversed(newer)] + [(reposted, small.id)]
    # The feed keeps about 3 items: the repost's item is trimmed and PostgreSQL shows it past the floor.
    feed = app_context.cosmos_db.get_container_client("userFeed")

    async def trimmed() -> bool:
        try:
            await feed.read_item(f"{fan.id}:{reposted}", partition_key=fan.id)
        except exceptions.CosmosResourceNotFoundError:
            return True
        return False

    await eventually(trimmed, bool, timeout=SETTLE, what="the repost's item trimmed")
    # Once the whole feed reads as expected, every page size reads the same.
    await eventually(lambda: shown(fan), lambda s: s == expected, timeout=SETTLE, what="the feed settled")
    for limit in (1, 2, 3):
        assert await shown(fan, limit) == expected, limit
