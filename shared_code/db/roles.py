"""The login the app connects as: a member of `chorus_app`, never the schema owner,
so that row-level security applies to it (owners and superusers bypass it)."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_@.-]{0,62}$", re.IGNORECASE)


def ensure_app_login(admin_url: str, login: str, password: str | None = None) -> None:
    """Create `login` if missing (with `password`, if given) and make it a member of chorus_app."""
    if not _ROLE_NAME.match(login):
        raise ValueError(f"{login!r} is not a plain role name")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
        if not exists:
            statement = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(login))
            if password is not None:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
            conn.execute(statement)
        elif password is not None:
            # A rotated password (Key Vault holds the new one) must reach the server too.
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(login), sql.Literal(password))
            )
        conn.execute(sql.SQL("GRANT chorus_app TO {}").format(sql.Identifier(login)))
