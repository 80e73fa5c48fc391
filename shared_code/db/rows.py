"""Rows read as typed objects, by column name: `fetch_one(conn, Me, sql, params)` builds a `Me` from a
row whose columns are named as its fields (psycopg's class_row), so a reordered SELECT cannot shift a
value into the wrong field. A single scalar (`SELECT count(*)`) is still read by position."""

from __future__ import annotations

from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.abc import Params, QueryNoTemplate
from psycopg.rows import class_row

R = TypeVar("R")


async def fetch_one(
    conn: AsyncConnection[Any], row_type: type[R], query: QueryNoTemplate, params: Params | None = None
) -> R | None:
    async with conn.cursor(row_factory=class_row(row_type)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(
    conn: AsyncConnection[Any],
    row_type: type[R],
    query: QueryNoTemplate,
    params: Params | None = None,
    *,
    prepare: bool | None = None,
) -> list[R]:
    """`prepare=False`: never as a prepared statement, so that each run is planned for its values."""
    async with conn.cursor(row_factory=class_row(row_type)) as cur:
        await cur.execute(query, params, prepare=prepare)
        return await cur.fetchall()
