"""Applies the numbered plain-SQL migrations in `sql/` to a database.

Each file runs once, in its own transaction, and is recorded in
`schema_migrations` with a SHA-256 of its text. A file that changed after it was
applied is refused: the fix for a released migration is a new migration. A
session advisory lock serialises concurrent runners (two instances deploying at
once).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every runner.
_ADVISORY_LOCK_KEY = 0x43686F7275  # "Choru"


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message says which file and why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files in {sql_dir} share a number")
    return migrations


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version → (name, checksum) of what this database has applied."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {row["version"]: (row["name"], row["checksum"]) for row in rows}


def verify_applied(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    """Problems with already-applied files: changed or missing. Empty when all is well."""
    known = {m.version: m for m in migrations}
    problems = []
    for version, (name, checksum) in sorted(applied(conn).items()):
        migration = known.get(version)
        if migration is None:
            problems.append(f"{name} was applied to this database but is not in sql/")
        elif migration.checksum != checksum:
            problems.append(
                f"{migration.name} changed after it was applied (checksum differs); "
                "restore it and put the change in a new migration"
            )
    return problems


def migrate(database_url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; return the names applied. Raises MigrationError."""
    migrations = discover(sql_dir)
    done = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            problems = verify_applied(conn, migrations)
            if problems:
                raise MigrationError("; ".join(problems))
            already = applied(conn)
            for migration in migrations:
                if migration.version in already:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.name} failed and was rolled back: {exc}") from exc
                done.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return done
