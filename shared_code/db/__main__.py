"""`python -m shared_code.db migrate [--database-url URL]`: apply `sql/` to a database.
`python -m shared_code.db grant-app-role LOGIN`: let LOGIN act as the app (row-level security applies).
`python -m shared_code.db entra-principal ROLE OBJECT_ID`: the PostgreSQL role of the app's managed identity
(Azure, run as the server's Microsoft Entra administrator with the caller's Entra token).

The URL defaults to the POSTGRES_URL setting, so the deploy hook and the local host
run the same command.
"""

from __future__ import annotations

import argparse
import os
import sys

from shared_code.db.migrations import MigrationError, migrate
from shared_code.db.roles import RefusedAppLogin, ensure_app_login, ensure_entra_principal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared_code.db")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations from sql/")
    migrate_cmd.add_argument("--database-url", default=os.environ.get("POSTGRES_URL"))
    grant_cmd = commands.add_parser(
        "grant-app-role", help="create a login (if missing) and make it a member of chorus_app"
    )
    grant_cmd.add_argument("login")
    grant_cmd.add_argument(
        "--database-url",
        default=os.environ.get("POSTGRES_ADMIN_URL"),
        help="an owner's connection (default: POSTGRES_ADMIN_URL)",
    )
    grant_cmd.add_argument("--password-env", help="name of an environment variable holding the password")
    entra_cmd = commands.add_parser(
        "entra-principal", help="create the PostgreSQL role of a Microsoft Entra service principal (Azure)"
    )
    entra_cmd.add_argument("role")
    entra_cmd.add_argument("object_id")
    entra_cmd.add_argument(
        "--database-url",
        default=os.environ.get("POSTGRES_ENTRA_ADMIN_URL"),
        help="the Entra administrator's connection to the postgres database (default: POSTGRES_ENTRA_ADMIN_URL)",
    )
    args = parser.parse_args(argv)

    if not args.database_url:
        print("error: no database: pass --database-url or set POSTGRES_URL", file=sys.stderr)
        return 2
    if args.command == "entra-principal":
        return _entra_principal(args.database_url, args.role, args.object_id)
    if args.command == "grant-app-role":
        password = os.environ.get(args.password_env) if args.password_env else None
        try:
            ensure_app_login(args.database_url, args.login, password)
        except RefusedAppLogin as exc:
            print(f"error: refusing to grant chorus_app: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            print(
                f"error: cannot grant chorus_app to {args.login}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"{args.login} can log in and is a member of chorus_app")
        return 0
    try:
        names = migrate(args.database_url)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a connection problem: say what and where, not a stack trace
        print(f"error: cannot migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"applied {len(names)} migration(s)" + (": " + ", ".join(names) if names else ""))
    return 0


def _entra_principal(admin_url: str, role: str, object_id: str) -> int:
    from azure.identity import DefaultAzureCredential

    from shared_code.adapters.postgres import ENTRA_POSTGRES_SCOPE

    try:
        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        token = credential.get_token(ENTRA_POSTGRES_SCOPE).token
        created = ensure_entra_principal(admin_url, role, object_id, token)
    except Exception as exc:
        print(
            f"error: cannot create the Entra role {role}: {type(exc).__name__}: {exc}. This must run as the "
            "server's Microsoft Entra administrator (postgresEntraAdminObjectId, or the deployer) signed in "
            "with azd or the Azure CLI.",
            file=sys.stderr,
        )
        return 1
    print(f"{role} {'created' if created else 'already exists'} for Entra object {object_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
