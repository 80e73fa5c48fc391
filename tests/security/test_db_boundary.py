"""The database boundary (docs/security.md, "The database boundary"): as the app's own login, through
the app's own pool, one user's transaction cannot read or change another user's private rows, even
with a hand-written query; the app refuses to run as a login row-level security does not apply to;
`grant-app-role` refuses such a login; a statement that runs past the statement timeout answers 503.

The attacker here is code running in a user's transaction (a query the service did not mean to send):
setup goes through the API; the crafted queries run on the pool the app serves requests with."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from shared_code.adapters.postgres import open_pool
from shared_code.app_context import AppContext
from shared_code.bootstrap import use_app_context
from shared_code.db.boundary import UnsafeDatabaseLogin
from shared_code.db.roles import RefusedAppLogin, ensure_app_login
from shared_code.db.unit_of_work import Actor, system_connection, unit_of_work
from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb
from tests.support.stack import app_functions, settings_from

REPO = Path(__file__).resolve().parents[2]

# Every table with private rows, and the column naming whose rows they are.
PRIVATE_TABLES = {
    "blocks": "blocker_id",
    "mutes": "muter_id",
    "moderation_flags": "reporter_id",
    "media_assets": "owner_id",
    "follow_requests": "requester_id",
    "notification_settings": "user_id",
}
# Tables only the system (relay, timers, operators) reads: no user's transaction sees a row.
SYSTEM_TABLES = ("outbox", "change_feed_failures")


@pytest.fixture
def chorus(api: ApiClient) -> Chorus:
    return Chorus(api)


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[OwnerDb]:
    db = await OwnerDb.connect(database_url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def role_name() -> str:
    """A throwaway login of the test server (roles are cluster-wide: each test drops its own)."""
    return f"boundary_{uuid.uuid4().hex[:10]}"


def _with_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.split("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


async def _private_rows_of_bob(chorus: Chorus, api: ApiClient) -> dict[str, Any]:
    """Bob blocks and mutes Carol, flags Alice's post, starts an upload (with an Idempotency-Key);
    Alice has rows of her own in each table, so that what she sees is not empty by accident."""
    alice, bob, carol, dave = await chorus.users("alice", "bob", "carol", "dave")
    alice_post = await chorus.post("alice")
    # Requests to private accounts (the two parties' alone), and notification settings (the user's).
    for private, asker in (("carol", "bob"), ("dave", "alice")):
        await chorus.do("PATCH", "/api/users/me", private, json_body={"visibility": "private"}, status=200)
        target = carol if private == "carol" else dave
        await chorus.do("PUT", f"/api/users/{target['id']}/follow", asker, status=202)
        await chorus.do(
            "PATCH", "/api/users/me/notification-settings", asker, json_body={"comment": False}, status=200
        )
    await chorus.do("PUT", f"/api/users/{carol['id']}/block", "bob")
    await chorus.do("PUT", f"/api/users/{carol['id']}/mute", "bob")
    await chorus.do("PUT", f"/api/users/{dave['id']}/block", "alice")
    await chorus.do("PUT", f"/api/users/{dave['id']}/mute", "alice")
    bob_post = await chorus.post("bob")
    for subject, post in (("bob", alice_post), ("alice", bob_post)):
        r = await api.call(
            "POST", f"/api/posts/{post['id']}/flags", subject=subject, json_body={"reason": "spam"}
        )
        assert r.status == 201, r
    for subject in ("bob", "alice"):
        r = await api.call(
            "POST",
            "/api/media",
            subject=subject,
            json_body={"contentType": "image/png", "sizeBytes": 1000},
            headers={"Idempotency-Key": f"upload-{subject}"},
        )
        assert r.status == 201, r
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "bob_post": bob_post}


async def test_one_users_transaction_cannot_read_or_change_another_users_private_rows(
    api: ApiClient, chorus: Chorus, app_context: AppContext, owner: OwnerDb
) -> None:
    rows = await _private_rows_of_bob(chorus, api)
    alice, bob, carol = rows["alice"], rows["bob"], rows["carol"]
    # The owner (no row-level security) sees Bob's rows: they exist.
    for table, column in PRIVATE_TABLES.items():
        assert await owner.count(table, f"{column} = %s", (bob["id"],)) >= 1, table
    assert await owner.count("idempotency_keys", "subject = 'bob'") >= 1
    assert await owner.count("outbox") > 0

    async with unit_of_work(app_context.pg_pool, Actor(subject="alice")) as uow:
        conn = uow.conn
        for table, column in PRIVATE_TABLES.items():
            cur = await conn.execute(f"SELECT {column}::text FROM {table}")
            owners = {row[0] for row in await cur.fetchall()}
            assert owners == {alice["id"]}, (table, owners)  # her own rows, and only hers
        cur = await conn.execute("SELECT count(*) FROM blocks WHERE blocker_id = %s", (bob["id"],))
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT DISTINCT subject FROM idempotency_keys")
        assert await cur.fetchall() == [("alice",)]
        for table in SYSTEM_TABLES:
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            assert await cur.fetchone() == (0,), table
        # Changing Bob's private rows: they are not there to change.
        for statement in (
            "UPDATE blocks SET deleted_at = now() WHERE blocker_id = %(bob)s",
            "UPDATE mutes SET deleted_at = now() WHERE muter_id = %(bob)s",
            "UPDATE moderation_flags SET reason = 'x' WHERE reporter_id = %(bob)s",
            "UPDATE media_assets SET status = 'ready', ready_at = now() WHERE owner_id = %(bob)s",
            "DELETE FROM idempotency_keys WHERE subject = 'bob'",
            "UPDATE follow_requests SET created_at = now() WHERE requester_id = %(bob)s",
            "UPDATE notification_settings SET turned_off = '{}' WHERE user_id = %(bob)s",
            "UPDATE outbox SET status = 'published', published_at = now()",
        ):
            cur = await conn.execute(statement, {"bob": bob["id"]})
            assert cur.rowcount == 0, statement

    refused = [
        # Public rows she can see but not change: another author's post, a block in Bob's name.
        ("UPDATE posts SET content = 'pwned' WHERE id = %(post)s", pg_errors.InsufficientPrivilege),
        (
            "INSERT INTO blocks (blocker_id, blocked_id) VALUES (%(bob)s, %(carol)s) ON CONFLICT DO NOTHING",
            pg_errors.InsufficientPrivilege,
        ),
        (
            "INSERT INTO mutes (muter_id, muted_id) VALUES (%(bob)s, %(alice)s)",
            pg_errors.InsufficientPrivilege,
        ),
    ]
    for statement, error in refused:
        with pytest.raises(error):
            async with unit_of_work(app_context.pg_pool, Actor(subject="alice")) as uow:
                await uow.conn.execute(
                    statement,
                    {
                        "post": rows["bob_post"]["id"],
                        "bob": bob["id"],
                        "carol": carol["id"],
                        "alice": alice["id"],
                    },
                )

    # A connection of the pool that says nobody is acting sees no private row at all.
    async with app_context.pg_pool.connection() as conn:
        for table in (*PRIVATE_TABLES, *SYSTEM_TABLES, "idempotency_keys"):
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            assert await cur.fetchone() == (0,), table

    # Nothing of Bob's changed.
    assert await owner.count("blocks", "blocker_id = %s AND deleted_at IS NULL", (bob["id"],)) == 1
    assert await owner.count("mutes", "muter_id = %s AND deleted_at IS NULL", (bob["id"],)) == 1
    assert await owner.count("idempotency_keys", "subject = 'bob'") >= 1
    assert await owner.scalar("SELECT content FROM posts WHERE id = %s", (rows["bob_post"]["id"],)) == (
        "hello, world"
    )
    assert await owner.count("outbox", "status = 'published'") == 0
    # The blocked party still learns of the block where a use case needs it (both ways).
    async with unit_of_work(app_context.pg_pool, Actor(subject="carol")) as uow:
        cur = await uow.conn.execute("SELECT blocker_id::text FROM blocks")
        assert await cur.fetchall() == [(bob["id"],)]
        cur = await uow.conn.execute("SELECT count(*) FROM mutes")  # a mute stays the muter's secret
        assert await cur.fetchone() == (0,)


async def test_only_the_background_pool_acts_as_the_system_and_a_user_transaction_on_it_acts_as_its_user(
    api: ApiClient, chorus: Chorus, app_context: AppContext
) -> None:
    """The relay, the change feed and the timers get the SystemPool (no statement per use to set and reset
    the role); the request path's pool never acts as the system, and a use case run on the system pool
    still acts as its caller inside its transaction."""
    await chorus.user("dana")

    async def role(conn: Any) -> str:
        cur = await conn.execute("SELECT current_setting('chorus.role', true)")
        row = await cur.fetchone()
        return str(row[0] or "")

    async with system_connection(app_context.system_pool) as conn:
        assert await role(conn) == "system"
    async with app_context.system_pool.connection() as conn:
        assert await role(conn) == "system"  # from the connection's start, not set per use
    async with app_context.pg_pool.connection() as conn:
        assert await role(conn) != "system"
    async with unit_of_work(app_context.system_pool, Actor(subject="dana")) as uow:
        assert await role(uow.conn) != "system"
        cur = await uow.conn.execute("SELECT count(*) FROM outbox")  # system-only rows stay hidden
        assert await cur.fetchone() == (0,)


# Tables without user data, so without row-level security: why, each.
NO_USER_DATA = {
    "schema_migrations": "which migrations ran",
    "rate_limit_buckets": "hashed keys and times, meaningless without the key (sql/0009_rate_limits.sql)",
}


async def test_every_table_with_user_data_has_row_level_security(owner: OwnerDb) -> None:
    without = await owner.rows(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity
             AND NOT c.relname = ANY(%s) ORDER BY 1""",
        (list(NO_USER_DATA),),
    )
    assert without == [], (
        f"{without}: enable row-level security with a policy per command in the migration that creates the "
        "table (see sql/0012_row_level_security_everywhere.sql and docs/security.md, 'The database boundary'), "
        "and run cross-user work through system_connection; or, if the table holds no user data, name it in "
        "NO_USER_DATA with the reason"
    )


