"""The heart of Chorus over real HTTP, with the relay timer and change-feed functions running
in the local host: nobody calls the relay by hand."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.polling import eventually


class Client:
    def __init__(self, http: aiohttp.ClientSession, host: FunctionHost, token: str) -> None:
        self._http, self._host, self._token = http, host, token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self._http.request(
            method, self._host.base_url + path, json=body, headers={"Authorization": f"Bearer {self._token}"}
        ) as response:
            text = await response.text()
            import json

            return response.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = await self.call(method, path, body)
        assert status in (200, 201, 204), (method, path, status, payload)
        return payload

    async def feed_post_ids(self) -> list[str]:
        return [item["postId"] for item in (await self.ok("GET", "/api/feed"))["items"]]


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> Any:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("ann", "ben", "cat"):
            client = Client(http, local_host, api.token(f"pipe-{name}"))
            me = await client.ok(
                "POST", "/api/users", {"username": f"pipe_{name}", "displayName": name.title()}
            )
            client.id = me["id"]  # type: ignore[attr-defined]
            clients[name] = client
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
    status, _ = await ann.call("PUT", f"/api/users/{ben.id}/follow")
    assert status == 403
