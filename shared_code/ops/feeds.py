"""Rebuilding one user's home feed from PostgreSQL: who they follow (less mutes and blocks)
and their own posts, each author's recent visible posts. Idempotent."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from azure.cosmos.aio import ContainerProxy
from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import system_connection
from shared_code.services.feeds import FEED_POST_COLUMNS, FeedPostRow, bounded, feed_item, feed_post_from_row


async def expected_feed_posts(
    pool: AsyncConnectionPool, user_id: UUID, per_author: int
) -> list[dict[str, Any]]:
    """The posts the user's feed should hold, as posts_v2-shaped dicts: each author's latest `per_author`."""
    async with system_connection(pool) as conn:
        rows = await fetch_all(
            conn,
            FeedPostRow,
            f"""WITH authors AS (
                   SELECT %(user)s::uuid AS author_id
                   UNION
                   SELECT f.followee_id FROM follows f
                   WHERE f.follower_id = %(user)s AND f.deleted_at IS NULL
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(user)s
                                       AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                       AND ((b.blocker_id = %(user)s AND b.blocked_id = f.followee_id)
                                         OR (b.blocker_id = f.followee_id AND b.blocked_id = %(user)s))))
               SELECT {FEED_POST_COLUMNS}
               FROM authors a
               CROSS JOIN LATERAL (
                   SELECT * FROM posts p WHERE p.author_id = a.author_id AND p.deleted_at IS NULL
                     AND p.status = 'visible'
                   ORDER BY p.created_at DESC, p.id DESC LIMIT %(per_author)s) p
               JOIN users u ON u.id = p.author_id AND u.deleted_at IS NULL
               JOIN profiles pr ON pr.user_id = p.author_id""",  # noqa: S608 (a constant)
            {"user": user_id, "per_author": per_author},
        )
    return [feed_post_from_row(row) for row in rows]


async def rebuild_feed(
    pool: AsyncConnectionPool, feed: ContainerProxy, user_id: UUID, per_author: int, concurrency: int = 64
) -> dict[str, int]:
    """Make the user's feed exactly what PostgreSQL says it should hold."""
    recipient = str(user_id)
    expected = {post["postId"]: post for post in await expected_feed_posts(pool, user_id, per_author)}
    present = [
        item
        async for item in feed.query_items(
            "SELECT c.id, c.postId FROM c WHERE c.recipientId = @r",
            parameters=[{"name": "@r", "value": recipient}],
            partition_key=recipient,
        )
    ]
    stale = [item["id"] for item in present if item["postId"] not in expected]
    removed = await bounded(
        stale, lambda item_id: feed.delete_item(item_id, partition_key=recipient), concurrency
    )
    written = await bounded(
        list(expected.values()), lambda post: feed.upsert_item(feed_item(recipient, post)), concurrency
    )
    return {"written": written, "removed": removed}
