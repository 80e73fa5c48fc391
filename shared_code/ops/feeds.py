"""Rebuilding one user's home feed from PostgreSQL: who they follow (less mutes and blocks)
and their own posts, each author's recent visible posts. Idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from azure.cosmos.aio import ContainerProxy
from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import system_connection
from shared_code.domain.feed_merge import item_ttl_seconds, parse_time
from shared_code.services.feeds import FEED_POST_COLUMNS, FeedPostRow, bounded, feed_item, feed_post_from_row

# What feeds keep when no setting says otherwise (FEED_ITEM_TTL_DAYS).
DEFAULT_FEED_RETENTION = timedelta(days=30)


async def expected_feed_posts(
    pool: AsyncConnectionPool, user_id: UUID, per_author: int, not_before: datetime | None = None
) -> list[dict[str, Any]]:
    """The posts the user's feed should hold, as posts_v2-shaped dicts: each author's latest `per_author`,
    created after `not_before` (what feeds keep), less the posts in their author's pull window (reads
    pull those from authorPosts: they are never copied into feeds)."""
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
                     AND p.status = 'visible' AND p.created_at > %(not_before)s
                     AND NOT EXISTS (SELECT 1 FROM fanout_pull_windows w WHERE w.author_id = p.author_id
                                       AND p.created_at >= w.pulled_since
                                       AND (w.pulling OR p.created_at <= w.pulled_last))
                   ORDER BY p.created_at DESC, p.id DESC LIMIT %(per_author)s) p
               JOIN users u ON u.id = p.author_id AND u.deleted_at IS NULL
               JOIN profiles pr ON pr.user_id = p.author_id""",  # noqa: S608 (a constant)
            {
                "user": user_id,
                "per_author": per_author,
                "not_before": not_before or datetime.min.replace(tzinfo=UTC),
            },
        )
    return [feed_post_from_row(row) for row in rows]


async def rebuild_feed(
    pool: AsyncConnectionPool,
    feed: ContainerProxy,
    user_id: UUID,
    per_author: int,
    concurrency: int = 64,
    item_ttl: timedelta = DEFAULT_FEED_RETENTION,
) -> dict[str, int]:
    """Make the user's feed exactly what PostgreSQL says it should hold (each item expiring with its
    post's age, as fan-out writes it)."""
    recipient = str(user_id)
    now = datetime.now(UTC)
    posts = await expected_feed_posts(pool, user_id, per_author, now - item_ttl)
    expected = {post["postId"]: post for post in posts}
    present = [
        item
        async for item in feed.query_items(
            "SELECT c.id, c.postId FROM c WHERE c.recipientId = @r AND IS_DEFINED(c.postId)",
            parameters=[{"name": "@r", "value": recipient}],
            partition_key=recipient,
        )
    ]
    stale = [item["id"] for item in present if item["postId"] not in expected]
    removed = await bounded(
        stale, lambda item_id: feed.delete_item(item_id, partition_key=recipient), concurrency
    )

    async def write(post: dict[str, Any]) -> None:
        ttl = item_ttl_seconds(parse_time(post["createdAt"]), now, item_ttl)
        if ttl is not None:
            await feed.upsert_item({**feed_item(recipient, post), "ttl": ttl})

    written = await bounded(list(expected.values()), write, concurrency)
    return {"written": written, "removed": removed}
