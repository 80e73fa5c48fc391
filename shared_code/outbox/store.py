"""The relay's store: the outbox table's SQL (claim, renew, record outcomes, requeue and skip dead events)
and the LISTEN connection that wakes an idle drain. What to write is decided by the policy (policy.py);
this module only writes it, each step in a transaction of its own.

Fencing lives in the SQL: every write after the claim matches only rows still pending under the claim
token this relay wrote, so a relay that outlived its lease records nothing (the counts it gets back say
how much was written).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from shared_code.db.unit_of_work import system_connection
from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.policy import ChargedFailure, ReleasedClaim

log = logging.getLogger("chorus.outbox")

# Each statement starts with a name: logs (and pg_stat_statements) tell them apart by it.
CLAIM = """-- relay:claim
WITH claimable AS (
    SELECT o.id
    FROM outbox o
    WHERE o.status = 'pending'
      AND o.next_attempt_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      -- the stages whose sinks are delivering (a paused sink's events stay where they are)
      AND CASE WHEN o.projected_at IS NULL THEN %(project)s ELSE %(publish)s END
      -- OFFSET 0 keeps this a per-candidate index probe (outbox_unfinished_by_aggregate): as a
      -- flattened anti-join it was planned on stale statistics into seconds per claim after a burst.
      -- A projection waits for the earlier projections of its aggregate; a publication for every
      -- earlier event of its aggregate to be done (so Event Hubs gets them in order).
      AND NOT EXISTS (
          SELECT 1 FROM outbox earlier
          WHERE earlier.aggregate_type = o.aggregate_type
            AND earlier.aggregate_id = o.aggregate_id
            AND earlier.id < o.id
            AND earlier.status IN ('pending', 'dead')
            AND (o.projected_at IS NOT NULL OR earlier.projected_at IS NULL)
          OFFSET 0)
    ORDER BY o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE outbox SET claimed_until = now() + make_interval(secs => %(lease)s), claim_token = %(token)s
FROM claimable WHERE outbox.id = claimable.id
RETURNING outbox.id, outbox.event_id, outbox.aggregate_type, outbox.aggregate_id, outbox.aggregate_version,
          outbox.event_type, outbox.payload, outbox.metadata, outbox.created_at, outbox.attempts,
          outbox.projected_at IS NOT NULL AS projected, outbox.claim_token
"""

# Before publishing: the claims still ours, renewed. What another relay took since is left to it.
_RENEW = """-- relay:renew
UPDATE outbox SET claimed_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'
RETURNING id"""

_PUBLISHED = """-- relay:published
UPDATE outbox SET status = 'published', projected_at = coalesce(projected_at, now()), published_at = now(),
                  claimed_until = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'"""

_PROJECTED = """-- relay:projected
UPDATE outbox SET projected_at = now(), claimed_until = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND claim_token = %(token)s AND status = 'pending'"""

# Only a pending event under this relay's claim: a relay that outlived its lease must not turn an event
# another relay has published since back into a pending one, nor spend its attempts.
_FAILED = """-- relay:failed
UPDATE outbox o SET attempts = o.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => f.delay),
                    status = f.status, last_error = f.error, claimed_until = NULL
FROM unnest(%(ids)s::bigint[], %(delays)s::float8[], %(statuses)s::text[], %(errors)s::text[])
     AS f(id, delay, status, error)
WHERE o.id = f.id AND o.claim_token = %(token)s AND o.status = 'pending'"""

# A sink outage: the claim goes back, attempts and backoff untouched; last_error says why it waits.
_RELEASED = """-- relay:released
UPDATE outbox o SET claimed_until = NULL, last_error = f.error
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS f(id, error)
WHERE o.id = f.id AND o.claim_token = %(token)s AND o.status = 'pending'"""

Listener = psycopg.AsyncConnection[tuple[object, ...]]


@dataclass
class Recorded:
    """What a round's record wrote: rows published, rows projected only, and every row written."""

    published: int = 0
    projected: int = 0
    written: int = 0


class OutboxStore:
    """The outbox table as the relay uses it, over the app's pool; `listen_url` opens the LISTEN
    connection (None: the drain polls instead)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        listen_url: str | None = None,
        listen_kwargs: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self._pool = pool
        self._listen_url = listen_url
        # What the pool's connections are opened with (a fresh Entra token in Azure).
        self._listen_kwargs = listen_kwargs

    async def claim(
        self, limit: int, lease_seconds: float, *, project: bool, publish: bool
    ) -> list[StoredEvent]:
        """Claim up to `limit` events of the delivering stages under a fresh token, committed at once (no
        handler ever runs under row locks; a relay that dies leaves claims that simply expire)."""
        params = {
            "limit": limit,
            "lease": lease_seconds,
            "token": uuid4(),
            "project": project,
            "publish": publish,
        }
        async with system_connection(self._pool) as conn, conn.transaction():
            cur = conn.cursor(row_factory=class_row(StoredEvent))
            await cur.execute(CLAIM, params)
            events = await cur.fetchall()
        return sorted(events, key=lambda e: e.id)

    async def renew(self, event_ids: Sequence[int], token: UUID | None, lease_seconds: float) -> set[int]:
        """Renew the claims still held under `token`; returns their ids."""
        async with system_connection(self._pool) as conn, conn.transaction():
            cur = await conn.execute(_RENEW, {"ids": list(event_ids), "token": token, "lease": lease_seconds})
            return {int(event_id) for (event_id,) in await cur.fetchall()}

    async def record(
        self,
        token: UUID | None,
        *,
        published: Sequence[int],
        projected: Sequence[int],
        charged: Sequence[ChargedFailure],
        released: Sequence[ReleasedClaim],
    ) -> Recorded:
        """Write a round's outcomes in one transaction, each only where the claim is still `token`'s."""
        recorded = Recorded()
        async with system_connection(self._pool) as conn, conn.transaction():
            if published:
                cur = await conn.execute(_PUBLISHED, {"ids": list(published), "token": token})
                recorded.published = cur.rowcount
                recorded.written += cur.rowcount
            if projected:
                cur = await conn.execute(_PROJECTED, {"ids": list(projected), "token": token})
                recorded.projected = cur.rowcount
                recorded.written += cur.rowcount
            if charged:
                cur = await conn.execute(
                    _FAILED,
                    {
                        "ids": [f.event_id for f in charged],
                        "delays": [f.delay_seconds for f in charged],
                        "statuses": [f.status for f in charged],
                        "errors": [f.last_error for f in charged],
                        "token": token,
                    },
                )
                recorded.written += cur.rowcount
            if released:
                cur = await conn.execute(
                    _RELEASED,
                    {
                        "ids": [r.event_id for r in released],
                        "errors": [r.note for r in released],
                        "token": token,
                    },
                )
                recorded.written += cur.rowcount
        return recorded

    async def listen(self) -> Listener | None:
        """A connection listening on the outbox channel, or None (then the drain polls)."""
        if self._listen_url is None:
            return None
        try:
            kwargs = await self._listen_kwargs() if self._listen_kwargs else {}
            conn = await psycopg.AsyncConnection.connect(self._listen_url, **{**kwargs, "autocommit": True})
            await conn.execute("LISTEN outbox")
        except psycopg.OperationalError as exc:
            log.warning("cannot LISTEN for outbox notifications (%s); polling instead", exc)
            return None
        return conn


async def wait_for_notify(listener: Listener | None, wait_seconds: float) -> Listener | None:
    """Sleep until a NOTIFY or `wait_seconds`; returns the listener, or None if it broke."""
    if wait_seconds <= 0:
        return listener
    if listener is None:
        await asyncio.sleep(min(wait_seconds, 0.5))
        return None
    try:
        async for _ in listener.notifies(timeout=wait_seconds, stop_after=1):
            pass
    except psycopg.OperationalError as exc:
        log.warning("the outbox LISTEN connection broke (%s); opening another", exc)
        await listener.close()
        await asyncio.sleep(min(wait_seconds, 0.5))
        return None
    return listener


async def requeue_dead(pool: AsyncConnectionPool, event_ids: Sequence[int] | None = None) -> int:
    """Dead events (all, or the listed ones) back to pending with attempts reset. Returns how many."""
    async with system_connection(pool) as conn, conn.transaction():
        cur = await conn.execute(
            """UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), claimed_until = NULL
               WHERE status = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))""",
            {"ids": list(event_ids) if event_ids is not None else None},
        )
        return cur.rowcount


async def skip_dead(
    pool: AsyncConnectionPool, event_ids: Sequence[int], reason: str, skipped_by: str
) -> list[int]:
    """Give up on dead events (only dead ones): they stop blocking their aggregates, and the reason and who
    decided are recorded on each. Returns the ids skipped (a listed event that is not dead is left alone)."""
    async with system_connection(pool) as conn, conn.transaction():
        cur = await conn.execute(
            """UPDATE outbox SET status = 'skipped', skipped_at = now(), skipped_by = %(by)s,
                                 skip_reason = %(reason)s, claimed_until = NULL
               WHERE status = 'dead' AND id = ANY(%(ids)s::bigint[])
               RETURNING id""",
            {"ids": list(event_ids), "reason": reason, "by": skipped_by},
        )
        skipped = sorted(int(event_id) for (event_id,) in await cur.fetchall())
    for event_id in skipped:
        log.warning("outbox event %s skipped by %s: %s", event_id, skipped_by, reason)
    return skipped