# --- start-up refuses a login row-level security does not apply to -----------------------------------


async def _drop_role(owner: OwnerDb, name: str) -> None:
    await owner.execute(f'REASSIGN OWNED BY "{name}" TO current_user')
    await owner.execute(f'DROP OWNED BY "{name}"')
    await owner.execute(f'DROP ROLE IF EXISTS "{name}"')


async def test_the_app_refuses_to_start_as_the_owner_a_superuser_or_a_bypassrls_login(
    app_settings_values: dict[str, str], database_url: str, owner: OwnerDb, role_name: str
) -> None:
    # The test server's owner is a superuser.
    with pytest.raises(UnsafeDatabaseLogin) as refused:
        await AppContext.create(settings_from({**app_settings_values, "POSTGRES_URL": database_url}))
    message = str(refused.value)
    assert "refuses to run" in message and "is a superuser" in message and "owns the tables" in message
    assert "grant-app-role" in message and "POSTGRES_URL" in message  # what to do

    # A login that owns one table, and one with BYPASSRLS: each named for what it is.
    await owner.execute(f'CREATE ROLE "{role_name}" LOGIN NOSUPERUSER NOBYPASSRLS')
    await owner.execute(f'GRANT chorus_app TO "{role_name}"')
    try:
        await owner.execute(f'ALTER TABLE blocks OWNER TO "{role_name}"')
        with pytest.raises(UnsafeDatabaseLogin, match=r"owns the tables \(blocks\)"):
            await AppContext.create(
                settings_from({**app_settings_values, "POSTGRES_URL": _with_user(database_url, role_name)})
            )
        await owner.execute("ALTER TABLE blocks OWNER TO current_user")
        await owner.execute(f'ALTER ROLE "{role_name}" BYPASSRLS')
        with pytest.raises(UnsafeDatabaseLogin, match="has BYPASSRLS"):
            await AppContext.create(
                settings_from({**app_settings_values, "POSTGRES_URL": _with_user(database_url, role_name)})
            )
    finally:
        await _drop_role(owner, role_name)


