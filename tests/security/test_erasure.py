"""Erasure and export, tried over HTTP against the local host (relay timer and change feeds running) as
an account holder and as an attacker would: after a deletion completes nothing personal is left in
PostgreSQL or Cosmos DB, counters are exact, a write racing the deletion does not survive it, the
username is held back, and reserved usernames cannot be claimed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from azure.cosmos import CosmosClient

from devhost.host.server import FunctionHost
from devhost.services.cosmos import CosmosEmulator
from shared_code.projections.writes import PARTITION_KEYS
from tests.e2e.conftest import local_host  # noqa: F401  (the fixture, for this module)
from tests.support.api import ApiClient
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(180)

# Exports of more items than this are written by a background job (the production default is 1000:
# small here, so a test can make an export that large quickly).
INLINE_EXPORT_ITEMS = 12


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, "EXPORT_INLINE_MAX_ITEMS": str(INLINE_EXPORT_ITEMS)}


@dataclass
class Person:
    http: aiohttp.ClientSession
    host: FunctionHost
    token: str
    id: str = ""

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.http.request(
            method,
            self.host.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, dict(response.headers)

    async def ok(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        status, payload, _ = await self.call(method, path, body, headers)
        assert status in (200, 201, 202, 204), (method, path, status, payload)
        return payload


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _join(
    http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, name: str, **fields: Any
) -> Person:
    person = Person(http, host, api.token(f"sec-{name}"))
    me = await person.ok("POST", "/api/users", {"username": name, "displayName": name.title(), **fields})
    person.id = me["id"]
    return person


async def _erasure_done(database_url: str, user_id: str, timeout: float = 90.0) -> None:
    async def completed() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT completed_at IS NOT NULL FROM account_erasures WHERE user_id = %s", (user_id,)
            )
            row = await cur.fetchone()
            return bool(row and row[0])

    await eventually(completed, bool, timeout=timeout, interval=0.2, what="the erasure completed")


async def _tables_with_user_columns(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str]]:
    """(table, column) for every column that refers to an account: foreign keys to users, and the
    moderators' mirror's author (a copy, without a key)."""
    cur = await conn.execute(
        """SELECT c.conrelid::regclass::text, a.attname
           FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
           WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass"""
    )
    return [
        *(tuple(row) for row in await cur.fetchall()),
        ("posts_admin_mirror", "author_id"),
        ("users", "id"),
    ]


async def _everything_in_postgres(conn: psycopg.AsyncConnection[Any]) -> dict[str, list[str]]:
    """Every row of every table in the app's schema, as text."""
    cur = await conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
    )
    tables = [row[0] for row in await cur.fetchall()]
    everything = {}
    for table in tables:
        cur = await conn.execute(f"SELECT t::text FROM {table} t")
        everything[table] = [row[0] for row in await cur.fetchall()]
    return everything


def _cosmos_documents(emulator: CosmosEmulator, database: str) -> dict[str, list[dict[str, Any]]]:
    with CosmosClient(emulator.endpoint, credential=emulator.key) as client:
        db = client.get_database_client(database)
        return {name: list(db.get_container_client(name).read_all_items()) for name in PARTITION_KEYS}


