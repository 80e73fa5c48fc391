"""The PostgreSQL connection pool: one per worker process, opened on first use.

When the server restarts or every backend is terminated, the pool replaces the dead connections by
itself: a request that finds one dead runs again on a fresh connection (see `StaleConnection`), the
pool retries connecting while the server is away, and no host restart is needed."""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from shared_code.settings import Settings

log = logging.getLogger("chorus.postgres")


async def _reconnect_failed(pool: AsyncConnectionPool) -> None:
    log.error(
        "PostgreSQL has refused new connections for %s s (pool %r): requests answer 503 meanwhile, and "
        "the pool goes on trying as requests come. Check that the server is up and reachable and that the "
        "app's login and password (POSTGRES_URL) are still valid.",
        pool.reconnect_timeout,
        pool.name,
    )


async def open_pool(settings: Settings) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        settings.postgres_url.get_secret_value(),
        min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max,
        # Fail a background task that waits this long for a connection instead of hanging it
        # (HTTP requests wait POSTGRES_REQUEST_WAIT_SECONDS).
        timeout=10,
        # Autocommit: every use case opens an explicit transaction block (unit_of_work).
        kwargs={
            "autocommit": True,
            "application_name": "chorus",
            "connect_timeout": settings.postgres_connect_timeout_seconds,
        },
        # The pool's reconnection delays double from 1 s; a short give-up time restarts them from 1 s
        # while requests keep asking, so a server that returns is used within a few seconds.
        reconnect_timeout=settings.postgres_reconnect_timeout_seconds,
        reconnect_failed=_reconnect_failed,
        open=False,
        name="chorus",
    )
    # Don't block start-up on the database: the pool connects in the background
    # and health reports a database that is down.
    await pool.open(wait=False)
    return pool
