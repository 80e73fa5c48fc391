"""The caller's home feed, read from the `userFeed` projection; from PostgreSQL when Cosmos DB is
away (the response is then marked degraded: header Chorus-Degraded). A fixed, small number of Cosmos
requests per page (docs/read-costs.md); PostgreSQL is asked only who the caller is and what they must
not see, in short transactions of their own (services/projection_queries.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import CosmosUnavailable, RequestBudget
from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import BadCursor
from shared_code.metrics import record_degraded_read
from shared_code.projections.writes import FEED
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author
from shared_code.schemas.reads import FeedItem
from shared_code.services.feed_hydration import hydrate_feed_entries, media_of
from shared_code.services.feeds import FEED_POST_COLUMNS, FeedPostRow
from shared_code.services.projection_queries import caller, page
from shared_code.services.reaction_counts import full_reaction_counts

log = logging.getLogger("chorus.reads")


@dataclass(frozen=True)
class _FeedPostWithCounts(FeedPostRow):
    reactions: dict[str, int] | None
    comments: int


# --- the home feed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedRead:
    page: Page[FeedItem]
    # Served from PostgreSQL because Cosmos DB was away (or the pagination began while it was).
    from_postgres: bool = False


async def read_feed(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    limit: int,
    cursor: str | None,
) -> FeedRead:
    """The caller's home feed from `userFeed`; from PostgreSQL when Cosmos DB is away.

    A cursor of a Cosmos page carries the continuation token and the (createdAt, postId) of its last
    item, so a pagination can go on from PostgreSQL if Cosmos DB goes away half-way; a cursor issued
    from PostgreSQL carries only the keyset, and its pagination goes on from PostgreSQL to its end."""
    me = str(await run(caller))
    scope = f"feed:{me}"
    position = cursors.decode(scope, cursor) if cursor else {}
    if cursor and "c" not in position:
        return await _feed_from_postgres(run, cursors, media_urls, me, scope, limit, _keyset(position))
    try:
        async with budget.guard():
            items, continuation = await page(
                db.get_container_client(FEED),
                "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC",
                [{"name": "@me", "value": me}],
                me,
                limit,
                position.get("c"),
            )
        hidden = await run(lambda uow: _not_to_show(uow, me, items)) if items else set()
        shown = [item for item in items if item["postId"] not in hidden and item["authorId"] not in hidden]
        # The current post, author and counts of each entry: feed items are references (feed_hydration).
        hydrated = await hydrate_feed_entries(db, run, shown, media_urls, budget)
    except CosmosUnavailable as exc:
        if cursor and "t" not in position:
            raise  # a cursor issued before cursors carried a keyset cannot go on from PostgreSQL
        log.warning(
            "home feed served from PostgreSQL: Cosmos DB is not answering (%s). Feeds come from the "
            "canonical tables until it answers again; see docs/reliability.md",
            exc.reason,
        )
        after = _keyset(position) if cursor else None
        return await _feed_from_postgres(run, cursors, media_urls, me, scope, limit, after)
    next_position: dict[str, Any] = {"c": continuation}
    if items:  # where the page ended, for going on from PostgreSQL should Cosmos DB go away
        next_position.update(t=items[-1]["createdAt"], id=items[-1]["postId"])
    return FeedRead(
        Page[FeedItem](
            items=hydrated,
            next_cursor=cursors.encode(scope, next_position) if continuation else None,
        )
    )


def _keyset(position: dict[str, Any]) -> tuple[datetime, UUID]:
    try:
        return datetime.fromisoformat(position["t"]), UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise BadCursor("the cursor is not one this API issued") from None


async def _feed_from_postgres(
    run: Transactions,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    me: str,
    scope: str,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> FeedRead:
    """The feed as the projections would hold it, from the canonical tables: the visible posts of the
    caller and of whom they follow, less muted authors and blocks either way, newest first."""
    record_degraded_read("feed")
    rows = await run(lambda uow: _feed_rows(uow, UUID(me), limit + 1, after))
    items = [_feed_item_from_row(row, media_urls) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return FeedRead(
        Page[FeedItem](
            items=items,
            next_cursor=cursors.time_cursor(scope, last.created_at, last.post_id) if last else None,
        ),
        from_postgres=True,
    )


# The fallback feed must answer within the request's 3 s even for someone who follows thousands,
# and must not overload PostgreSQL while every feed read falls back to it.
FEED_FALLBACK_STATEMENT_TIMEOUT_MS = 1000


async def _feed_rows(
    uow: UnitOfWork, me: UUID, limit: int, after: tuple[datetime, UUID] | None
) -> list[_FeedPostWithCounts]:
    """The newest `limit` posts of the authors the caller sees, each author's read from the
    (author_id, created_at, id) index and cut at `limit`: the cost grows with the authors followed
    times the page size, not with how much they have written."""
    params: dict[str, Any] = {"me": me, "limit": limit}
    keyset = ""
    if after is not None:
        params["after_time"], params["after_id"] = after
        keyset = "AND (p0.created_at, p0.id) < (%(after_time)s, %(after_id)s)"
    await uow.conn.execute(
        "SELECT set_config('statement_timeout', %s, true)", (str(FEED_FALLBACK_STATEMENT_TIMEOUT_MS),)
    )
    return await fetch_all(
        uow.conn,
        _FeedPostWithCounts,
        f"""WITH authors AS (
                SELECT f.followee_id AS id FROM follows f
                WHERE f.follower_id = %(me)s AND f.deleted_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(me)s
                                    AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                    AND ((b.blocker_id = %(me)s AND b.blocked_id = f.followee_id)
                                         OR (b.blocker_id = f.followee_id AND b.blocked_id = %(me)s)))
                UNION SELECT %(me)s::uuid)
            SELECT {FEED_POST_COLUMNS}, pc.reactions, pc.comments
            FROM authors a
            CROSS JOIN LATERAL (
                SELECT p0.* FROM posts p0
                WHERE p0.author_id = a.id AND p0.deleted_at IS NULL AND p0.status = 'visible' {keyset}
                ORDER BY p0.created_at DESC, p0.id DESC LIMIT %(limit)s) p
            JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
            JOIN post_counts pc ON pc.post_id = p.id
            ORDER BY p.created_at DESC, p.id DESC
            LIMIT %(limit)s""",  # noqa: S608 (constants and a fixed keyset clause; values are parameters)
        params,
    )


async def _not_to_show(uow: UnitOfWork, me: str, items: list[dict[str, Any]]) -> set[str]:
    """Authors the caller muted or is blocked with, and posts deleted, hidden or removed since they were
    fanned out: one PostgreSQL round trip, so such posts never show even before the projections catch up."""
    if not items:
        return set()
    cur = await uow.conn.execute(
        """SELECT muted_id::text FROM mutes WHERE muter_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT blocked_id::text FROM blocks WHERE blocker_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT blocker_id::text FROM blocks WHERE blocked_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT id::text FROM posts
                     WHERE id = ANY(%(posts)s) AND (deleted_at IS NOT NULL OR status <> 'visible')""",
        {"me": UUID(me), "posts": [UUID(item["postId"]) for item in items]},
    )
    return {row[0] for row in await cur.fetchall()}


def _feed_item_from_row(row: _FeedPostWithCounts, media_urls: MediaUrls) -> FeedItem:
    """A FeedItem from the canonical tables, shaped as hydration shapes one from the projections."""
    return FeedItem(
        post_id=row.post_id,
        author_id=row.author_id,
        author=Author(
            user_id=row.author_id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        ),
        content=row.content,
        media=media_of(row.media, media_urls),
        created_at=row.created_at,
        edited_at=row.edited_at,
        counts=full_reaction_counts(row.reactions),
        comment_count=row.comments,
    )
