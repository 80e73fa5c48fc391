"""The PostgreSQL connection pool: one per worker process, opened on first use.

When the server restarts or every backend is terminated, the pool replaces the dead connections by
itself: a request that finds one dead runs again on a fresh connection (see `StaleConnection`), the
pool retries connecting while the server is away, and no host restart is needed."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from shared_code.db.boundary import UnsafeDatabaseLogin, check_app_login
from shared_code.db.text_search import UnknownTextSearchConfig, check_text_search_config
from shared_code.db.unit_of_work import SystemPool
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


# Microsoft Entra ID tokens for Azure Database for PostgreSQL are issued for this resource.
ENTRA_POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
# A token is used for new connections until this close to its expiry (they last about an hour).
_TOKEN_REFRESH_MARGIN_SECONDS = 300

ConnectionKwargs = Callable[[], Awaitable[dict[str, Any]]]


class EntraPassword:
    """The app's managed identity's access token, as the PostgreSQL password of each new connection:
    fetched when a connection is opened, reused until a few minutes before it expires (a token only
    has to be valid when the connection authenticates)."""

    def __init__(self, credential: Any | None = None) -> None:
        self._credential = credential
        self._token: str | None = None
        self._expires_on = 0.0

    async def __call__(self) -> str:
        if self._token is None or time.time() > self._expires_on - _TOKEN_REFRESH_MARGIN_SECONDS:
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            token = await self._credential.get_token(ENTRA_POSTGRES_SCOPE)
            self._token, self._expires_on = token.token, float(token.expires_on)
        return self._token

    async def close(self) -> None:
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()


def connection_kwargs(
    settings: Settings, entra_password: EntraPassword | None = None, *, acting_as_system: bool = False
) -> ConnectionKwargs:
    """What every connection of the app is opened with, resolved per connection (a fresh Entra token);
    `acting_as_system`: the connection starts as the system (SystemPool), for background work only."""
    static: dict[str, Any] = {
        # Autocommit: every use case opens an explicit transaction block (unit_of_work).
        "autocommit": True,
        "application_name": "chorus",
        "connect_timeout": settings.postgres_connect_timeout_seconds,
        # A statement that runs longer is cancelled (QueryCanceled): the request answers 503 instead of
        # holding a connection and its locks while clients give up.
        "options": f"-c statement_timeout={settings.postgres_statement_timeout_ms}"
        + (" -c chorus.role=system" if acting_as_system else ""),
    }
    if settings.postgres_ssl_root_cert:
        static["sslrootcert"] = settings.postgres_ssl_root_cert
    password = entra_password or (EntraPassword() if settings.postgres_entra_auth else None)

    async def resolve() -> dict[str, Any]:
        if password is None:
            return static
        return {**static, "password": await password()}

    return resolve


async def open_pool(settings: Settings, *, acting_as_system: bool = False) -> AsyncConnectionPool:
    """The request path's pool, or with `acting_as_system` the background work's (a SystemPool: the
    relay, the change feed, timers, health and the runbook), the same size and checks."""
    checked = False

    async def configure(conn: AsyncConnection[Any]) -> None:
        # Until one connection has shown that the login is subject to row-level security and that the
        # database has SEARCH_TEXT_CONFIG (the start-up check may have found the server away), each new
        # connection is checked; an unsafe login or an unknown configuration gets none, so every
        # request answers 503 and the log says why.
        nonlocal checked
        if checked:
            return
        try:
            await check_app_login(conn)
            await check_text_search_config(conn, settings.search_text_config)
        except (UnsafeDatabaseLogin, UnknownTextSearchConfig) as exc:
            log.critical("%s", exc)
            raise
        checked = True

    pool_class = SystemPool if acting_as_system else AsyncConnectionPool
    pool = pool_class(
        settings.postgres_url.get_secret_value(),
        min_size=settings.postgres_pool_min,
        max_size=settings.postgres_pool_max,
        # Fail a background task that waits this long for a connection instead of hanging it
        # (HTTP requests wait POSTGRES_REQUEST_WAIT_SECONDS).
        timeout=10,
        kwargs=connection_kwargs(settings, acting_as_system=acting_as_system),
        configure=configure,
        # The pool's reconnection delays double from 1 s; a short give-up time restarts them from 1 s
        # while requests keep asking, so a server that returns is used within a few seconds.
        reconnect_timeout=settings.postgres_reconnect_timeout_seconds,
        reconnect_failed=_reconnect_failed,
        open=False,
        name="chorus-system" if acting_as_system else "chorus",
    )
    # Don't block start-up on the database: the pool connects in the background
    # and health reports a database that is down.
    await pool.open(wait=False)
    return pool
