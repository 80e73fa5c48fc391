"""Reading a test database as its owner: outbox rows and the rows the app wrote.

The owner (a superuser) bypasses row-level security, so a test sees every row
whatever the app's login may see. Every outbox row read through `OwnerDb.events`
is checked against the event models in shared_code/domain/events.py: its payload
must parse, and its aggregate type must be the one its event type belongs to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow

from shared_code.domain.events import EVENT_TYPES, EventPayload, parse_event

_COLUMNS = (
    "id, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload, metadata, status"
)


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: UUID
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int
    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    status: str

    @property
    def model(self) -> EventPayload:
        return parse_event(self.event_type, self.payload)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(event type, aggregate type, aggregate id, version): what most assertions compare."""
        return self.event_type, self.aggregate_type, str(self.aggregate_id), self.aggregate_version


def _checked(row: Sequence[Any]) -> OutboxEvent:
    event = OutboxEvent(*row)
    model_class = EVENT_TYPES.get(event.event_type)
    assert model_class is not None, f"outbox row {event.id} has an unknown event type {event.event_type!r}"
    assert event.aggregate_type == model_class.aggregate_type, (
        f"{event.event_type} recorded on aggregate type {event.aggregate_type!r}, "
        f"not {model_class.aggregate_type!r}"
    )
    # Raises if the stored payload does not match its model (extra fields are forbidden there).
    event.model  # noqa: B018
    return event


def keys(events: Iterable[OutboxEvent]) -> list[tuple[str, str, str, int]]:
    return [event.key for event in events]


def versions_by_aggregate(events: Iterable[OutboxEvent]) -> dict[tuple[str, str], list[int]]:
    """Each aggregate's event versions, in outbox (commit) order."""
    result: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in events:
        result[(event.aggregate_type, str(event.aggregate_id))].append(event.aggregate_version)
    return dict(result)


def assert_versions_step_by_one(events: Iterable[OutboxEvent]) -> None:
    """Per aggregate, each event's version is the previous one plus one (no gaps, no repeats)."""
    for aggregate, versions in versions_by_aggregate(events).items():
        expected = list(range(versions[0], versions[0] + len(versions)))
        assert versions == expected, f"{aggregate}: versions {versions}, expected {expected}"


class OwnerDb:
    """An owner's connection to the test's database (autocommit)."""

    def __init__(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, database_url: str) -> Self:
        return cls(await psycopg.AsyncConnection.connect(database_url, autocommit=True))

    async def close(self) -> None:
        await self.conn.close()

    async def execute(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        cur = await self.conn.execute(query, params)
        return cur.rowcount

    async def rows(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(query, params)
        return await cur.fetchall()

    async def row(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        cur = await self.conn.execute(query, params)
        return await cur.fetchone()

    async def scalar(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = await self.row(query, params)
        assert row is not None, f"no row for {query!r}"
        return row[0]

    async def count(
        self, table: str, where: str = "true", params: Sequence[Any] | dict[str, Any] | None = None
    ) -> int:
        """Rows of `table` matching `where` (both written by tests, never from input)."""
        return int(await self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", params))

    # --- the outbox ---------------------------------------------------------------------------

    async def mark(self) -> int:
        """The newest outbox id now: pass it to `events(after=...)` to see only what comes next."""
        return int(await self.scalar("SELECT coalesce(max(id), 0) FROM outbox"))

    async def events(self, after: int = 0, *, event_type: str | None = None) -> list[OutboxEvent]:
        """Outbox rows after id `after`, in id order, each checked against its event model."""
        rows = await self.rows(
            f"""SELECT {_COLUMNS} FROM outbox
                WHERE id > %s AND (%s::text IS NULL OR event_type = %s) ORDER BY id""",
            (after, event_type, event_type),
        )
        return [_checked(row) for row in rows]

    async def event_count(self) -> int:
        return await self.count("outbox")

    async def version(
        self, table: str, where: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> int:
        """The `version` column of the one row of `table` matching `where`."""
        return int(await self.scalar(f"SELECT version FROM {table} WHERE {where}", params))
