"""Direct messages over real HTTP through the local host: 1:1 conversations are one per pair, a
stranger's message is a request, blocks forbid, non-members get 404 on every route, group roles,
edits and deletes, `since` sync, exact unread counts under concurrent sends and read receipts, and
message text never reaches Event Hubs or the moderators' mirror."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
SETTLE = 90.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _people(
    http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, prefix: str, *names: str
) -> list[ApiUser]:
    users = []
    for name in names:
        user = ApiUser(http, host.base_url, api.token(f"{prefix}-{name}"))
        users.append(await onboard_user(user, f"{prefix}_{name}", name.title()))
    return users


async def _inbox(user: ApiUser, requests: bool = False) -> dict[str, dict[str, Any]]:
    page = await user.ok("GET", f"/api/conversations?limit=100&requests={'true' if requests else 'false'}")
    return {item["conversationId"]: item for item in page["items"]}


async def test_one_conversation_per_pair_requests_blocks_and_members_only(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, cat, dan = await _people(http, local_host, api, "dm1", "ann", "ben", "cat", "dan")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")

    first = await ann.call("POST", "/api/conversations", {"memberIds": [ben.id]})
    assert first.status == 201, first
    again = await ann.call("POST", "/api/conversations", {"memberIds": [ben.id]})
    from_ben = await ben.call("POST", "/api/conversations", {"memberIds": [ann.id]})
    assert (again.status, from_ben.status) == (200, 200)
    conversation = first.body["id"]
    assert again.body["id"] == from_ben.body["id"] == conversation
    assert {m["userId"]: m["state"] for m in first.body["members"]} == {ann.id: "active", ben.id: "active"}

    sent = await ann.ok("POST", f"/api/conversations/{conversation}/messages", {"text": "hi ben"})
    assert (sent["text"], sent["senderId"], sent["deleted"]) == ("hi ben", ann.id, False)
    entry = (await _inbox(ben))[conversation]
    assert (entry["unreadCount"], entry["lastMessage"]["text"]) == (1, "hi ben")

    # cat does not follow ann: a request, outside cat's inbox until accepted.
    request = await ann.ok("POST", "/api/conversations", {"memberIds": [cat.id]})
    await ann.ok("POST", f"/api/conversations/{request['id']}/messages", {"text": "hello stranger"})
    assert request["id"] not in await _inbox(cat)
    waiting = (await _inbox(cat, requests=True))[request["id"]]
    assert (waiting["state"], waiting["unreadCount"]) == ("requested", 1)
    await cat.ok("POST", f"/api/conversations/{request['id']}/accept")
    assert (await _inbox(cat))[request["id"]]["state"] == "active"
    assert request["id"] not in await _inbox(cat, requests=True)

    # A request declined goes away for its recipient: 404 from then on.
    declined = await dan.ok("POST", "/api/conversations", {"memberIds": [cat.id]})
    await cat.ok("POST", f"/api/conversations/{declined['id']}/decline")
    assert (await cat.call("GET", f"/api/conversations/{declined['id']}")).status == 404

    # Blocks forbid, both ways, and an existing 1:1 can no longer be written to.
    await dan.ok("PUT", f"/api/users/{ann.id}/block")
    assert (await ann.call("POST", "/api/conversations", {"memberIds": [dan.id]})).status == 403
    assert (await dan.call("POST", "/api/conversations", {"memberIds": [ann.id]})).status == 403
    await ben.ok("PUT", f"/api/users/{ann.id}/block")
    blocked = await ben.call("POST", f"/api/conversations/{conversation}/messages", {"text": "x"})
    assert blocked.status == 403, blocked

    # dan is not in ann and ben's conversation: 404 on every route, as if it did not exist.
    message = sent["id"]
    for method, path, body in (
        ("GET", f"/api/conversations/{conversation}", None),
        ("GET", f"/api/conversations/{conversation}/messages", None),
        ("GET", f"/api/conversations/{conversation}/messages?since=2020-01-01T00:00:00Z", None),
        ("POST", f"/api/conversations/{conversation}/messages", {"text": "let me in"}),
        ("PUT", f"/api/conversations/{conversation}/read", {"messageId": message}),
        ("POST", f"/api/conversations/{conversation}/accept", None),
        ("POST", f"/api/conversations/{conversation}/decline", None),
        ("POST", f"/api/conversations/{conversation}/members", {"memberIds": [dan.id]}),
        ("DELETE", f"/api/conversations/{conversation}/members/{ben.id}", None),
        ("PUT", f"/api/conversations/{conversation}/members/{ben.id}/role", {"role": "admin"}),
        ("POST", f"/api/conversations/{conversation}/leave", None),
        ("PATCH", f"/api/messages/{message}", {"text": "changed"}),
        ("DELETE", f"/api/messages/{message}", None),
    ):
        answer = await dan.call(method, path, body)
        assert answer.status == 404, (method, path, answer)
    assert conversation not in await _inbox(dan)


async def test_groups_roles_edits_deletes_and_sync(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    owner, adam, mia, tom, zoe = await _people(
        http, local_host, api, "dm2", "owner", "adam", "mia", "tom", "zoe"
    )
    for member in (adam, mia, tom, zoe):
        await member.ok("PUT", f"/api/users/{owner.id}/follow")
    group = await owner.ok("POST", "/api/conversations", {"memberIds": [adam.id, mia.id], "title": "Plans"})
    gid = group["id"]
    assert (group["kind"], group["title"]) == ("group", "Plans")
    roles = {m["userId"]: m["role"] for m in group["members"]}
    assert roles == {owner.id: "owner", adam.id: "member", mia.id: "member"}

    # Members do not add or promote; the owner does.
    assert (
        await adam.call("POST", f"/api/conversations/{gid}/members", {"memberIds": [tom.id]})
    ).status == 403
    await owner.ok("PUT", f"/api/conversations/{gid}/members/{adam.id}/role", {"role": "admin"})
    old = await owner.ok("POST", f"/api/conversations/{gid}/messages", {"text": "before tom"})
    await adam.ok("POST", f"/api/conversations/{gid}/members", {"memberIds": [tom.id]})
    # A new member sees what is sent from their joining on.
    tom_view = await tom.ok("GET", f"/api/conversations/{gid}/messages")
    assert tom_view["items"] == []
    assert (await tom.call("PUT", f"/api/conversations/{gid}/read", {"messageId": old["id"]})).status == 422
    # An admin removes members, not the owner.
    assert (await adam.call("DELETE", f"/api/conversations/{gid}/members/{owner.id}")).status == 403
    await adam.ok("DELETE", f"/api/conversations/{gid}/members/{mia.id}")
    assert (await mia.call("GET", f"/api/conversations/{gid}/messages")).status == 404

    # Edit within the window, by the sender only; delete for everyone; reply-to.
    note = await tom.ok("POST", f"/api/conversations/{gid}/messages", {"text": "draft", "replyToId": None})
    assert (await owner.call("PATCH", f"/api/messages/{note['id']}", {"text": "mine now"})).status == 403
    edited = await tom.ok("PATCH", f"/api/messages/{note['id']}", {"text": "final"})
    assert (edited["text"], edited["editedAt"] is not None) == ("final", True)
    reply = await adam.ok(
        "POST", f"/api/conversations/{gid}/messages", {"text": "ok", "replyToId": note["id"]}
    )
    assert reply["replyToId"] == note["id"]
    before_delete = datetime.now(UTC) - timedelta(seconds=1)
    await tom.ok("DELETE", f"/api/messages/{note['id']}")
    listed = await owner.ok("GET", f"/api/conversations/{gid}/messages?limit=1")
    assert [m["text"] for m in listed["items"]] == ["ok"]
    older = await owner.ok("GET", f"/api/conversations/{gid}/messages?limit=1&cursor={listed['nextCursor']}")
    assert [m["text"] for m in older["items"]] == ["before tom"]  # the deleted one is gone
    since = before_delete.isoformat().replace("+00:00", "Z")
    synced = await owner.ok("GET", f"/api/conversations/{gid}/messages?since={since}")
    tombstone = next(m for m in synced["items"] if m["id"] == note["id"])
    assert (tombstone["deleted"], tombstone["text"]) == (True, None)
    assert (await owner.call("GET", f"/api/conversations/{gid}/messages?since=yesterday")).status == 422

    # The owner leaves: the admin becomes owner.
    await owner.ok("POST", f"/api/conversations/{gid}/leave")
    now = await adam.ok("GET", f"/api/conversations/{gid}")
    assert {m["userId"]: m["role"] for m in now["members"]}[adam.id] == "owner"
    assert (await owner.call("GET", f"/api/conversations/{gid}")).status == 404


async def test_unread_counts_are_exact_under_concurrent_sends_and_receipts(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    ann, ben, cat = await _people(http, local_host, api, "dm3", "ann", "ben", "cat")
    for member in (ben, cat):
        await member.ok("PUT", f"/api/users/{ann.id}/follow")
    group = await ann.ok("POST", "/api/conversations", {"memberIds": [ben.id, cat.id], "title": "Busy"})
    gid = group["id"]
    sends = 20

    async def send(sender: ApiUser, n: int) -> dict[str, Any]:
        body: dict[str, Any] = await sender.ok(
            "POST", f"/api/conversations/{gid}/messages", {"text": f"{sender.username} {n}"}
        )
        return body

    sent = await asyncio.gather(*(send(ann if n % 2 else cat, n) for n in range(sends)))
    # ben marks each message read at once, in no particular order: the newest wins.
    receipts = await asyncio.gather(
        *(ben.ok("PUT", f"/api/conversations/{gid}/read", {"messageId": m["id"]}) for m in sent)
    )
    newest = (await ben.ok("GET", f"/api/conversations/{gid}/messages?limit=1"))["items"][0]
    assert all(r["unreadCount"] >= 0 for r in receipts)
    assert (await _inbox(ben))[gid]["unreadCount"] == 0
    assert any(r["lastReadMessageId"] == newest["id"] for r in receipts)

    # More from others while ben reads up to one of them: exactly those after it stay unread.
    more = await asyncio.gather(*(send(ann, 100 + n) for n in range(6)))
    ordered = (await ben.ok("GET", f"/api/conversations/{gid}/messages?limit=6"))["items"]
    assert {m["id"] for m in ordered} == {m["id"] for m in more}
    middle = ordered[3]  # newest first: three newer than it
    state = await ben.ok("PUT", f"/api/conversations/{gid}/read", {"messageId": middle["id"]})
    assert state["unreadCount"] == 3
    assert (await _inbox(ben))[gid]["unreadCount"] == 3
    # Reading an older one again does not go back.
    assert (await ben.ok("PUT", f"/api/conversations/{gid}/read", {"messageId": sent[0]["id"]}))[
        "unreadCount"
    ] == 3
    # Sending reads what came before; ann's own messages are never unread to her; cat's after it are.
    await send(ann, 200)
    await asyncio.gather(*(send(cat, 300 + n) for n in range(4)))
    assert (await _inbox(ann))[gid]["unreadCount"] == 4


async def test_message_text_reaches_neither_event_hubs_nor_the_moderators_mirror(
    local_host: FunctionHost,
    api: ApiClient,
    http: aiohttp.ClientSession,
    eventhubs_standin: Any,
    database_url: str,
) -> None:
    ann, ben = await _people(http, local_host, api, "dm4", "ann", "ben")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    conversation = await ann.ok("POST", "/api/conversations", {"memberIds": [ben.id], "title": None})
    secret = "the-secret-plan-7c1f"
    message = await ann.ok("POST", f"/api/conversations/{conversation['id']}/messages", {"text": secret})
    await ann.ok("PATCH", f"/api/messages/{message['id']}", {"text": secret + "-edited"})

    def published() -> list[dict[str, Any]]:
        bodies = [json.loads(e["body"]) for e in eventhubs_standin.received(eventhubs_standin.hub_name)]
        return [b for b in bodies if b.get("payload", {}).get("messageId") == message["id"]]

    async def both() -> list[dict[str, Any]]:
        return published()

    # The send is enough to wait for (a loaded stand-in can pause delivery for a while); whatever of the
    # two has arrived is checked, and the edit's redaction is also a unit test (tests/unit/test_projections.py).
    events = await eventually(
        both,
        lambda es: "message.sent" in {e["type"] for e in es},
        timeout=SETTLE,
        what="message.sent published",
    )
    assert {e["type"] for e in events} <= {"message.sent", "message.edited"}
    for event in events:
        assert secret not in json.dumps(event), event
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM posts_admin_mirror WHERE content LIKE %s", (f"%{secret}%",)
        )
        row = await cur.fetchone()
        assert row is not None and row[0] == 0


async def test_messages_are_read_from_their_conversations_partition_and_from_postgres_while_it_lags(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    from shared_code.bootstrap import get_app_context

    ann, ben = await _people(http, local_host, api, "dm5", "ann", "ben")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    conversation = (await ann.ok("POST", "/api/conversations", {"memberIds": [ben.id]}))["id"]
    sent = [
        await ann.ok("POST", f"/api/conversations/{conversation}/messages", {"text": f"m{n}"})
        for n in range(5)
    ]
    await ann.ok("DELETE", f"/api/messages/{sent[1]['id']}")
    container = (await get_app_context()).cosmos_db.get_container_client("messages")

    async def projected() -> list[dict[str, Any]]:
        return [
            doc
            async for doc in container.query_items(
                "SELECT * FROM c WHERE c.conversationId = @c",
                parameters=[{"name": "@c", "value": conversation}],
                partition_key=conversation,
            )
        ]

    await eventually(
        projected,
        lambda docs: len(docs) == 5 and any(d["deleted"] for d in docs),
        timeout=SETTLE,
        what="the messages and the tombstone projected",
    )
    # Served from the partition: a document changed behind the app's back shows (only a test does that).
    doc = await container.read_item(sent[4]["id"], partition_key=conversation)
    await container.upsert_item({**doc, "text": "from cosmos"})
    first = await ben.ok("GET", f"/api/conversations/{conversation}/messages?limit=2")
    assert [m["text"] for m in first["items"]] == ["from cosmos", "m3"]
    rest = await ben.ok(
        "GET", f"/api/conversations/{conversation}/messages?limit=2&cursor={first['nextCursor']}"
    )
    assert [m["text"] for m in rest["items"]] == ["m2", "m0"]  # the deleted m1 skipped
    assert rest["nextCursor"] is None
    # A hole (a message not projected yet): the page comes from PostgreSQL, whole.
    await container.delete_item(sent[3]["id"], partition_key=conversation)
    again = await ben.ok("GET", f"/api/conversations/{conversation}/messages?limit=10")
    assert [m["text"] for m in again["items"]] == ["m4", "m3", "m2", "m0"]


async def test_a_message_carries_media_from_the_upload_flow_to_its_members_only(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    from tests.security.test_media import PNG, fetch, ready_media

    ann, ben, eve = await _people(http, local_host, api, "dm6", "ann", "ben", "eve")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    conversation = (await ann.ok("POST", "/api/conversations", {"memberIds": [ben.id]}))["id"]
    media_id, _, _ = await ready_media(http, ann)
    sent = await ann.ok(
        "POST", f"/api/conversations/{conversation}/messages", {"text": "look", "mediaIds": [media_id]}
    )
    assert [m["mediaId"] for m in sent["media"]] == [media_id]
    # The same media cannot go to a second message, nor to a post.
    again = await ann.call("POST", f"/api/conversations/{conversation}/messages", {"mediaIds": [media_id]})
    assert again.status == 422, again
    assert (await ann.call("POST", "/api/posts", {"content": "x", "mediaIds": [media_id]})).status == 422
    # ben reads it with the message (from either store), the bytes through the signed URL; eve gets 404.
    page = await eventually(
        lambda: ben.ok("GET", f"/api/conversations/{conversation}/messages"),
        lambda p: bool(p["items"] and p["items"][0]["media"]),
        timeout=SETTLE,
        what="the message with its media",
    )
    status, body, _ = await fetch(http, page["items"][0]["media"][0]["url"])
    assert (status, body) == (200, PNG)
    assert (await _inbox(ben))[conversation]["lastMessage"]["media"][0]["mediaId"] == media_id
    assert (await eve.call("GET", f"/api/conversations/{conversation}/messages")).status == 404
    # A media-only message is a message; an edit keeps its media.
    edited = await ann.ok("PATCH", f"/api/messages/{sent['id']}", {"text": "look again"})
    assert [m["mediaId"] for m in edited["media"]] == [media_id]
