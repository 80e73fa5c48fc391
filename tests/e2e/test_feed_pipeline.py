"""The heart of Chorus over real HTTP, with the relay timer and change-feed functions running
in the local host: nobody calls the relay by hand."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> Any:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("ann", "ben", "cat"):
            user = ApiUser(http, local_host.base_url, api.token(f"pipe-{name}"))
            clients[name] = await onboard_user(user, f"pipe_{name}", name.title())
        yield clients


@pytest.mark.timeout(120)
async def test_post_reaches_follower_feed_counters_and_notifications(people: Any) -> None:
    ann, ben = people["ann"], people["ben"]
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    post = await ann.ok("POST", "/api/posts", {"content": "hello followers"})
    await eventually(ben.feed_post_ids, lambda ids: post["id"] in ids, what="post in follower's feed")
    # Authors see their own posts.
    await eventually(ann.feed_post_ids, lambda ids: post["id"] in ids, what="post in the author's feed")

    await ben.ok("PUT", f"/api/posts/{post['id']}/reactions", {"type": "like"})
    feed = await eventually(
        lambda: ben.ok("GET", "/api/feed"),
        lambda page: page["items"] and page["items"][0]["counts"]["like"] == 1,
        what="like counted in the feed",
    )
    assert feed["items"][0]["postId"] == post["id"]
    notes = await eventually(
        lambda: ann.ok("GET", "/api/notifications?unread=true"),
        lambda page: any(n["type"] == "reaction" for n in page["items"]),
        what="reaction notification",
    )
    assert {n["type"] for n in notes["items"]} == {"follow", "reaction"}

    await ann.ok("DELETE", f"/api/posts/{post['id']}")
    await eventually(ben.feed_post_ids, lambda ids: post["id"] not in ids, what="deleted post gone")


@pytest.mark.timeout(120)
async def test_block_removes_and_follow_backfills(people: Any) -> None:
    ann, ben, cat = people["ann"], people["ben"], people["cat"]
    first = await ann.ok("POST", "/api/posts", {"content": "before anyone followed"})
    await cat.ok("PUT", f"/api/users/{ann.id}/follow")
    await eventually(cat.feed_post_ids, lambda ids: first["id"] in ids, what="back-fill after follow")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    await eventually(ben.feed_post_ids, lambda ids: first["id"] in ids, what="back-fill for ben")
    await ben.ok("PUT", f"/api/users/{ann.id}/block")
    assert first["id"] not in await ben.feed_post_ids()  # hidden at once, by the read-time filter
    status = (await ann.call("PUT", f"/api/users/{ben.id}/follow")).status
    assert status == 403


@pytest.mark.timeout(120)
async def test_moderation_takes_a_post_out_of_feeds_and_restore_puts_it_back(
    people: Any, local_host: FunctionHost, api: ApiClient
) -> None:
    ann, ben = people["ann"], people["ben"]
    async with aiohttp.ClientSession() as http:
        moderator = ApiUser(http, local_host.base_url, api.token("pipe-mod", role="moderator"))
        await onboard_user(moderator, "pipe_mod", "Mod")
        await ben.ok("PUT", f"/api/users/{ann.id}/follow")
        post = await ann.ok("POST", "/api/posts", {"content": "borderline"})
        await eventually(ben.feed_post_ids, lambda ids: post["id"] in ids, what="post in feed")

        decide = f"/api/moderation/posts/{post['id']}/decision"
        await moderator.ok("POST", decide, {"action": "hide", "reason": "under review"})
        await eventually(ben.feed_post_ids, lambda ids: post["id"] not in ids, what="hidden post gone")
        # Gone from the projection too, not only filtered at read time.
        await eventually(
            lambda: _feed_item_exists(api, ben.id, post["id"]),
            lambda found: not found,
            what="feed item deleted by the change feed",
        )
        assert (await ben.call("GET", f"/api/posts/{post['id']}")).status == 404

        await moderator.ok("POST", decide, {"action": "restore", "reason": "fine after all"})
        await eventually(ben.feed_post_ids, lambda ids: post["id"] in ids, what="restored post back")


async def _feed_item_exists(api: ApiClient, recipient: str, post_id: str) -> bool:
    from azure.cosmos import exceptions

    from shared_code.bootstrap import get_app_context

    feed = (await get_app_context()).cosmos_db.get_container_client("userFeed")
    try:
        await feed.read_item(f"{recipient}:{post_id}", partition_key=recipient)
    except exceptions.CosmosResourceNotFoundError:
        return False
    return True
