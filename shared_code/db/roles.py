"""The login the app connects as: a member of `chorus_app`, never the schema owner,
so that row-level security applies to it (owners and superusers bypass it)."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_@.-]{0,62}$", re.IGNORECASE)

# What would let `login` past row-level security: superuser, BYPASSRLS, or owning (itself or through a
# role it inherits from) a table of the schema.
_POWERS_OF = """
SELECT r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       coalesce((SELECT array_agg(c.relname::text ORDER BY c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                    AND pg_has_role(r.oid, c.relowner, 'USAGE')), '{}') AS owned_tables
  FROM pg_roles r WHERE r.rolname = %s
"""


class RefusedAppLogin(ValueError):
    """The login asked for would not be subject to row-level security: it must not act as the app."""


def _refuse_unsafe(conn: psycopg.Connection[Any], login: str) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_POWERS_OF, (login,)).fetchone()
    if row is None:
        return  # a new login: created below without any of these powers
    superuser, bypass_rls, owned = row["superuser"], row["bypass_rls"], row["owned_tables"]
    causes = [
        cause for cause, present in (("is a superuser", superuser), ("has BYPASSRLS", bypass_rls)) if present
    ]
    if owned:
        causes.append(f"owns the tables ({', '.join(owned[:5])}{', ...' if len(owned) > 5 else ''})")
    if causes:
        raise RefusedAppLogin(
            f"{login} {' and '.join(causes)}: row-level security would not apply to it, so it must not be "
            "the app's login. Choose another name for the app's login (this command creates it); keep "
            f"{login} for migrations."
        )


def ensure_app_login(admin_url: str, login: str, password: str | None = None) -> None:
    """Create `login` if missing (with `password`, if given) and make it a member of chorus_app.
    RefusedAppLogin if `login` is a superuser, has BYPASSRLS or owns the tables (the owner, say)."""
    if not _ROLE_NAME.match(login):
        raise ValueError(f"{login!r} is not a plain role name")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        _refuse_unsafe(conn, login)
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


def ensure_entra_principal(admin_url: str, role: str, object_id: str, token: str) -> bool:
    """Create the PostgreSQL role of a Microsoft Entra service principal (the app's managed identity)
    if missing; True if it was created. Azure Database for PostgreSQL lets only its Entra administrator
    do this (connected with an Entra token as password); the server maps the role to `object_id`."""
    if not _ROLE_NAME.match(role):
        raise ValueError(f"{role!r} is not a plain role name")
    with psycopg.connect(admin_url, password=token, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            return False
        # Not an administrator, not MFA-only (is_admin false, is_mfa false).
        conn.execute(
            "SELECT * FROM pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false)",
            (role, object_id),
        )
        return True
