"""One PostgreSQL transaction per use case, with the events it records.

The unit of work takes a pooled connection, begins a transaction, tells the
database who is acting (for row-level security) and resolves the acting user
in the same round trip. Events recorded during the use case are written to the
outbox just before commit, in the same transaction: both or neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from shared_code.db.rows import fetch_one
from shared_code.domain.errors import NotFound, NotOnboarded
from shared_code.domain.events import EventPayload

T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the token says, and what travels with the request."""

    subject: str
    role: str = "user"  # "user" | "moderator" | "admin" | "system"
    correlation_id: str | None = None
    traceparent: str | None = None

    @property
    def is_moderator(self) -> bool:
        return self.role in ("moderator", "admin", "system")

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "system")


@dataclass
class UnitOfWork:
    conn: AsyncConnection[TupleRow]
    actor: Actor
    user_id: UUID | None
    _events: list[tuple[EventPayload, UUID, int, float]] = field(default_factory=list)

    def require_user(self) -> UUID:
        """The acting user's id; 403 for a valid token whose subject has not onboarded."""
        if self.user_id is None:
            raise NotOnboarded("this account is not set up yet: create it with POST /api/users first")
        return self.user_id

    async def act_as(self, user_id: UUID) -> None:
        """Row-level security now sees `user_id` as the acting user (after onboarding creates it)."""
        await self.conn.execute("SELECT set_config('chorus.user_id', %s, true)", (str(user_id),))
        self.user_id = user_id

    def record(
        self, event: EventPayload, aggregate_id: UUID, aggregate_version: int, delay_seconds: float = 0.0
    ) -> None:
        """Queue an event for the outbox; written in this transaction at commit. `delay_seconds`: the
        relay takes it no sooner (a background job that waits for something between its steps)."""
        self._events.append((event, aggregate_id, aggregate_version, delay_seconds))

    async def lock_live_users(self, *user_ids: UUID) -> None:
        """Hold each account live until this transaction ends: 404 unless all are live. Writes that
        involve an account (follows, posts, comments, reactions, blocks, mutes, flags) take this lock
        (FOR KEY SHARE), and account erasure takes FOR UPDATE before it marks the account deleted, so
        no such write can commit after an erasure was accepted (docs/privacy.md)."""
        wanted = sorted(set(user_ids))
        # Through a function of the owner's: row-level security lets a user lock only their own row.
        cur = await self.conn.execute("SELECT chorus_lock_live_users(%s::uuid[])", (wanted,))
        missing = set(wanted) - {row[0] for row in await cur.fetchall()}
        if self.user_id in missing:
            # The caller's own account went while this request ran (an erasure was accepted).
            raise NotOnboarded("this account has been deleted")
        if missing:
            raise NotFound("no such user")

    @property
    def recorded(self) -> list[EventPayload]:
        return [event for event, _, _, _ in self._events]

    async def flush_events(self) -> None:
        if not self._events:
            return
        metadata = {
            key: value
            for key, value in (
                ("correlationId", self.actor.correlation_id),
                ("traceparent", self.actor.traceparent),
                ("actor", self.actor.subject),
                ("actorUserId", str(self.user_id) if self.user_id else None),
            )
            if value is not None
        }
        rows: list[tuple[Any, ...]] = [
            (
                event.aggregate_type,
                aggregate_id,
                version,
                event.event_type,
                Jsonb(event.to_json()),
                Jsonb(metadata),
                delay,
            )
            for event, aggregate_id, version, delay in self._events
        ]
        async with self.conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload, metadata,
                                       next_attempt_at)
                   VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))""",
                rows,
            )
        self._events.clear()


class Transactions(Protocol):
    """Runs a use case in a transaction of its own (ApiRequest.run): for a use case that must not hold
    one open while it waits for another store, such as the reads served from Cosmos DB."""

    def __call__(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> Awaitable[T]: ...


@dataclass(frozen=True)
class _Session:
    """What the unit of work told the database about the caller; `user_id` is '' before onboarding."""

    subject: str
    role: str
    user_id: str


class SystemPool(AsyncConnectionPool):
    """A pool whose connections act as the system from the moment they open (`-c chorus.role=system`
    in their start-up options; shared_code/adapters/postgres.py): the background work's own pool, so
    `system_connection` on it costs no statement to set the role and none to reset it."""


@asynccontextmanager
async def system_connection(
    pool: AsyncConnectionPool, wait_seconds: float | None = None
) -> AsyncIterator[AsyncConnection[TupleRow]]:
    """A pooled connection acting as the system (`chorus.role = 'system'`), for the work that legitimately
    spans users: the outbox relay and its handlers, the change-feed functions, timers, health and the
    operators' runbook. Row-level security lets 'system' through; an HTTP use case never uses this (it runs
    in `unit_of_work` as its caller), so outside these paths the app's login sees only the caller's rows.
    The setting is the session's until the connection goes back to the pool; a SystemPool's
    connections hold it for their whole life, so they are used as they are."""
    if isinstance(pool, SystemPool):
        async with pool.connection(timeout=wait_seconds) as conn:
            yield conn
        return
    async with pool.connection(timeout=wait_seconds) as conn:
        await conn.execute("SELECT set_config('chorus.role', 'system', false)")
        try:
            yield conn
        finally:
            if not conn.closed:
                try:
                    await conn.execute("SELECT set_config('chorus.role', '', false)")
                except psycopg.Error:
                    # It must not go back to the pool still acting as the system: the pool drops it.
                    await conn.close()
                except BaseException:
                    # Cancelled half-way (a request's deadline, a stopping worker): the same, then go on
                    # with the cancellation.
                    await conn.close()
                    raise


class StaleConnection(Exception):
    """The pooled connection was dead before the use case ran (the server restarted, or the backend was
    terminated while the connection sat idle in the pool): nothing was done, so running again is safe."""


@asynccontextmanager
async def unit_of_work(
    pool: AsyncConnectionPool, actor: Actor, wait_seconds: float | None = None
) -> AsyncIterator[UnitOfWork]:
    """Commit on success (events included), roll back on any exception. Waits at most `wait_seconds`
    for a connection (the pool's timeout if None), then raises PoolTimeout."""
    use_case_started = False
    connection: AsyncConnection[TupleRow] | None = None
    try:
        async with pool.connection(timeout=wait_seconds) as conn, conn.transaction():
            connection = conn
            session = await fetch_one(
                conn,
                _Session,
                """SELECT set_config('chorus.subject', %(subject)s, true) AS subject,
                          set_config('chorus.role', %(role)s, true) AS role,
                          set_config('chorus.user_id', coalesce(
                              (SELECT id::text FROM users WHERE auth_subject = %(subject)s AND deleted_at IS NULL),
                              ''), true) AS user_id""",
                {"subject": actor.subject, "role": actor.role},
            )
            user_id = UUID(session.user_id) if session and session.user_id else None
            uow = UnitOfWork(conn=conn, actor=actor, user_id=user_id)
            use_case_started = True
            yield uow
            await uow.flush_events()
    except PoolTimeout:  # an OperationalError too, but no connection was used: not stale
        raise
    except psycopg.OperationalError as exc:
        # Only a failure before the use case ran, on a connection that is now closed, is "stale": a
        # failure later (even at COMMIT) may have done something, so it is not safe to run again.
        if not use_case_started and (connection is None or connection.closed or connection.broken):
            raise StaleConnection(str(exc)) from exc
        raise
