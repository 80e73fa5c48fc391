"""`python -m shared_code.db migrate [--database-url URL]`: apply `sql/` to a database.

The URL defaults to the POSTGRES_URL setting, so the deploy hook and the local host
run the same command.
"""

from __future__ import annotations

import argparse
import os
import sys

from shared_code.db.migrations import MigrationError, migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared_code.db")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations from sql/")
    migrate_cmd.add_argument("--database-url", default=os.environ.get("POSTGRES_URL"))
    args = parser.parse_args(argv)

    if not args.database_url:
        print("error: no database: pass --database-url or set POSTGRES_URL", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
