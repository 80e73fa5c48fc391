"""One full path over real HTTP through the local host: onboard, follow, post, react,
comment, delete; and the outbox rows each step leaves."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient


async def _call(
    session: aiohttp.ClientSession, host: FunctionHost, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(
        method, host.base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        payload = await response.json(content_type=None) if response.content_length != 0 else None
        return response.status, payload


async def test_onboard_follow_post_react_comment_delete(
    local_host: FunctionHost, api: ApiClient, database_url: str
) -> None:
    alice, bob = api.token("e2e-alice"), api.token("e2e-bob")
    async with aiohttp.ClientSession() as http:
        status, a = await _call(
            http, local_host, "POST", "/api/users", alice, {"username": "e2e_alice", "displayName": "Alice"}
        )
        assert status == 201, a
        status, b = await _call(
            http, local_host, "POST", "/api/users", bob, {"username": "e2e_bob", "displayName": "Bob"}
        )
        assert status == 201, b
        assert (await _call(http, local_host, "PUT", f"/api/users/{a['id']}/follow", bob))[0] == 204
        status, post = await _call(
            http, local_host, "POST", "/api/posts", alice, {"content": "over the wire"}
        )
        assert status == 201, post
        assert (
            await _call(http, local_host, "PUT", f"/api/posts/{post['id']}/reactions", bob, {"type": "like"})
        )[0] == 204
        status, comment = await _call(
            http, local_host, "POST", f"/api/posts/{post['id']}/comments", bob, {"content": "nice"}
        )
        assert status == 201, comment
        status, seen = await _call(http, local_host, "GET", f"/api/posts/{post['id']}", bob)
        assert (status, seen["counts"]["like"], seen["commentCount"]) == (200, 1, 1)
        assert (await _call(http, local_host, "DELETE", f"/api/posts/{post['id']}", bob))[0] == 403
        assert (await _call(http, local_host, "DELETE", f"/api/posts/{post['id']}", alice))[0] == 204
        assert (await _call(http, local_host, "GET", f"/api/posts/{post['id']}", bob))[0] == 404

    with psycopg.connect(database_url) as conn:
        events = [row[0] for row in conn.execute("SELECT event_type FROM outbox ORDER BY id")]
    assert events == [
        "user.created",
        "user.created",
        "follow.created",
        "post.created",
        "reaction.set",
        "comment.created",
        "post.deleted",
    ]
