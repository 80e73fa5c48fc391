"""The database boundary: row-level security holds only for a login that is subject to it.

PostgreSQL skips row-level security for superusers, for roles with BYPASSRLS and for a table's
owner (and the owner's members). The app must therefore never connect as any of them: it checks its
own login when it starts (and the pool checks each new connection until one has passed), and
`grant-app-role` refuses to hand the app's role to the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

# Superuser, BYPASSRLS, and the tables of the app's schema the login owns (itself or through a role it
# inherits from): ownership skips row-level security, since the tables do not FORCE it.
_LOGIN_POWERS_SQL = """
SELECT current_user::text AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       coalesce((SELECT array_agg(c.relname::text ORDER BY c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                    AND pg_has_role(current_user, c.relowner, 'USAGE')), '{}') AS owned_tables
  FROM pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True)
class LoginPowers:
    login: str
    superuser: bool
    bypass_rls: bool
    owned_tables: tuple[str, ...]

    def why_unsafe(self) -> str | None:
        """What lets this login past row-level security, or None if nothing does."""
        causes = []
        if self.superuser:
            causes.append("is a superuser")
        if self.bypass_rls:
            causes.append("has BYPASSRLS")
        if self.owned_tables:
            shown = ", ".join(self.owned_tables[:5]) + (", ..." if len(self.owned_tables) > 5 else "")
            causes.append(f"owns the tables ({shown})")
        return " and ".join(causes) or None


class UnsafeDatabaseLogin(RuntimeError):
    """The app's PostgreSQL login is not subject to row-level security: the app refuses to run."""


def _powers(row: dict[str, Any] | None) -> LoginPowers:
    if row is None:  # current_user always has a pg_roles row; be explicit rather than crash later
        raise UnsafeDatabaseLogin("the app's PostgreSQL login cannot be found in pg_roles")
    return LoginPowers(
        row["login"], bool(row["superuser"]), bool(row["bypass_rls"]), tuple(row["owned_tables"])
    )


async def login_powers(conn: AsyncConnection[Any]) -> LoginPowers:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LOGIN_POWERS_SQL)
        return _powers(await cur.fetchone())


def login_powers_sync(conn: psycopg.Connection[Any]) -> LoginPowers:
    with conn.cursor(row_factory=dict_row) as cur:
        return _powers(cur.execute(_LOGIN_POWERS_SQL).fetchone())


def app_login_message(powers: LoginPowers, setting: str = "POSTGRES_URL") -> str | None:
    """The operator's message when the app's login is unsafe (what happened, what to do), else None."""
    cause = powers.why_unsafe()
    if cause is None:
        return None
    return (
        f"Chorus refuses to run: its PostgreSQL login {powers.login!r} (from {setting}) {cause}, so "
        "row-level security would not apply to it and one user's request could read or change another "
        "user's private rows. Connect the app as its own login instead: create it with "
        "`python -m shared_code.db grant-app-role LOGIN` (run as the owner, POSTGRES_ADMIN_URL) and put "
        f"that login in {setting}; keep the owner's login for migrations only."
    )


async def check_app_login(conn: AsyncConnection[Any]) -> None:
    """Raise UnsafeDatabaseLogin (with the operator's message) if `conn`'s login bypasses row-level
    security."""
    message = app_login_message(await login_powers(conn))
    if message is not None:
        raise UnsafeDatabaseLogin(message)