async def test_after_deletion_nothing_personal_remains_and_counters_are_exact(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    database_url: str,
    cosmos_emulator: CosmosEmulator,
    cosmos_database_name: str,
) -> None:
    marker = uuid.uuid4().hex[:10]
    secrets = {
        "username": f"gone_{marker}",
        "display name": f"Gone {marker}",
        "bio": f"bio-{marker}",
        "post": f"post-{marker}",
        "comment": f"comment-{marker}",
        "flag": f"flag-{marker}",
        "subject": f"sec-gone_{marker}",
        "hashtag": f"tag{marker}",
        "message": f"message-{marker}",
        "event": f"event-{marker}",
    }
    gone = await _join(http, local_host, api, f"gone_{marker}", bio=secrets["bio"])
    await gone.ok("PATCH", "/api/users/me", {"displayName": secrets["display name"]})
    bob = await _join(http, local_host, api, f"bob_{marker}")
    cat = await _join(http, local_host, api, f"cat_{marker}")

    # Everything a person leaves behind: posts, comments, reactions both ways, follows both ways,
    # a block, a mute, a flag, a stored Idempotency-Key response, notifications both ways.
    own_post = await gone.ok("POST", "/api/posts", {"content": secrets["post"]}, {"Idempotency-Key": marker})
    # A hashtag (its trending count names it) and a mention of bob (a row naming both accounts).
    await gone.ok(
        "POST", "/api/posts", {"content": secrets["post"] + f" again #{secrets['hashtag']} @bob_{marker}"}
    )
    bobs_post = await bob.ok("POST", "/api/posts", {"content": "bob's"})
    await gone.ok("POST", f"/api/posts/{bobs_post['id']}/comments", {"content": secrets["comment"]})
    await cat.ok("POST", f"/api/posts/{bobs_post['id']}/comments", {"content": "cat's comment"})
    await gone.ok("PUT", f"/api/posts/{bobs_post['id']}/reactions", {"type": "like"})
    await cat.ok("PUT", f"/api/posts/{bobs_post['id']}/reactions", {"type": "love"})
    await bob.ok("PUT", f"/api/posts/{own_post['id']}/reactions", {"type": "wow"})
    await bob.ok("POST", f"/api/posts/{own_post['id']}/comments", {"content": "bob on gone's post"})
    await gone.ok("PUT", f"/api/users/{bob.id}/follow")
    await bob.ok("PUT", f"/api/users/{gone.id}/follow")
    await cat.ok("PUT", f"/api/users/{bob.id}/follow")
    await gone.ok("PUT", f"/api/users/{cat.id}/mute")
    await gone.ok("POST", f"/api/posts/{bobs_post['id']}/flags", {"reason": secrets["flag"]})
    # Before cat's block: a block hides each one's posts from the other (the privacy rule).
    await cat.ok("POST", f"/api/posts/{own_post['id']}/flags", {"reason": "cat's flag of gone's post"})
    await cat.ok("PUT", f"/api/users/{gone.id}/block")
    # A repost (into bob's feed, as gone's) and bookmarks both ways.
    await gone.ok("PUT", f"/api/posts/{bobs_post['id']}/repost")
    await gone.ok("PUT", f"/api/posts/{bobs_post['id']}/bookmark")
    await bob.ok("PUT", f"/api/posts/{own_post['id']}/bookmark")
    # A follow request each way (to a private dan, from him once gone is private), and settings.
    dan = await _join(http, local_host, api, f"dan_{marker}")
    await dan.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert (await gone.call("PUT", f"/api/users/{dan.id}/follow"))[0] == 202
    await gone.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert (await dan.call("PUT", f"/api/users/{gone.id}/follow"))[0] == 202
    await gone.ok("PATCH", "/api/users/me/notification-settings", {"follow": False})
    # Events both ways: gone hosts one that bob answers; gone holds the one seat of bob's, cat waits.
    start = datetime.now(UTC) + timedelta(days=3)
    when = {"startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=2)).isoformat()}
    gones_event = await gone.ok(
        "POST", "/api/events", {"title": secrets["event"], "place": secrets["event"], **when}
    )
    await bob.ok("PUT", f"/api/events/{gones_event['id']}/rsvp", {"status": "going"})
    bobs_event = await bob.ok("POST", "/api/events", {"title": "bob's", "capacity": 1, **when})
    await gone.ok("PUT", f"/api/events/{bobs_event['id']}/rsvp", {"status": "going"})
    await cat.ok("PUT", f"/api/events/{bobs_event['id']}/rsvp", {"status": "going"})
    # A conversation with bob (who follows gone), a message in it, and a device's keys.
    talk = await gone.ok("POST", "/api/conversations", {"memberIds": [bob.id]})
    await gone.ok("POST", f"/api/conversations/{talk['id']}/messages", {"text": secrets["message"]})
    await gone.ok(
        "PUT",
        "/api/users/me/devices/phone/keys",
        {"identityKey": "ik", "signedPrekeyId": 1, "signedPrekey": "spk", "signedPrekeySignature": "sig"},
    )
    # Wait until the projections hold it all (the notification gone caused is the last to arrive).
    # (A loaded Cosmos emulator may answer 503 for a while: the poll asks again.)
    await eventually(
        lambda: bob.call("GET", "/api/notifications"),
        lambda answer: (
            answer[0] == 200
            and {(n["type"], n["actorId"]) for n in answer[1]["items"]}
            >= {("reaction", gone.id), ("comment", gone.id), ("event_rsvp", gone.id)}
        ),
        timeout=90,
        what="gone's notifications to bob",
    )

    # The scan below can see each of them: before the deletion, each is somewhere.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        everything = await _everything_in_postgres(conn)
    for what, secret in secrets.items():
        assert any(secret in row for rows in everything.values() for row in rows), what

    status, accepted, _ = await gone.call("DELETE", "/api/users/me")
    assert status == 202, accepted
    assert (accepted["userId"], accepted["status"]) == (gone.id, "accepted")
    # Locked at once: nothing by or to the account commits any more.
    assert (await bob.call("PUT", f"/api/users/{gone.id}/follow"))[0] == 404
    assert (await gone.call("POST", "/api/posts", {"content": "after"}))[0] == 403

    await _erasure_done(database_url, gone.id)
    assert (await bob.call("GET", f"/api/profiles/{gone.id}"))[0] == 404

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        # No live row refers to the account any more.
        for table, column in await _tables_with_user_columns(conn):
            cur = await conn.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = %s AND column_name = 'deleted_at'",
                (table,),
            )
            soft_deleted = (await cur.fetchone())[0] == 1  # type: ignore[index]
            if soft_deleted:
                cur = await conn.execute(
                    f"SELECT count(*) FROM {table} WHERE {column} = %s AND deleted_at IS NULL",
                    (gone.id,),
                )
                assert (await cur.fetchone())[0] == 0, f"{table}.{column} has live rows of the erased account"  # type: ignore[index]
        # And no table holds anything the person wrote or was called, anywhere (the outbox included).
        everything = await _everything_in_postgres(conn)
        for what, secret in secrets.items():
            found = {table for table, rows in everything.items() if any(secret in row for row in rows)}
            assert not found, f"the erased account's {what} is still in {sorted(found)}"
        cur = await conn.execute(
            "SELECT count(*) FROM mentions WHERE author_id = %(u)s OR mentioned_user_id = %(u)s",
            {"u": gone.id},
        )
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        cur = await conn.execute("SELECT count(*) FROM hashtag_uses WHERE author_id = %s", (gone.id,))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        cur = await conn.execute("SELECT count(*) FROM idempotency_keys WHERE user_id = %s", (gone.id,))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        for table, where in (
            ("follow_requests", "requester_id = %(u)s OR target_id = %(u)s"),
            ("notification_settings", "user_id = %(u)s"),
            ("device_keys", "user_id = %(u)s"),
            ("conversation_members", "user_id = %(u)s AND state IN ('active', 'requested')"),
        ):
            cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", {"u": gone.id})
            assert (await cur.fetchone())[0] == 0, f"{table} keeps rows of the erased account"  # type: ignore[index]
        cur = await conn.execute(
            "SELECT count(*) FROM media_assets WHERE owner_id = %s AND deleted_at IS NULL", (gone.id,)
        )
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]

        # Counters are exact: what is left is what the live rows say.
        cur = await conn.execute(
            "SELECT reactions, comments FROM post_counts WHERE post_id = %s", (bobs_post["id"],)
        )
        reactions, comments = await cur.fetchone()  # type: ignore[misc]
        assert {k: v for k, v in reactions.items() if v} == {"love": 1}
        assert comments == 1
        cur = await conn.execute("SELECT reposts FROM post_counts WHERE post_id = %s", (bobs_post["id"],))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        cur = await conn.execute("SELECT count(*) FROM bookmarks WHERE user_id = %s", (gone.id,))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        # gone's answers went and freed the seat, which went to cat, who waited; gone's event is cancelled.
        cur = await conn.execute("SELECT count(*) FROM event_rsvps WHERE user_id = %s", (gone.id,))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        cur = await conn.execute(
            """SELECT e.going, e.waitlisted, r.user_id::text, r.status FROM events e
               JOIN event_rsvps r ON r.event_id = e.id WHERE e.id = %s""",
            (bobs_event["id"],),
        )
        assert await cur.fetchall() == [(1, 0, cat.id, "going")]
        cur = await conn.execute(
            "SELECT cancelled_at IS NOT NULL FROM events WHERE id = %s", (gones_event["id"],)
        )
        assert (await cur.fetchone())[0] is True  # type: ignore[index]
        cur = await conn.execute(
            """SELECT c.user_id, c.followers, c.following,
                      (SELECT count(*) FROM follows f WHERE f.followee_id = c.user_id AND f.deleted_at IS NULL),
                      (SELECT count(*) FROM follows f WHERE f.follower_id = c.user_id AND f.deleted_at IS NULL)
               FROM user_counts c WHERE c.user_id = ANY(%s)""",
            ([bob.id, cat.id],),
        )
        for user_id, followers, following, live_followers, live_following in await cur.fetchall():
            assert (followers, following) == (live_followers, live_following), user_id

    # The projections agree with PostgreSQL, and Cosmos DB holds nothing personal of the account.
    seen = await eventually(
        lambda: bob.ok("GET", f"/api/posts/{bobs_post['id']}"),
        lambda post: post["counts"]["like"] == 0 and post["commentCount"] == 1,
        what="bob's post counts without gone's like and comment",
    )
    assert seen["counts"]["love"] == 1
    await eventually(
        lambda: bob.ok("GET", f"/api/profiles/{bob.id}"),
        lambda p: (p["followers"], p["following"]) == (1, 0),
        what="bob's counts without gone's follow both ways",
    )

    async def cosmos_leftovers() -> list[str]:
        documents = await asyncio.to_thread(_cosmos_documents, cosmos_emulator, cosmos_database_name)
        leftovers = []
        for container, docs in documents.items():
            for doc in docs:
                text = json.dumps(doc)
                if any(secret in text for secret in secrets.values()):
                    leftovers.append(f"{container}: {text}")
                elif gone.id in text and not doc.get("deleted"):
                    leftovers.append(f"{container} (not a tombstone): {text}")
        return leftovers

    await eventually(
        cosmos_leftovers, lambda left: not left, timeout=30, interval=0.5, what="Cosmos DB erased"
    )
    notes = await bob.ok("GET", "/api/notifications")
    assert all(n["actorId"] != gone.id for n in notes["items"])


