"""Rebuilding one user's home feed from PostgreSQL: who they follow (less mutes and blocks)
and their own posts, each author's recent visible posts. Idempotent."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from azure.cosmos.aio import ContainerProxy
from psycopg_pool import AsyncConnectionPool

from shared_code.services.feeds import bounded, feed_item


async def expected_feed_posts(
    pool: AsyncConnectionPool, user_id: UUID, per_author: int
) -> list[dict[str, Any]]:
    """The posts the user's feed should hold, as posts_v2-shaped dicts: each author's latest `per_author`."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """WITH authors AS (
                   SELECT %(user)s::uuid AS author_id
                   UNION
                   SELECT f.followee_id FROM follows f
                   WHERE f.follower_id = %(user)s AND f.deleted_at IS NULL
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(user)s
                                       AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                       AND ((b.blocker_id = %(user)s AND b.blocked_id = f.followee_id)
                                         OR (b.blocker_id = f.followee_id AND b.blocked_id = %(user)s))))
               SELECT p.id, p.author_id, u.username, pr.display_name, pr.avatar_url, p.content, p.created_at,
                      p.edited_at, p.version,
                      coalesce((SELECT json_agg(json_build_object('mediaId', m.id, 'contentType', m.content_type,
                                                                  'blobPath', m.blob_path) ORDER BY pm.position)
                                FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
                                WHERE pm.post_id = p.id), '[]'::json)
               FROM authors a
               CROSS JOIN LATERAL (
                   SELECT * FROM posts p WHERE p.author_id = a.author_id AND p.deleted_at IS NULL
                     AND p.status = 'visible'
                   ORDER BY p.created_at DESC, p.id DESC LIMIT %(per_author)s) p
               JOIN users u ON u.id = p.author_id AND u.deleted_at IS NULL
               JOIN profiles pr ON pr.user_id = p.author_id""",
            {"user": user_id, "per_author": per_author},
        )
        rows = await cur.fetchall()
    return [
        {
            "postId": str(r[0]),
            "authorId": str(r[1]),
            "author": {"userId": str(r[1]), "username": r[2], "displayName": r[3], "avatarUrl": r[4]},
            "content": r[5],
            "createdAt": r[6].isoformat(),
            "editedAt": r[7].isoformat() if r[7] else None,
            "version": r[8],
            "media": r[9],
        }
        for r in rows
    ]


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
