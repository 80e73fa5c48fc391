"""The caller's changes to their own notifications: marking one, or every unread one, read.

The notifications themselves are written by the projections (the relay and the reactions change
feed); the caller changes only their `read` flag, in Cosmos DB, under the request's budget.
"""

from __future__ import annotations

from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.db.unit_of_work import Transactions
from shared_code.domain.errors import NotFound
from shared_code.projections.writes import NOTIFICATIONS
from shared_code.services.projection_queries import caller

# Transactional batches take at most 100 operations.
BATCH_LIMIT = 100
# One "mark all read" marks at most this many (its cost is bounded, as its rate limit assumes); the
# client calls again while unread ones remain (docs/api.md).
MARK_ALL_READ_MAX = 1000


async def mark_read(
    run: Transactions, db: DatabaseProxy, budget: RequestBudget, notification_id: str
) -> None:
    me = str(await run(caller))
    try:
        async with budget.guard():
            await db.get_container_client(NOTIFICATIONS).patch_item(
                notification_id, me, [{"op": "set", "path": "/read", "value": True}]
            )
    except exceptions.CosmosResourceNotFoundError:
        raise NotFound("no such notification") from None


async def mark_all_read(run: Transactions, db: DatabaseProxy, budget: RequestBudget) -> int:
    """The caller's unread notifications, at most MARK_ALL_READ_MAX of them, in transactional batches
    of 100 patches (idempotent: if the budget runs out half-way, running it again marks the rest).
    Returns how many were marked."""
    me = str(await run(caller))
    container = db.get_container_client(NOTIFICATIONS)
    async with budget.guard():
        ids = [
            n["id"]
            async for n in container.query_items(
                "SELECT TOP @max c.id FROM c WHERE c.recipientId = @me AND c.read = false",
                parameters=[{"name": "@me", "value": me}, {"name": "@max", "value": MARK_ALL_READ_MAX}],
                partition_key=me,
            )
        ]
        for start in range(0, len(ids), BATCH_LIMIT):
            operations = [
                ("patch", (item_id, [{"op": "set", "path": "/read", "value": True}]))
                for item_id in ids[start : start + BATCH_LIMIT]
            ]
            await container.execute_item_batch(operations, partition_key=me)
    return len(ids)