async def test_the_username_is_held_back_and_the_subject_starts_afresh(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    database_url: str,
) -> None:
    name = f"held_{uuid.uuid4().hex[:8]}"
    first = await _join(http, local_host, api, name)
    key = {"Idempotency-Key": "same-key"}
    post = await first.ok("POST", "/api/posts", {"content": "x"}, key)
    assert (await first.call("DELETE", "/api/users/me"))[0] == 202

    # Nobody may claim the name meanwhile, in any case.
    other = Person(http, local_host, api.token(f"sec-other-{name}"))
    for attempt in (name, name.upper()):
        status, problem, _ = await other.call("POST", "/api/users", {"username": attempt, "displayName": "X"})
        assert status == 409, problem
        assert problem["type"].endswith("conflict")
    # The same person may come back under another name: a new account, whose keys are its own.
    again = await first.ok("POST", "/api/users", {"username": name + "_2", "displayName": "Again"})
    assert again["id"] != first.id
    status, replay, headers = await first.call("POST", "/api/posts", {"content": "x"}, key)
    assert status == 201 and replay["id"] != post["id"]
    assert "Idempotent-Replayed" not in headers
    await _erasure_done(database_url, first.id)
    status, _, _ = await other.call("POST", "/api/users", {"username": name, "displayName": "X"})
    assert status == 409


