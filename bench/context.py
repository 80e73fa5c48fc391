"""What every scenario gets: the running host and its stack, an HTTP client, direct clients for the
baselines, tokens, the resource sampler, and the shared population of users.

Set-up data (users, follows) is written straight into PostgreSQL for speed; the operations a scenario
measures always go through the real path (HTTP → function → PostgreSQL → outbox → relay → Cosmos → change
feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from azure.cosmos import CosmosClient as SyncCosmosClient
from azure.cosmos.aio import CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from bench.host import HostProcess, ResourceSampler, Stack
from bench.loadgen import Http
from devhost.cosmos_provisioning import provision
from devhost.tokens import issue_token

# Where the direct Cosmos baselines write: same emulator, same container definitions, no change feed
# function listens to it.
BASELINE_DATABASE = "bench_baseline"
POPULATION_SUBJECT = "bench-pop-{}"
QUIET_PATTERN = re.compile(r"(fan_out_posts|count_reactions) trigger=cosmosDBTrigger")


@dataclass
class BenchContext:
    quick: bool
    out_dir: Path
    host: HostProcess
    stack: Stack
    http: Http
    sampler: ResourceSampler
    cosmos: CosmosClient
    profile: bool = False
    population: list[str] = field(default_factory=list)  # user ids, index = population number
    named_users: dict[str, str] = field(default_factory=dict)  # subject → user id
    _tokens: dict[str, str] = field(default_factory=dict)
    _baseline_ready: bool = False

    # --- clients ------------------------------------------------------------------------------------

    @property
    def db(self) -> DatabaseProxy:
        return self.cosmos.get_database_client(self.stack.cosmos_database)

    def baseline_db(self) -> DatabaseProxy:
        if not self._baseline_ready:
            with SyncCosmosClient(self.stack.cosmos_endpoint, credential=self.stack.cosmos_key) as client:
                provision(client, BASELINE_DATABASE)
            self._baseline_ready = True
        return self.cosmos.get_database_client(BASELINE_DATABASE)

    async def drop_baseline(self) -> None:
        """Delete the baselines' database once a scenario is done with it. Its documents are the
        harness's, not the app's (like the baselines' PostgreSQL backends, which the memory figures
        leave out), and the emulator keeps every document in memory; the next baseline provisions it
        again."""
        if not self._baseline_ready:
            return
        with contextlib.suppress(CosmosResourceNotFoundError):
            await self.cosmos.delete_database(BASELINE_DATABASE)
        self._baseline_ready = False

    async def admin(self) -> psycopg.AsyncConnection[Any]:
        """A connection as the database owner (set-up, counting), autocommit."""
        return await psycopg.AsyncConnection.connect(self.stack.postgres_admin_url, autocommit=True)

    def token(self, subject: str) -> str:
        if subject not in self._tokens:
            self._tokens[subject] = issue_token(self.stack.state_dir, subject)
        return self._tokens[subject]

    def population_token(self, index: int) -> str:
        return self.token(POPULATION_SUBJECT.format(index))

    # --- the shared population ------------------------------------------------------------------------

    async def ensure_population(self, size: int) -> list[str]:
        """Users `bench-pop-0` … `bench-pop-{size-1}` (with profiles and counts), created in bulk."""
        if len(self.population) >= size:
            return self.population
        start = len(self.population)
        async with await self.admin() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO users (auth_subject, auth_provider, username)
                   SELECT format('bench-pop-%%s', i), 'email', format('bench_p%%s', i)
                   FROM generate_series(%(start)s::int, %(end)s::int - 1) i""",
                {"start": start, "end": size},
            )
            await _profiles_and_counts(conn)
            cur = await conn.execute(
                """SELECT substr(auth_subject, 11)::int, id::text FROM users
                   WHERE auth_subject LIKE 'bench-pop-%%' ORDER BY 1"""
            )
            self.population = [row[1] for row in await cur.fetchall()]
        return self.population

    async def ensure_user(self, subject: str, username: str) -> str:
        """One named user created in bulk style (no onboarding event): an author of set-up data."""
        if subject in self.named_users:
            return self.named_users[subject]
        async with await self.admin() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO users (auth_subject, auth_provider, username) VALUES (%s, 'email', %s)
                   ON CONFLICT DO NOTHING""",
                (subject, username),
            )
            await _profiles_and_counts(conn)
            cur = await conn.execute("SELECT id::text FROM users WHERE auth_subject = %s", (subject,))
            row = await cur.fetchone()
        assert row is not None
        self.named_users[subject] = str(row[0])
        return str(row[0])

    async def onboard(self, subject: str, username: str) -> str:
        """A user created through the real API (POST /api/users)."""
        if subject in self.named_users:
            return self.named_users[subject]
        me = await self.http.expect(
            "POST",
            "/api/users",
            self.token(subject),
            {"username": username, "displayName": username.replace("_", " ").title()},
        )
        self.named_users[subject] = str(me["id"])
        return self.named_users[subject]

    async def ensure_followers(self, author_id: str, followers: list[str]) -> None:
        """`followers` follow `author_id` (set-up: straight into PostgreSQL, counts kept exact)."""
        async with await self.admin() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO follows (follower_id, followee_id)
                   SELECT f::uuid, %(author)s::uuid FROM unnest(%(followers)s::text[]) f
                   ON CONFLICT DO NOTHING""",
                {"author": author_id, "followers": followers},
            )
            await conn.execute(
                """UPDATE user_counts c SET followers = s.n, version = c.version + 1
                   FROM (SELECT followee_id, count(*) n FROM follows WHERE deleted_at IS NULL
                         GROUP BY followee_id) s
                   WHERE c.user_id = s.followee_id AND c.followers <> s.n"""
            )
            await conn.execute(
                """UPDATE user_counts c SET following = s.n, version = c.version + 1
                   FROM (SELECT follower_id, count(*) n FROM follows WHERE deleted_at IS NULL
                         GROUP BY follower_id) s
                   WHERE c.user_id = s.follower_id AND c.following <> s.n"""
            )

    # --- waiting for the pipeline ---------------------------------------------------------------------

    async def outbox_pending(self) -> int:
        async with await self.admin() as conn:
            cur = await conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def wait_idle(self, timeout: float = 600.0, quiet_seconds: float = 1.0) -> float:  # noqa: ASYNC109
        """Until the outbox is drained and no change-feed function has run for `quiet_seconds`.
        Returns how long it waited."""
        started = time.monotonic()
        deadline = started + timeout
        while await self.outbox_pending() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the outbox did not drain")
            await asyncio.sleep(0.1)
        self.host.tail.new_lines()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            if any(QUIET_PATTERN.search(line) for line in self.host.tail.new_lines()):
                quiet_since = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError("the change-feed functions did not go quiet")
            await asyncio.sleep(0.05)
        return time.monotonic() - started


async def _profiles_and_counts(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(
        """INSERT INTO profiles (user_id, display_name)
           SELECT u.id, 'Bench ' || u.username FROM users u
           WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.user_id = u.id)"""
    )
    await conn.execute(
        """INSERT INTO user_counts (user_id)
           SELECT u.id FROM users u WHERE NOT EXISTS (SELECT 1 FROM user_counts c WHERE c.user_id = u.id)"""
    )
