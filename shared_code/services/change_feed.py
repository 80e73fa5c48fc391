"""What the Cosmos DB change-feed functions do, and what happens when they cannot.

- posts_v2 → userFeed: each changed post is fanned out to (or removed from) its
  recipients' feeds.
- reactions → counters and notifications: the counts a reaction document carries
  are written to the post's counter (only if newer), and the post's author is
  notified once per reacting user.
A batch that still fails after the function's retries is recorded in
`change_feed_failures` with its documents, for an operator to replay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.app_context import AppContext
from shared_code.outbox.assembly import feed_service
from shared_code.projections.documents import reaction_side_effects
from shared_code.services.feeds import bounded

log = logging.getLogger("chorus.change_feed")

# Posts of one batch are fanned out this many at a time (each fans out with its own bound).
POSTS_IN_PARALLEL = 4


async def fan_out_posts(ctx: AppContext, posts: Sequence[dict[str, Any]]) -> int:
    feeds = feed_service(ctx)
    written = 0

    async def one(post: dict[str, Any]) -> None:
        nonlocal written
        count = await feeds.fan_out_post(post)
        written += count
        log.info(
            "fan-out of post %s (v%s, %s): %d feed item(s)",
            post.get("postId"),
            post.get("version"),
            "visible" if count and not post.get("deleted") else "removed",
            count,
            extra={"correlationId": post.get("correlationId")},
        )

    await bounded(posts, one, POSTS_IN_PARALLEL)
    return written


async def apply_reactions(ctx: AppContext, reactions: Sequence[dict[str, Any]]) -> int:
    """Counters and notifications for a batch of reaction documents: O(1) requests each."""
    writes = [write for reaction in reactions for write in reaction_side_effects(reaction)]
    await CosmosWriter(ctx.cosmos_db).apply_all(writes)
    for reaction in reactions:
        log.info(
            "reaction %s on post %s applied to counters (counts v%s)",
            reaction.get("id"),
            reaction.get("postId"),
            reaction.get("postCounts", {}).get("version"),
            extra={"correlationId": reaction.get("correlationId")},
        )
    return len(writes)


async def record_failure(
    ctx: AppContext, function: str, container: str, documents: Sequence[dict[str, Any]], error: BaseException
) -> int:
    """Keep a batch that could not be handled; returns the failure's id. The same batch delivered again
    (the change feed is at least once) while its failure is still open is kept once, not twice."""
    correlation_ids = sorted({str(d["correlationId"]) for d in documents if d.get("correlationId")})
    async with ctx.pg_pool.connection() as conn:
        cur = await conn.execute(
            """WITH still_open AS (
                   SELECT id FROM change_feed_failures
                   WHERE function = %(function)s AND container = %(container)s AND documents = %(documents)s
                     AND replayed_at IS NULL
                   LIMIT 1),
               inserted AS (
                   INSERT INTO change_feed_failures (function, container, documents, error, correlation_ids)
                   SELECT %(function)s, %(container)s, %(documents)s, %(error)s, %(correlation_ids)s
                   WHERE NOT EXISTS (SELECT 1 FROM still_open)
                   RETURNING id)
               SELECT id FROM inserted UNION ALL SELECT id FROM still_open""",
            {
                "function": function,
                "container": container,
                "documents": Jsonb(list(documents)),
                "error": f"{type(error).__name__}: {error}"[:2000],
                "correlation_ids": correlation_ids,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    log.error(
        "%s could not handle %d %s document(s) after its retries (%s: %s); recorded as change feed failure %d "
        "for replay (correlation ids: %s)",
        function,
        len(documents),
        container,
        type(error).__name__,
        error,
        row[0],
        ", ".join(correlation_ids),
    )
    return int(row[0])