@pytest.mark.parametrize("username", ["admin", "Support", "API", "moderator"])
async def test_reserved_usernames_cannot_be_claimed(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    username: str,
) -> None:
    person = Person(http, local_host, api.token(f"sec-reserved-{username}"))
    status, problem, _ = await person.call("POST", "/api/users", {"username": username, "displayName": "X"})
    assert status == 422, problem
    assert problem["errors"][0]["field"] == "username"
    assert (await person.call("GET", "/api/users/me"))[0] == 403


async def test_a_follow_waiting_on_the_deletion_does_not_survive_it(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    database_url: str,
) -> None:
    """The deletion holds the account's row (FOR UPDATE) until it commits; a follow in flight waits on
    it (FOR KEY SHARE) and then finds the account gone. Here the test holds the row as the deletion
    would, starts the follow, marks the account deleted and commits: the follow must answer 404 and
    leave nothing behind."""
    marker = uuid.uuid4().hex[:8]
    target = await _join(http, local_host, api, f"target_{marker}")
    fan = await _join(http, local_host, api, f"fan_{marker}")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (target.id,))
            follow = asyncio.create_task(fan.call("PUT", f"/api/users/{target.id}/follow"))

            # The follow is waiting for the row lock (not done), as pg_locks shows.
            async def waiting() -> int:
                async with await psycopg.AsyncConnection.connect(database_url) as probe:
                    cur = await probe.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    return int((await cur.fetchone())[0])  # type: ignore[index]

            await eventually(waiting, lambda n: n > 0, what="the follow waiting on the account's row")
            assert not follow.done()
            await conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (target.id,))
        status, problem, _ = await follow
    assert status == 404, problem
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM follows WHERE followee_id = %s", (target.id,))
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]


