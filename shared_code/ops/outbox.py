"""Outbox operations: requeue dead events, delete old published ones."""

from __future__ import annotations

import time
from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool

from shared_code.db.unit_of_work import system_connection
from shared_code.outbox.store import requeue_dead

RETENTION_BATCH = 1000


async def requeue(pool: AsyncConnectionPool, event_ids: Sequence[int] | None) -> int:
    """Dead events (all, or the listed outbox ids) back to pending with attempts reset."""
    return await requeue_dead(pool, event_ids)


async def delete_published(
    pool: AsyncConnectionPool,
    older_than_days: float,
    budget_seconds: float = 30.0,
    batch: int = RETENTION_BATCH,
) -> int:
    """Delete published events older than the retention, `batch` rows per transaction so no
    long lock or large WAL burst; stops at the time budget. Returns how many went."""
    deadline = time.monotonic() + budget_seconds
    deleted = 0
    while time.monotonic() < deadline:
        async with system_connection(pool) as conn, conn.transaction():
            cur = await conn.execute(
                """DELETE FROM outbox WHERE id IN (
                       SELECT id FROM outbox
                       WHERE status = 'published' AND published_at < now() - make_interval(secs => %s)
                       ORDER BY published_at LIMIT %s)""",
                (older_than_days * 86400, batch),
            )
            deleted += cur.rowcount
        if cur.rowcount < batch:
            break
    return deleted
