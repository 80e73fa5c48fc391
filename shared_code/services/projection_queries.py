"""How a read asks Cosmos DB: one page of one partition, a point read, a cache refill, under the
request's `RequestBudget`. Shared by the reads of each feature (feed_reads, notification_reads,
profile_reads, reaction_reads).

The rule every read keeps: no PostgreSQL transaction stays open while Cosmos DB is asked. A read
takes `run: Transactions` (not a unit of work) and runs its PostgreSQL steps in short transactions
of their own, so a slow or absent Cosmos DB cannot hold the pool's connections that writes need.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import CosmosUnavailable, RequestBudget
from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.projections.writes import VersionedUpsert

log = logging.getLogger("chorus.reads")


async def caller(uow: UnitOfWork) -> UUID:
    return uow.require_user()


async def page(
    container: Any,
    query: str,
    parameters: list[dict[str, Any]],
    partition_key: str,
    limit: int,
    continuation: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One single-partition page and the continuation token for the next."""
    pages = container.query_items(
        query, parameters=parameters, partition_key=partition_key, max_item_count=limit
    ).by_page(continuation)
    try:
        first = await pages.__anext__()
    except StopAsyncIteration:
        return [], None
    items = [item async for item in first]
    return items, pages.continuation_token or None


def continuation_of(cursors: CursorCodec, scope: str, cursor: str | None) -> str | None:
    return str(cursors.decode(scope, cursor)["c"]) if cursor else None


def next_cursor(cursors: CursorCodec, scope: str, continuation: str | None) -> str | None:
    return cursors.encode(scope, {"c": continuation}) if continuation else None


async def refill(db: DatabaseProxy, budget: RequestBudget, writes: list[VersionedUpsert]) -> None:
    """Write rebuilt cache documents back, if Cosmos DB answers in time; the next read tries again."""
    if not writes:
        return
    try:
        async with budget.guard():
            await CosmosWriter(db).apply_all(writes)
    except CosmosUnavailable as exc:
        log.info("counters cache not refilled (%s); a later read refills it", exc.reason)


async def read_or_none(db: DatabaseProxy, container: str, item_id: str, key: str) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = await db.get_container_client(container).read_item(item_id, key)
    except exceptions.CosmosResourceNotFoundError:
        return None
    return document