async def test_follows_racing_a_deletion_over_http_leave_none_behind(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    database_url: str,
) -> None:
    marker = uuid.uuid4().hex[:8]
    target = await _join(http, local_host, api, f"racer_{marker}")
    fans = [await _join(http, local_host, api, f"fan{n}_{marker}") for n in range(6)]
    results = await asyncio.gather(
        *(fan.call("PUT", f"/api/users/{target.id}/follow") for fan in fans[:3]),
        target.call("DELETE", "/api/users/me"),
        *(fan.call("PUT", f"/api/users/{target.id}/follow") for fan in fans[3:]),
    )
    assert results[3][0] == 202
    assert {r[0] for i, r in enumerate(results) if i != 3} <= {204, 404}
    await _erasure_done(database_url, target.id)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM follows WHERE followee_id = %s AND deleted_at IS NULL", (target.id,)
        )
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
        cur = await conn.execute(
            """SELECT count(*) FROM user_counts c WHERE c.user_id = ANY(%s) AND c.following <>
                   (SELECT count(*) FROM follows f WHERE f.follower_id = c.user_id AND f.deleted_at IS NULL)""",
            ([fan.id for fan in fans],),
        )
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]


async def test_the_export_holds_the_callers_data_and_nothing_of_anyone_else(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
) -> None:
    marker = uuid.uuid4().hex[:8]
    ann = await _join(http, local_host, api, f"ann_{marker}", bio=f"ann-bio-{marker}")
    ben = await _join(http, local_host, api, f"ben_{marker}", bio=f"ben-bio-{marker}")
    cal = await _join(http, local_host, api, f"cal_{marker}")
    anns_post = await ann.ok("POST", "/api/posts", {"content": f"ann-post-{marker}"})
    bens_post = await ben.ok("POST", "/api/posts", {"content": f"ben-post-{marker}"})
    await ann.ok("POST", f"/api/posts/{bens_post['id']}/comments", {"content": f"ann-comment-{marker}"})
    await ben.ok("POST", f"/api/posts/{anns_post['id']}/comments", {"content": f"ben-comment-{marker}"})
    await ann.ok("PUT", f"/api/posts/{bens_post['id']}/reactions", {"type": "love"})
    await ann.ok("PUT", f"/api/users/{ben.id}/follow")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    await ann.ok("PUT", f"/api/users/{cal.id}/mute")
    await cal.ok("PUT", f"/api/users/{ben.id}/block")
    await ann.ok("POST", f"/api/posts/{bens_post['id']}/flags", {"reason": f"ann-flag-{marker}"})
    await ann.ok("PATCH", "/api/users/me/notification-settings", {"reaction": False})
    await cal.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert (await ann.call("PUT", f"/api/users/{cal.id}/follow"))[0] == 202
    await eventually(
        lambda: ann.ok("GET", "/api/notifications"),
        lambda page: any(n["type"] == "follow" for n in page["items"]),
        what="ben's follow notified to ann",
    )

    status, document, headers = await ann.call("GET", "/api/users/me/export")
    assert status == 200, document
    assert headers.get("Cache-Control") == "no-store"
    assert document["account"]["id"] == ann.id and document["account"]["username"] == f"ann_{marker}"
    assert document["profile"]["bio"] == f"ann-bio-{marker}"
    assert [p["content"] for p in document["posts"]] == [f"ann-post-{marker}"]
    assert document["reposts"] == [] and document["bookmarks"] == []
    assert [c["content"] for c in document["comments"]] == [f"ann-comment-{marker}"]
    assert [(r["postId"], r["type"]) for r in document["reactions"]] == [(bens_post["id"], "love")]
    assert [f["userId"] for f in document["following"]] == [ben.id]
    assert [f["userId"] for f in document["followers"]] == [ben.id]
    assert [m["userId"] for m in document["mutes"]] == [cal.id]
    assert document["blocks"] == []  # cal's block of ben is cal's
    assert [f["reason"] for f in document["flags"]] == [f"ann-flag-{marker}"]
    assert document["profile"]["visibility"] == "public"
    assert document["notificationTypesTurnedOff"] == ["reaction"]
    assert [r["userId"] for r in document["followRequestsMade"]] == [cal.id]
    assert document["followRequestsReceived"] == []
    assert {(n["type"], n["actorId"]) for n in document["notifications"]} >= {("follow", ben.id)}
    text = json.dumps(document)
    for others in (f"ben-bio-{marker}", f"ben-post-{marker}", f"ben-comment-{marker}"):
        assert others not in text