async def test_a_pool_opened_as_the_owner_gives_no_connection_and_says_why(
    app_settings_values: dict[str, str], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the server was away at start-up, the pool's first connection is checked instead."""
    settings = settings_from({**app_settings_values, "POSTGRES_URL": database_url, "POSTGRES_POOL_MIN": "0"})
    pool = await open_pool(settings)
    try:
        with caplog.at_level(logging.CRITICAL, logger="chorus.postgres"), pytest.raises(PoolTimeout):
            async with pool.connection(timeout=2):
                pass
    finally:
        await pool.close()
    assert any("refuses to run" in r.getMessage() for r in caplog.records), caplog.records


# --- grant-app-role ---------------------------------------------------------------------------------


async def test_grant_app_role_refuses_the_owner_and_any_login_that_bypasses_rls(
    database_url: str, owner: OwnerDb, role_name: str
) -> None:
    owner_login = await owner.scalar("SELECT current_user::text")
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "shared_code.db",
            "grant-app-role",
            owner_login,
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done
    assert "refusing to grant chorus_app" in done.stderr and "is a superuser" in done.stderr, done.stderr
    assert not await owner.scalar(
        "SELECT pg_has_role(%s, 'chorus_app', 'MEMBER') AND NOT r.rolsuper FROM pg_roles r WHERE rolname = %s",
        (owner_login, owner_login),
    )

    await owner.execute(f'CREATE ROLE "{role_name}" LOGIN')
    try:
        await owner.execute(f'ALTER TABLE mutes OWNER TO "{role_name}"')
        with pytest.raises(RefusedAppLogin, match=r"owns the tables \(mutes\)"):
            await asyncio.to_thread(ensure_app_login, database_url, role_name)
        assert not await owner.scalar("SELECT pg_has_role(%s, 'chorus_app', 'MEMBER')", (role_name,))
        # Once it owns nothing, it may become the app's login.
        await owner.execute("ALTER TABLE mutes OWNER TO current_user")
        await asyncio.to_thread(ensure_app_login, database_url, role_name)
        assert await owner.scalar("SELECT pg_has_role(%s, 'chorus_app', 'MEMBER')", (role_name,))
    finally:
        await _drop_role(owner, role_name)


# --- statement timeout --------------------------------------------------------------------------------


@pytest.fixture
async def short_timeout_api(app_settings_values: dict[str, str], state_dir: Path) -> AsyncIterator[ApiClient]:
    """The app with a statement timeout of half a second (instead of the default 15 s)."""
    values = {**app_settings_values, "POSTGRES_STATEMENT_TIMEOUT_MS": "500"}
    context = await AppContext.create(settings_from(values))
    use_app_context(context)
    try:
        yield ApiClient(app_functions(values), state_dir)
    finally:
        use_app_context(None)
        await context.aclose()


async def test_a_statement_past_the_timeout_answers_503_and_changes_nothing(
    short_timeout_api: ApiClient, database_url: str
) -> None:
    api = short_timeout_api
    alice = await Chorus(api).user("alice")
    # An operator's session holds Alice's profile row locked (an owner's long transaction).
    async with await psycopg.AsyncConnection.connect(database_url) as locker:
        await locker.execute("SELECT 1 FROM profiles WHERE user_id = %s FOR UPDATE", (alice["id"],))
        started = time.monotonic()
        r = await api.call("PATCH", "/api/users/me", subject="alice", json_body={"bio": "while locked"})
        waited = time.monotonic() - started
        assert r.status == 503, r
        assert r.json["type"].endswith(":unavailable") and "took too long" in r.json["detail"], r
        assert r.headers.get("retry-after")
        assert waited < 10  # the timeout cut it short, not a client giving up (generous)
        await locker.rollback()
    async with await psycopg.AsyncConnection.connect(database_url) as check:
        cur = await check.execute("SELECT bio FROM profiles WHERE user_id = %s", (alice["id"],))
        assert await cur.fetchone() == ("",)
    # Once the lock is gone, the same request goes through.
    r = await api.call("PATCH", "/api/users/me", subject="alice", json_body={"bio": "after"})
    assert r.status == 200, r
