"""The outbox as a whole (every change announced once, with versions that step by one, in the
same transaction as the change) and row-level security for the app's own login."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import errors as pg_errors

from shared_code.domain.events import EVENT_TYPES, parse_event
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OutboxEvent, OwnerDb, assert_versions_step_by_one, versions_by_aggregate
from tests.support.problems import assert_problem
from tests.support.stack import as_app_login

AGGREGATE_TABLES = {
    "user": "users",
    "follow": "follows",
    "block": "blocks",
    "mute": "mutes",
    "post": "posts",
    "comment": "comments",
    "reaction": "reactions",
}
# Payload fields that carry a snapshot of a count aggregate, by event type.
USER_COUNT_FIELDS = {
    "follow.created": ("followerCounts", "followeeCounts"),
    "follow.deleted": ("followerCounts", "followeeCounts"),
    "post.created": ("authorCounts",),
    "post.deleted": ("authorCounts",),
}


async def _everything(api: ApiClient, chorus: Chorus) -> None:
    """A bit of every write the API has, by several users."""
    alice, bob, carol, _ = await chorus.users("alice", "bob", "carol", "dave")
    for follower, followee in (
        ("bob", alice),
        ("carol", alice),
        ("alice", bob),
        ("dave", alice),
        ("dave", bob),
    ):
        await chorus.do("PUT", f"/api/users/{followee['id']}/follow", follower)
    await chorus.do("DELETE", f"/api/users/{alice['id']}/follow", "carol")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    await chorus.do("PUT", f"/api/users/{carol['id']}/mute", "bob")
    await chorus.do("PUT", f"/api/users/{bob['id']}/block", "carol")
    await chorus.do("DELETE", f"/api/users/{bob['id']}/block", "carol")
    await chorus.do("PATCH", "/api/users/me", "alice", json_body={"displayName": "Alice!"}, status=200)
    post, other = await chorus.post("alice"), await chorus.post("bob")
    await chorus.do("PATCH", f"/api/posts/{post['id']}", "alice", json_body={"content": "edited"}, status=200)
    comment = await chorus.comment("bob", post["id"])
    await chorus.comment("carol", post["id"], parent_id=comment["id"])
    await chorus.do("DELETE", f"/api/comments/{comment['id']}", "alice")
    for subject, kind in (("bob", "like"), ("carol", "love"), ("bob", "wow"), ("dave", "sad")):
        await chorus.do("PUT", f"/api/posts/{post['id']}/reactions", subject, json_body={"type": kind})
    await chorus.do("DELETE", f"/api/posts/{post['id']}/reactions", "carol")
    await chorus.do("PUT", f"/api/posts/{other['id']}/reactions", "alice", json_body={"type": "laugh"})
    await chorus.post("dave")
    await chorus.do("DELETE", f"/api/posts/{other['id']}", "bob")
    await chorus.do("DELETE", "/api/users/me", "dave", status=202)


async def test_every_change_is_announced_once_with_versions_that_step_by_one(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    await _everything(api, chorus)
    events = await db.events()
    assert {e.event_type for e in events} == {
        "account.erasure_requested",
        "user.created",
        "profile.updated",
        "user.deleted",
        "follow.created",
        "follow.deleted",
        "block.created",
        "block.deleted",
        "mute.created",
        "post.created",
        "post.updated",
        "post.deleted",
        "comment.created",
        "comment.deleted",
        "reaction.set",
        "reaction.removed",
    }

    # Every aggregate was born in this test: its events are versions 1, 2, 3... in commit order,
    assert_versions_step_by_one(events)
    latest = {aggregate: versions[-1] for aggregate, versions in versions_by_aggregate(events).items()}
    assert all(versions[0] == 1 for versions in versions_by_aggregate(events).values())
    # and its row carries the version of its latest event: no change went unannounced.
    for aggregate_type, table in AGGREGATE_TABLES.items():
        rows = {
            (aggregate_type, str(row[0])): row[1] for row in await db.rows(f"SELECT id, version FROM {table}")
        }
        assert rows, table
        assert rows == {key: v for key, v in latest.items() if key[0] == aggregate_type}, table

    await _check_count_snapshots(db, events)

    assert all(e.status == "pending" for e in events)
    assert len({e.event_id for e in events}) == len(events)
    for event in events:
        assert re.fullmatch(r"[0-9a-f]{32}", event.metadata["correlationId"]), event.metadata
        assert event.metadata["actor"] in ("alice", "bob", "carol", "dave"), event.metadata
        assert UUID(event.metadata["actorUserId"])
    # One request, one correlation id: the events of one transaction share it.
    by_correlation: dict[str, set[str]] = defaultdict(set)
    for event in events:
        by_correlation[event.metadata["correlationId"]].add(event.metadata["actor"])
    assert all(len(actors) == 1 for actors in by_correlation.values())


async def _check_count_snapshots(db: OwnerDb, events: list[OutboxEvent]) -> None:
    """user_counts and post_counts: each change bumps the version by one and is announced by exactly
    one snapshot; the latest snapshot is what the row holds."""
    user_snapshots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    post_snapshots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        for name in USER_COUNT_FIELDS.get(event.event_type, ()):
            user_snapshots[event.payload[name]["userId"]].append(event.payload[name])
        if "postCounts" in event.payload:
            post_snapshots[event.payload["postCounts"]["postId"]].append(event.payload["postCounts"])

    for user_id, followers, following, posts, version in await db.rows(
        "SELECT user_id, followers, following, posts, version FROM user_counts"
    ):
        snapshots = user_snapshots[str(user_id)]
        assert sorted(s["version"] for s in snapshots) == list(range(2, version + 1)), user_id
        last = max(snapshots, key=lambda s: s["version"]) if snapshots else None
        if last is not None:
            assert (last["followers"], last["following"], last["posts"]) == (followers, following, posts)
        live_followers = await db.count("follows", "followee_id = %s AND deleted_at IS NULL", (user_id,))
        live_following = await db.count("follows", "follower_id = %s AND deleted_at IS NULL", (user_id,))
        live_posts = await db.count("posts", "author_id = %s AND deleted_at IS NULL", (user_id,))
        assert (followers, following, posts) == (live_followers, live_following, live_posts), user_id

    for post_id, reactions, comments, version in await db.rows(
        "SELECT post_id, reactions, comments, version FROM post_counts"
    ):
        snapshots = post_snapshots[str(post_id)]
        assert sorted(s["version"] for s in snapshots) == list(range(2, version + 1)), post_id
        if snapshots:
            last = max(snapshots, key=lambda s: s["version"])
            assert last["comments"] == comments
            assert {k: v for k, v in last["reactions"].items() if v} == {
                k: v for k, v in reactions.items() if v
            }
        assert comments == await db.count("comments", "post_id = %s AND deleted_at IS NULL", (post_id,))
        live = dict(
            await db.rows(
                "SELECT type, count(*) FROM reactions WHERE post_id = %s AND deleted_at IS NULL "
                "GROUP BY type",
                (post_id,),
            )
        )
        assert {k: v for k, v in reactions.items() if v} == live, post_id


# --- both or neither ---------------------------------------------------------------------------


async def _fail_outbox_inserts_of(db: OwnerDb, event_type: str) -> None:
    """From now on, writing an event of this type to the outbox fails (and with it its transaction)."""
    await db.execute(f"""
        CREATE OR REPLACE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'test: refusing %', NEW.event_type; END $$;
        DROP TRIGGER IF EXISTS fail_event ON outbox;
        CREATE TRIGGER fail_event BEFORE INSERT ON outbox FOR EACH ROW
            WHEN (NEW.event_type = '{event_type}') EXECUTE FUNCTION fail_event();
    """)


async def _snapshot(db: OwnerDb) -> dict[str, Any]:
    """Every row of every table the write path touches."""
    snapshot = {}
    for table in (
        "users",
        "profiles",
        "user_counts",
        "follows",
        "blocks",
        "mutes",
        "posts",
        "post_counts",
        "comments",
        "reactions",
        "idempotency_keys",
        "account_erasures",
        "username_holds",
        "outbox",
    ):
        snapshot[table] = sorted(map(repr, await db.rows(f"SELECT * FROM {table}")))
    return snapshot


# Requests whose transaction writes rows and then fails on its last step, writing the named event.
FAILING_WRITES: dict[str, tuple[str, str, str, dict[str, Any] | None]] = {
    "post.created": ("POST", "/api/posts", "alice", {"content": "x"}),
    "follow.created": ("PUT", "/api/users/{bob}/follow", "carol", None),
    "block.created": ("PUT", "/api/users/{bob}/block", "alice", None),  # after two follow.deleted
    "reaction.set": ("PUT", "/api/posts/{post}/reactions", "bob", {"type": "like"}),
    "comment.created": ("POST", "/api/posts/{post}/comments", "bob", {"content": "x"}),
    "user.deleted": ("DELETE", "/api/users/me", "alice", None),  # after the lock and the username hold
    "user.created": ("POST", "/api/users", "erin", {"username": "erin", "displayName": "E"}),
}


async def test_a_failed_transaction_leaves_neither_rows_nor_events(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, bob, _ = await chorus.users("alice", "bob", "carol")
    post = await chorus.post("alice")
    await chorus.do("PUT", f"/api/users/{bob['id']}/follow", "alice")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "bob")
    await chorus.do("PUT", f"/api/users/{alice['id']}/follow", "carol")
    before = await _snapshot(db)

    for failing_event, (method, path, subject, body) in FAILING_WRITES.items():
        await _fail_outbox_inserts_of(db, failing_event)
        r = await api.call(
            method,
            path.format(bob=bob["id"], post=post["id"]),
            subject=subject,
            json_body=body,
            headers={"Idempotency-Key": "once"} if method == "POST" else None,
        )
        assert r.status == 500, (failing_event, r)
        assert_problem(r, 500, "internal")
        assert await _snapshot(db) == before, failing_event

    # Without the failure, the same request goes through: it was the failure that undid it all.
    await db.execute("DROP TRIGGER fail_event ON outbox")
    await chorus.do("DELETE", "/api/users/me", "alice", status=202)
    assert await db.count("users", "deleted_at IS NOT NULL") == 1


# --- row-level security ------------------------------------------------------------------------


async def test_the_app_login_is_subject_to_row_level_security(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(as_app_login(database_url)) as conn:
        cur = await conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert await cur.fetchone() == (False, False)
        cur = await conn.execute(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relname = ANY(%s)",
            (["users", "profiles", "posts_admin_mirror"],),
        )
        assert {row[0] for row in await cur.fetchall()} == {"users", "profiles", "posts_admin_mirror"}


async def _acting_as(
    conn: psycopg.AsyncConnection[Any], subject: str, user_id: str | None, role: str = "user"
) -> None:
    """What unit_of_work tells the database at the start of each transaction."""
    await conn.execute(
        "SELECT set_config('chorus.subject', %s, true), set_config('chorus.role', %s, true), "
        "set_config('chorus.user_id', %s, true)",
        (subject, role, user_id or ""),
    )


async def _run_acting_as(
    conn: psycopg.AsyncConnection[Any],
    subject: str,
    user_id: str,
    role: str,
    statement: str,
    params: tuple[Any, ...],
) -> None:
    """One statement in its own transaction, acting as `user_id`."""
    async with conn.transaction():
        await _acting_as(conn, subject, user_id, role)
        await conn.execute(statement, params)


async def test_acting_as_a_user_a_hand_written_query_cannot_change_another_users_account(
    chorus: Chorus, db: OwnerDb, database_url: str
) -> None:
    alice, bob = await chorus.users("alice", "bob")
    orphan = await db.scalar(
        "INSERT INTO users (auth_subject, auth_provider, username) "
        "VALUES ('orphan', 'email', 'orphan') RETURNING id::text"
    )
    bob_before = await db.rows(
        "SELECT * FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s", (bob["id"],)
    )

    async with await psycopg.AsyncConnection.connect(as_app_login(database_url), autocommit=True) as conn:
        async with conn.transaction():
            await _acting_as(conn, "alice", alice["id"])
            cur = await conn.execute(
                "UPDATE profiles SET display_name = 'pwned', bio = 'pwned' WHERE user_id = %s", (bob["id"],)
            )
            assert cur.rowcount == 0
            cur = await conn.execute(
                "UPDATE users SET username = 'pwned', version = version + 1 WHERE id = %s", (bob["id"],)
            )
            assert cur.rowcount == 0
            # Without a WHERE clause, only the acting user's own rows change.
            cur = await conn.execute("UPDATE profiles SET bio = 'only mine'")
            assert cur.rowcount == 1
            # Everyone may read (profiles are public).
            cur = await conn.execute("SELECT count(*) FROM profiles")
            assert await cur.fetchone() == (2,)

        refused = [
            # Moving one's own row onto another user's fails the policy's WITH CHECK.
            ("UPDATE profiles SET user_id = %s WHERE user_id = %s", (orphan, alice["id"])),
            # Creating another user's profile, or an account for another subject.
            ("INSERT INTO profiles (user_id, display_name) VALUES (%s, 'Orphan')", (orphan,)),
            (
                "INSERT INTO users (auth_subject, auth_provider, username) "
                "VALUES ('mallory', 'email', 'mallory')",
                (),
            ),
        ]
        for statement, params in refused:
            with pytest.raises(pg_errors.InsufficientPrivilege):
                await _run_acting_as(conn, "alice", alice["id"], "user", statement, params)
        with pytest.raises(pg_errors.InsufficientPrivilege):  # no DELETE grant at all
            await _run_acting_as(
                conn, "alice", alice["id"], "user", "DELETE FROM profiles WHERE user_id = %s", (alice["id"],)
            )

        # Acting as nobody (a subject that has not onboarded), nothing can be changed.
        async with conn.transaction():
            await _acting_as(conn, "newcomer", None)
            cur = await conn.execute("UPDATE profiles SET bio = 'x'")
            assert cur.rowcount == 0

    assert (
        await db.rows(
            "SELECT * FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s", (bob["id"],)
        )
        == bob_before
    )
    assert await db.scalar("SELECT bio FROM profiles WHERE user_id = %s", (alice["id"],)) == "only mine"
    assert await db.count("profiles") == 2


async def test_the_admin_mirror_is_for_staff_and_written_only_by_the_system(
    chorus: Chorus, db: OwnerDb, database_url: str
) -> None:
    alice = await chorus.user("alice")
    post = await chorus.post("alice")
    await db.execute(
        "INSERT INTO posts_admin_mirror (post_id, author_id, content, status, version) "
        "VALUES (%s, %s, 'hello', 'visible', 1)",
        (post["id"], alice["id"]),
    )

    async with await psycopg.AsyncConnection.connect(as_app_login(database_url), autocommit=True) as conn:
        for role, visible in (("user", 0), ("moderator", 1), ("admin", 1)):
            async with conn.transaction():
                await _acting_as(conn, "alice", alice["id"], role)
                cur = await conn.execute("SELECT count(*) FROM posts_admin_mirror")
                assert await cur.fetchone() == (visible,), role
        # A moderator may read the rows, but the policy's WITH CHECK refuses any change.
        with pytest.raises(pg_errors.InsufficientPrivilege):
            await _run_acting_as(
                conn,
                "alice",
                alice["id"],
                "moderator",
                "UPDATE posts_admin_mirror SET status = 'removed'",
                (),
            )
    assert await db.scalar("SELECT status FROM posts_admin_mirror") == "visible"


# --- docs/events.md ----------------------------------------------------------------------------

EVENTS_DOC = Path(__file__).resolve().parents[3] / "docs" / "events.md"


def test_docs_events_md_describes_every_event_type_with_an_example_that_parses() -> None:
    text = EVENTS_DOC.read_text()
    sections = re.split(r"^#### `([a-z_.]+)`\n", text, flags=re.MULTILINE)
    documented = dict(zip(sections[1::2], sections[2::2], strict=True))
    assert sorted(documented) == sorted(EVENT_TYPES)
    for event_type, section in documented.items():
        model = EVENT_TYPES[event_type]
        assert "**When:**" in section, event_type
        assert f"**Aggregate:** `{model.aggregate_type}`" in section, event_type
        example = re.search(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
        assert example is not None, event_type
        payload = json.loads(example.group(1))
        # The example is exactly what the model writes: it parses, and nothing is missing or extra.
        assert parse_event(event_type, payload).to_json() == payload, event_type
