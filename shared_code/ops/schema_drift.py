"""Schema drift: how the live database differs from what `sql/` defines.

What `sql/` defines is captured in `sql/schema.snapshot.json` by applying every
migration to an empty database and reading the catalog (`python -m shared_code.ops
schema-snapshot`); a test keeps that file in step with the migrations. The live
database is read the same way and compared: tables, columns (type, nullability,
default), indexes and constraints, plus applied migrations whose file has changed.
The app's own login can do this: it needs no privilege to create databases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from shared_code.db.migrations import SQL_DIR, discover, verify_applied

SNAPSHOT_FILE = SQL_DIR / "schema.snapshot.json"

# Each catalog query names its columns; read_schema reads them by name (dict_row).
_TABLES = """
SELECT c.relname AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"""
# From the catalog rather than information_schema, which hides columns the reader has no
# privilege on (the app's login cannot read schema_migrations' columns that way).
_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type,
       NOT a.attnotnull AS nullable, coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS default_value
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 2"""
_INDEXES = """
SELECT tablename AS table_name, indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"""
_CONSTRAINTS = """
SELECT cl.relname AS table_name, co.conname AS name, pg_get_constraintdef(co.oid) AS definition
FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
WHERE n.nspname = 'public' ORDER BY 1, 2"""
_POLICIES = """
SELECT tablename AS table_name, policyname AS name, cmd, coalesce(qual, '') AS qual,
       coalesce(with_check, '') AS with_check
FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2"""


def read_schema(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The public schema as plain, comparable data."""

    def rows(query: str) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query).fetchall()

    return {
        "tables": [r["table_name"] for r in rows(_TABLES)],
        "columns": {
            f"{r['table_name']}.{r['column_name']}": (
                f"{r['data_type']} {'NULL' if r['nullable'] else 'NOT NULL'} {r['default_value']}".strip()
            )
            for r in rows(_COLUMNS)
        },
        "indexes": {f"{r['table_name']}.{r['name']}": r["definition"] for r in rows(_INDEXES)},
        "constraints": {f"{r['table_name']}.{r['name']}": r["definition"] for r in rows(_CONSTRAINTS)},
        "policies": {
            f"{r['table_name']}.{r['name']}": f"{r['cmd']} USING ({r['qual']}) CHECK ({r['with_check']})"
            for r in rows(_POLICIES)
        },
    }


def write_snapshot(database_url: str, path: Path = SNAPSHOT_FILE) -> None:
    """Read a database freshly migrated from `sql/` and save what it holds as the expected schema."""
    with psycopg.connect(database_url) as conn:
        schema = read_schema(conn)
    path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def expected_schema(path: Path = SNAPSHOT_FILE) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@dataclass
class DriftReport:
    differences: list[dict[str, str]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.differences)

    def add(self, kind: str, name: str, problem: str, expected: str = "", live: str = "") -> None:
        entry = {"kind": kind, "name": name, "problem": problem}
        if expected:
            entry["expected"] = expected
        if live:
            entry["live"] = live
        self.differences.append(entry)

    def to_json(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "differences": self.differences}


def compare(expected: dict[str, Any], live: dict[str, Any]) -> DriftReport:
    report = DriftReport()
    for table in sorted(set(expected["tables"]) - set(live["tables"])):
        report.add("table", table, "missing")
    for table in sorted(set(live["tables"]) - set(expected["tables"])):
        report.add("table", table, "extra")
    for kind in ("columns", "indexes", "constraints", "policies"):
        want, have = expected[kind], live[kind]
        singular = kind.rstrip("s").replace("indexe", "index").replace("policie", "policy")
        for name in sorted(set(want) - set(have)):
            report.add(singular, name, "missing", expected=want[name])
        for name in sorted(set(have) - set(want)):
            report.add(singular, name, "extra", live=have[name])
        for name in sorted(set(want) & set(have)):
            if want[name] != have[name]:
                report.add(singular, name, "changed", expected=want[name], live=have[name])
    return report


def detect_drift(database_url: str) -> DriftReport:
    """The live database against `sql/`: schema objects and changed applied migrations."""
    with psycopg.connect(database_url) as conn:
        live = read_schema(conn)
        migration_problems = verify_applied(conn, discover())
    report = compare(expected_schema(), live)
    for problem in migration_problems:
        report.add("migration", problem.split(" ", 1)[0], problem)
    return report
