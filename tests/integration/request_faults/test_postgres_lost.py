"""Every app connection to PostgreSQL killed, or the server restarted, while requests come in:
each request answers 503 with Retry-After or succeeds (never 500), nothing is half-written, and the
pool recovers by itself: writes succeed within 5 s of the server's return."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from devhost.services.postgres import PostgresServer
from shared_code.app_context import AppContext
from tests.support.api import ApiClient, Response
from tests.support.outbox import OwnerDb
from tests.support.problems import PROBLEM_PREFIX
from tests.support.request_faults import ANSWER_WITHIN_SECONDS, call_ok
from tests.support.stack import APP_LOGIN

# The promise: writes succeed within 5 s of PostgreSQL's return. A little more is allowed
# for a loaded 2-core machine.
RECOVERY_WITHIN_SECONDS = 6.0


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[OwnerDb]:
    db = await OwnerDb.connect(database_url)
    try:
        yield db
    finally:
        await db.close()


async def kill_app_connections(owner: OwnerDb, database_url: str) -> int:
    """pg_terminate_backend for every connection the app's login holds to this test's database."""
    return await owner.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE usename = %s AND datname = %s AND pid <> pg_backend_pid()""",
        (APP_LOGIN, urlsplit(database_url).path.lstrip("/")),
    )


def assert_answered_or_unavailable(r: Response) -> None:
    assert r.status in (201, 503), r
    if r.status == 503:
        assert r.json["type"] == PROBLEM_PREFIX + "unavailable", r.json
        assert int(r.headers["retry-after"]) > 0


async def assert_nothing_half_written(owner: OwnerDb, author_id: str, created: list[str]) -> None:
    """Every post has its outbox event and is counted in its author's counters; every 201 is stored."""
    rows = await owner.rows(
        """SELECT p.id::text, EXISTS (SELECT 1 FROM outbox o WHERE o.aggregate_id = p.id
                                      AND o.event_type = 'post.created')
           FROM posts p WHERE p.author_id = %s AND p.deleted_at IS NULL""",
        (author_id,),
    )
    assert all(has_event for _, has_event in rows), "a post without its outbox event"
    stored = {post_id for post_id, _ in rows}
    assert set(created) <= stored, "a post answered 201 is not stored"
    counted = await owner.scalar("SELECT posts FROM user_counts WHERE user_id = %s", (author_id,))
    assert counted == len(stored), f"the author's counter says {counted}, {len(stored)} posts stored"


async def write_succeeds_within(api: ApiClient, subject: str, seconds: float) -> float:
    """Post until one answers 201; how long that took. Each try answers 201 or 503, never 500."""
    started = time.monotonic()
    while True:
        r = await api.call("POST", "/api/posts", subject=subject, json_body={"content": "back again"})
        assert_answered_or_unavailable(r)
        elapsed = time.monotonic() - started
        if r.status == 201:
            return elapsed
        assert elapsed < seconds, f"writes still fail {elapsed:.1f} s after PostgreSQL returned: {r}"
        await asyncio.sleep(0.1)  # pacing the retries, as a client honouring Retry-After would


@pytest.mark.timeout(120)
async def test_killed_connections_during_a_burst_lose_nothing_and_the_pool_recovers(
    api: ApiClient, app_context: AppContext, owner: OwnerDb, database_url: str
) -> None:
    alice = (
        await call_ok(api, "POST", "/api/users", "alice", {"username": "alice", "displayName": "A"})
    ).json
    # Fill the pool with several open connections, all of which are then killed while idle.
    await asyncio.gather(*(api.call("GET", "/api/users/me", subject="alice") for _ in range(8)))
    assert await kill_app_connections(owner, database_url) > 0

    async def post(n: int) -> Response:
        return await api.call("POST", "/api/posts", subject="alice", json_body={"content": f"burst {n}"})

    async def kill_again_mid_burst() -> None:
        await asyncio.sleep(0.05)  # not synchronisation: only spreads the kill into the burst
        await kill_app_connections(owner, database_url)

    burst = asyncio.gather(*(post(n) for n in range(30)))
    await kill_again_mid_burst()
    answers = await burst
    for r in answers:
        assert_answered_or_unavailable(r)
    statuses = Counter(r.status for r in answers)
    assert statuses[201] > 0, statuses
    created = [r.json["id"] for r in answers if r.status == 201]
    await write_succeeds_within(api, "alice", RECOVERY_WITHIN_SECONDS)
    await assert_nothing_half_written(owner, alice["id"], created)


@pytest.mark.timeout(180)
async def test_a_restarted_server_gets_503s_meanwhile_and_writes_again_within_seconds(
    api: ApiClient,
    app_context: AppContext,
    owner: OwnerDb,
    postgres_server: PostgresServer,
    database_url: str,
) -> None:
    alice = (
        await call_ok(api, "POST", "/api/users", "alice", {"username": "alice", "displayName": "A"})
    ).json
    created = [(await call_ok(api, "POST", "/api/posts", "alice", {"content": "before"})).json["id"]]
    await owner.close()
    await asyncio.to_thread(postgres_server.stop)
    try:
        # Down for longer than the pool's reconnect give-up time (5 s), so its retry delays have grown.
        down_since = time.monotonic()
        while time.monotonic() - down_since < 6:
            for method, path, body in (
                ("POST", "/api/posts", {"content": "while down"}),
                ("GET", "/api/users/me", None),
            ):
                started = time.monotonic()
                r = await api.call(method, path, subject="alice", json_body=body)
                elapsed = time.monotonic() - started
                assert r.status == 503, r
                assert r.json["type"] == PROBLEM_PREFIX + "unavailable" and int(r.headers["retry-after"]) > 0
                assert elapsed < ANSWER_WITHIN_SECONDS, f"{method} {path}: 503 after {elapsed:.2f} s"
    finally:
        await asyncio.to_thread(postgres_server.start_again)
    await write_succeeds_within(api, "alice", RECOVERY_WITHIN_SECONDS)
    created.append((await call_ok(api, "POST", "/api/posts", "alice", {"content": "after"})).json["id"])
    back = await OwnerDb.connect(database_url)
    try:
        await assert_nothing_half_written(back, alice["id"], created)
    finally:
        await back.close()
