"""Private accounts and notification settings over real HTTP, with the relay timer and the
change-feed functions running in the local host: follow requests notify, an approval back-fills the
follower's feed, and a notification type turned off is never written."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg
import pytest

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def people(local_host: FunctionHost, api: ApiClient) -> Any:
    async with aiohttp.ClientSession() as http:
        clients = {}
        for name in ("ann", "ben", "cat"):
            user = ApiUser(http, local_host.base_url, api.token(f"priv-{name}"))
            clients[name] = await onboard_user(user, f"priv_{name}", name.title())
        yield clients


async def _types(user: ApiUser) -> list[tuple[str, str]]:
    page = await user.ok("GET", "/api/notifications?limit=100")
    return sorted((n["type"], n["actorId"]) for n in page["items"])


async def _projected(database_url: str, event_type: str, aggregate_id: str | None = None) -> bool:
    """Whether every such event has been through the projections (the relay's first stage)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            """SELECT count(*) FILTER (WHERE projected_at IS NULL AND status <> 'published'), count(*)
               FROM outbox WHERE event_type = %s AND (%s::uuid IS NULL OR aggregate_id = %s::uuid)""",
            (event_type, aggregate_id, aggregate_id),
        )
        waiting, total = await cur.fetchone()  # type: ignore[misc]
        return bool(total) and waiting == 0


async def test_a_request_notifies_and_its_approval_back_fills_the_feed(people: Any) -> None:
    ann, ben, cat = people["ann"], people["ben"], people["cat"]
    post = await ann.ok("POST", "/api/posts", {"content": "for my followers"})
    await ann.ok("PATCH", "/api/users/me", {"visibility": "private"})

    asked = await ben.call("PUT", f"/api/users/{ann.id}/follow")
    assert (asked.status, asked.body) == (202, {"status": "requested"})
    await eventually(
        lambda: _types(ann), lambda t: ("follow_request", ben.id) in t, timeout=60, what="request notified"
    )
    # Pending: nothing of ann's reaches ben.
    assert (await ben.call("GET", f"/api/posts/{post['id']}")).status == 404
    assert post["id"] not in await ben.feed_post_ids()

    await ann.ok("POST", f"/api/users/me/follow-requests/{ben.id}/approve")
    await eventually(
        ben.feed_post_ids, lambda ids: post["id"] in ids, timeout=60, what="approval back-filled ben's feed"
    )
    await eventually(
        lambda: _types(ben), lambda t: ("follow_approved", ann.id) in t, timeout=60, what="approval notified"
    )
    await eventually(
        lambda: _types(ann), lambda t: ("follow", ben.id) in t, timeout=60, what="the follow notified"
    )
    assert (await ben.call("GET", f"/api/posts/{post['id']}")).status == 200
    # A non-follower still sees nothing of it, in the feed or by id.
    assert (await cat.call("GET", f"/api/posts/{post['id']}")).status == 404
    assert post["id"] not in await cat.feed_post_ids()


async def test_a_notification_type_turned_off_is_not_written(people: Any, database_url: str) -> None:
    ann, ben = people["ann"], people["ben"]
    settings = await ann.ok("GET", "/api/users/me/notification-settings")
    # Every type is on until turned off (other features add types of their own).
    assert set(settings) >= {"follow", "follow_request", "follow_approved", "comment", "reaction"}
    assert all(settings.values())
    changed = await ann.ok(
        "PATCH", "/api/users/me/notification-settings", {"reaction": False, "follow": False}
    )
    assert changed == {**settings, "reaction": False, "follow": False}
    bad = await ann.call("PATCH", "/api/users/me/notification-settings", {"reaction": "no"})
    assert bad.status == 422
    assert await ann.ok("GET", "/api/users/me/notification-settings") == changed

    post = await ann.ok("POST", "/api/posts", {"content": "quiet please"})
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    await ben.ok("PUT", f"/api/posts/{post['id']}/reactions", {"type": "like"})
    await ben.ok("POST", f"/api/posts/{post['id']}/comments", {"content": "still on"})

    # The comment (still on) arrives; the follow's event has been projected and the reaction counted
    # (the change feed writes the counter and the notification in one batch), yet neither notified.
    await eventually(
        lambda: _types(ann), lambda t: ("comment", ben.id) in t, timeout=60, what="the comment notified"
    )
    await eventually(
        lambda: _projected(database_url, "follow.created"), bool, timeout=60, what="follow.created projected"
    )
    await eventually(
        lambda: ben.ok("GET", "/api/feed"),
        lambda page: any(i["postId"] == post["id"] and i["counts"]["like"] == 1 for i in page["items"]),
        timeout=60,
        what="the like counted by the change feed",
    )
    assert await _types(ann) == [("comment", ben.id)]

    # Turned on again, the next one is written.
    await ann.ok("PATCH", "/api/users/me/notification-settings", {"reaction": True})
    await ben.ok("PUT", f"/api/posts/{post['id']}/reactions", {"type": "love"})
    await ben.ok("DELETE", f"/api/posts/{post['id']}/reactions")
    cat = people["cat"]
    await cat.ok("PUT", f"/api/posts/{post['id']}/reactions", {"type": "wow"})
    await eventually(
        lambda: _types(ann), lambda t: ("reaction", cat.id) in t, timeout=60, what="reactions on again"
    )
