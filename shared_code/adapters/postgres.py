"""The PostgreSQL connection pool: one per worker process, opened on first use."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from shared_code.settings import Settings


async def open_pool(settings: Settings) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        settings.postgres_url.get_secret_value(),
        min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max,
        # Fail a request that waits this long for a connection instead of hanging it.
        timeout=10,
        # Autocommit: every use case opens an explicit transaction block (unit_of_work).
        kwargs={"autocommit": True, "application_name": "chorus"},
        open=False,
        name="chorus",
    )
    # Don't block start-up on the database: the pool connects in the background
    # and health reports a database that is down.
    await pool.open(wait=False)
    return pool
