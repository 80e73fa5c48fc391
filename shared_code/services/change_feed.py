"""What the Cosmos DB change-feed functions do, and what happens when they cannot.

- posts_v2 → userFeed: each changed post is fanned out to (or removed from) its
  recipients' feeds.
- reactions → counters and notifications: the counts a reaction document carries
  are written to the post's counter (only if newer), and the post's author is
  notified once per reacting user.
A batch that still fails after the function's retries is recorded in
`change_feed_failures` with its documents, for an operator to replay once
(`replay_failure`: the admin route and `python -m shared_code.ops`).

`ChangeFeedService` is given what it uses (the pool, the feed service, the Cosmos writer) by the
composition root, `shared_code.bootstrap.change_feed_service`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import system_connection
from shared_code.domain.errors import Conflict, NotFound, Unavailable
from shared_code.observability import bounded_correlation_id
from shared_code.projections.documents import reaction_side_effects
from shared_code.services.feeds import FeedService, bounded, shows_in_feeds
from shared_code.services.notification_settings import NotificationGate

log = logging.getLogger("chorus.change_feed")

# Posts of one batch are fanned out this many at a time (each fans out with its own bound).
POSTS_IN_PARALLEL = 4


# The oldest open failures listed at once; an operator works through them oldest first.
FAILURES_LISTED = 500


@dataclass(frozen=True)
class _FailureToReplay:
    function: str
    container: str
    documents: list[dict[str, Any]]
    replayed_at: datetime | None
    replayed_by: str | None


@dataclass(frozen=True)
class OpenFailure:
    id: int
    function: str
    container: str
    document_ids: list[str]
    error: str
    correlation_ids: list[str]
    failed_at: datetime


@dataclass(frozen=True)
class ChangeFeedService:
    """The change-feed functions' work and the operator's replay of what failed."""

    pool: AsyncConnectionPool
    feeds: FeedService
    writer: CosmosWriter
    # Notifications a recipient turned off, or may not see, are not written (None: all are).
    notifications: NotificationGate | None = None

    async def fan_out_posts(self, posts: Sequence[dict[str, Any]]) -> int:
        feeds = self.feeds
        written = 0

        async def one(post: dict[str, Any]) -> None:
            nonlocal written
            count = await feeds.fan_out_post(post)
            written += count
            log.info(
                "fan-out of post %s (v%s, %s): %d feed item(s)",
                post.get("postId"),
                post.get("version"),
                "visible" if shows_in_feeds(post) else "removed",
                count,
                extra={"correlationId": post.get("correlationId")},
            )

        await bounded(posts, one, POSTS_IN_PARALLEL)
        return written

    async def apply_reactions(self, reactions: Sequence[dict[str, Any]]) -> int:
        """Counters and notifications for a batch of reaction documents: O(1) requests each."""
        writes = [write for reaction in reactions for write in reaction_side_effects(reaction)]
        if self.notifications is not None:
            writes = await self.notifications.admit(writes)
        await self.writer.apply_all(writes)
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
        self, function: str, container: str, documents: Sequence[dict[str, Any]], error: BaseException
    ) -> int:
        """Keep a batch that could not be handled; returns the failure's id. The same batch delivered again
        (the change feed is at least once) while its failure is still open is kept once, not twice."""
        correlation_ids = sorted(
            filter(None, {bounded_correlation_id(d.get("correlationId")) for d in documents})
        )
        async with system_connection(self.pool) as conn:
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

    async def open_failures(self, limit: int = FAILURES_LISTED) -> tuple[list[OpenFailure], bool]:
        """Recorded failures not replayed yet, oldest first; and whether there are more than `limit`."""
        async with system_connection(self.pool) as conn:
            rows = await fetch_all(
                conn,
                OpenFailure,
                """SELECT id, function, container,
                          ARRAY(SELECT d ->> 'id' FROM jsonb_array_elements(documents) d
                                WHERE d ->> 'id' IS NOT NULL) AS document_ids,
                          error, correlation_ids, failed_at
                   FROM change_feed_failures WHERE replayed_at IS NULL
                   ORDER BY failed_at, id LIMIT %s""",
                (limit + 1,),
            )
        return rows[:limit], len(rows) > limit

    async def replay_failure(self, failure_id: int, replayed_by: str) -> int:
        """Hand a recorded failed batch to its function once more; returns how many documents it had.

        Once: the failure's row stays locked while its batch is handled, and is marked replayed in the same
        transaction, so a second replay (at once or later) finds it replayed and is refused (Conflict). If
        the batch fails again, nothing is marked and the failure stays open (Unavailable: retry later).
        Safe however old the batch is: fan-out and counters never go backwards (see services/feeds.py).
        """
        async with system_connection(self.pool) as conn, conn.transaction():
            failure = await fetch_one(
                conn,
                _FailureToReplay,
                """SELECT function, container, documents, replayed_at, replayed_by
                   FROM change_feed_failures WHERE id = %s FOR UPDATE""",
                (failure_id,),
            )
            if failure is None:
                raise NotFound(f"there is no change feed failure {failure_id}")
            function, container, documents = failure.function, failure.container, failure.documents
            replayed_at, by = failure.replayed_at, failure.replayed_by
            if replayed_at is not None:
                raise Conflict(
                    f"change feed failure {failure_id} was already replayed at {replayed_at.isoformat()}"
                    f"{f' by {by}' if by else ''}; nothing was done again",
                    replayedAt=replayed_at.isoformat(),
                )
            handler = self._handlers().get(function)
            if handler is None:
                raise Conflict(
                    f"change feed failure {failure_id} belongs to function {function!r}, which this app does "
                    "not have; nothing was done"
                )
            try:
                await handler(documents)
            except Exception as exc:
                log.error(
                    "replay of change feed failure %d (%s, %d %s document(s)) failed again: %s: %s",
                    failure_id,
                    function,
                    len(documents),
                    container,
                    type(exc).__name__,
                    exc,
                )
                raise Unavailable(
                    f"the replay of change feed failure {failure_id} failed again ({type(exc).__name__}); "
                    "it stays open: retry once the cause is fixed"
                ) from exc
            await conn.execute(
                "UPDATE change_feed_failures SET replayed_at = now(), replayed_by = %s WHERE id = %s",
                (replayed_by, failure_id),
            )
        log.warning(
            "change feed failure %d (%s, %d %s document(s)) replayed by %s",
            failure_id,
            function,
            len(documents),
            container,
            replayed_by,
        )
        return len(documents)

    def _handlers(self) -> dict[str, Callable[[Sequence[dict[str, Any]]], Awaitable[int]]]:
        """What each change-feed function does with a batch: a recorded failure is replayed through the
        same code."""
        return {"fan_out_posts": self.fan_out_posts, "count_reactions": self.apply_reactions}
