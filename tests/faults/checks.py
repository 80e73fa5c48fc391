"""What the fault tests read back from the stores: the truth in PostgreSQL, the projections in
Cosmos DB, and what an Event Hubs consumer received."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import psycopg
from azure.cosmos.aio import DatabaseProxy


async def scalar(conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None) -> Any:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return row[0] if row else None


async def outbox_since(conn: psycopg.AsyncConnection[Any], since_id: int) -> dict[str, int]:
    """Events written after outbox id `since_id`: how many by status, and attempts spent on them."""
    cur = await conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'pending'),
                  count(*) FILTER (WHERE status = 'published'),
                  count(*) FILTER (WHERE status = 'dead'),
                  count(*) FILTER (WHERE attempts > 0),
                  count(*)
           FROM outbox WHERE id > %s""",
        (since_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(zip(("pending", "published", "dead", "retried", "total"), map(int, row), strict=True))


async def last_outbox_id(conn: psycopg.AsyncConnection[Any]) -> int:
    return int(await scalar(conn, "SELECT coalesce(max(id), 0) FROM outbox"))


async def feed_recipients(cosmos: DatabaseProxy, post_id: str) -> list[str]:
    """Whose home feed holds `post_id` (one entry per feed item)."""
    container = cosmos.get_container_client("userFeed")
    return [
        str(r)
        async for r in container.query_items(
            "SELECT VALUE c.recipientId FROM c WHERE c.postId = @p",
            parameters=[{"name": "@p", "value": post_id}],
        )
    ]


async def feed_size(cosmos: DatabaseProxy, post_id: str) -> int:
    container = cosmos.get_container_client("userFeed")
    counts = [
        int(n)  # type: ignore[call-overload]  # a VALUE query yields numbers, not documents
        async for n in container.query_items(
            "SELECT VALUE COUNT(1) FROM c WHERE c.postId = @p", parameters=[{"name": "@p", "value": post_id}]
        )
    ]
    return sum(counts)


async def reaction_counts(cosmos: DatabaseProxy, post_id: str) -> dict[str, int]:
    container = cosmos.get_container_client("counters")
    docs = [
        d
        async for d in container.query_items(
            "SELECT * FROM c WHERE c.id = @id",
            parameters=[{"name": "@id", "value": f"{post_id}:counts"}],
            partition_key=post_id,
        )
    ]
    return dict(docs[0].get("reactions", {})) if docs else {}


async def notifications_of(cosmos: DatabaseProxy, recipient_id: str) -> list[dict[str, Any]]:
    container = cosmos.get_container_client("notifications")
    return [
        d
        async for d in container.query_items(
            "SELECT * FROM c WHERE c.recipientId = @r",
            parameters=[{"name": "@r", "value": recipient_id}],
            partition_key=recipient_id,
        )
    ]


def duplicate_notifications(notifications: list[dict[str, Any]]) -> int:
    """Notifications that say the same thing twice (same kind, actor and subject)."""
    seen = Counter((n.get("type"), n.get("actorId"), n.get("subjectId")) for n in notifications)
    return sum(count - 1 for count in seen.values())


def envelopes(published: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event envelopes in what the Event Hubs consumer received, with the partition key kept."""
    found = []
    for message in published:
        body = message.get("body")
        envelope = json.loads(body) if isinstance(body, str) else body
        if isinstance(envelope, dict):
            found.append({**envelope, "_partitionKey": message.get("partitionKey")})
    return found


def delivery_report(published: list[dict[str, Any]], event_ids: set[str]) -> dict[str, Any]:
    """For the given events: which arrived, how many twice, whether each aggregate's events arrived
    in version order (first deliveries) and whether each was keyed by its aggregate id."""
    mine = [e for e in envelopes(published) if str(e.get("id")) in event_ids]
    ids = Counter(str(e["id"]) for e in mine)
    first_versions: dict[str, list[int]] = {}
    seen: set[str] = set()
    for e in mine:
        if str(e["id"]) in seen:
            continue
        seen.add(str(e["id"]))
        first_versions.setdefault(str(e["aggregate"]["id"]), []).append(int(e["version"]))
    return {
        "event_ids": set(ids),
        "duplicates": sum(n - 1 for n in ids.values()),
        "in_order": all(v == sorted(v) for v in first_versions.values()),
        "keyed_by_aggregate": all(e["_partitionKey"] == str(e["aggregate"]["id"]) for e in mine),
    }