async def test_a_large_export_is_a_job_with_a_short_lived_link_for_its_owner_only(
    local_host: FunctionHost,  # noqa: F811
    http: aiohttp.ClientSession,
    api: ApiClient,
    database_url: str,
) -> None:
    marker = uuid.uuid4().hex[:8]
    big = await _join(http, local_host, api, f"big_{marker}")
    nosy = await _join(http, local_host, api, f"nosy_{marker}")
    for n in range(INLINE_EXPORT_ITEMS + 1):
        await big.ok("POST", "/api/posts", {"content": f"big-post-{n}-{marker}"})

    status, job, headers = await big.call("GET", "/api/users/me/export")
    assert status == 202, job
    assert job["status"] == "pending" and headers["Location"] == job["location"]
    assert "Retry-After" in headers and headers.get("Cache-Control") == "no-store"
    assert (await nosy.call("GET", job["location"]))[0] == 404  # someone else's job is not there

    ready = await eventually(
        lambda: big.ok("GET", job["location"]),
        lambda answer: answer["status"] == "ready",
        timeout=30,
        interval=0.2,
        what="the export written",
    )
    assert ready["items"] >= INLINE_EXPORT_ITEMS + 1
    expires = datetime.fromisoformat(ready["downloadExpiresAt"])
    assert expires - datetime.now(UTC) <= timedelta(minutes=16)  # EXPORT_LINK_MINUTES (15) and a margin
    async with http.get(ready["downloadUrl"]) as response:
        assert response.status == 200
        document = json.loads(await response.read())
    assert sorted(p["content"] for p in document["posts"]) == sorted(
        f"big-post-{n}-{marker}" for n in range(INLINE_EXPORT_ITEMS + 1)
    )
    # Erasure takes the export and its blob with it.
    assert (await big.call("DELETE", "/api/users/me"))[0] == 202
    await _erasure_done(database_url, big.id)
    async with http.get(ready["downloadUrl"]) as response:
        assert response.status == 404
