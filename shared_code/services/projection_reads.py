"""Reads served from the Cosmos DB projections: the home feed, notifications, public profiles
and who reacted to a post. Each costs a fixed, small number of Cosmos requests
(docs/read-costs.md); PostgreSQL is asked only who the caller is and what they must not see.

No PostgreSQL transaction stays open while Cosmos DB is asked: each read runs its PostgreSQL steps
in short transactions of their own (`Transactions`), so a slow or absent Cosmos DB cannot hold the
pool's connections that writes need. Every Cosmos call runs under the request's `RequestBudget`:
when Cosmos DB is away the home feed is served from PostgreSQL (marked degraded), and every other
read raises CosmosUnavailable, which the HTTP layer answers with 503 and Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import CosmosUnavailable, RequestBudget
from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import BadCursor, Invalid, NotFound
from shared_code.domain.events import MediaRef
from shared_code.domain.limits import REACTION_TYPES
from shared_code.metrics import record_degraded_read
from shared_code.projections.documents import post_counts_document, user_counts_document
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, PROFILES, REACTIONS, VersionedUpsert
from shared_code.schemas.accounts import PublicProfile
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author, Media, Reaction
from shared_code.schemas.reads import FeedItem, Notification
from shared_code.services.feeds import FEED_POST_COLUMNS, feed_item, feed_post_from_row
from shared_code.services.guards import has_blocked, visible_post
from shared_code.services.posts import MediaUrls, full_reaction_counts

log = logging.getLogger("chorus.reads")

# Transactional batches take at most 100 operations.
BATCH_LIMIT = 100


async def _caller(uow: UnitOfWork) -> UUID:
    return uow.require_user()


async def _page(
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
        page = await pages.__anext__()
    except StopAsyncIteration:
        return [], None
    items = [item async for item in page]
    return items, pages.continuation_token or None


def _continuation(cursors: CursorCodec, scope: str, cursor: str | None) -> str | None:
    return str(cursors.decode(scope, cursor)["c"]) if cursor else None


def _next_cursor(cursors: CursorCodec, scope: str, continuation: str | None) -> str | None:
    return cursors.encode(scope, {"c": continuation}) if continuation else None


async def _refill(db: DatabaseProxy, budget: RequestBudget, writes: list[VersionedUpsert]) -> None:
    """Write rebuilt cache documents back, if Cosmos DB answers in time; the next read tries again."""
    if not writes:
        return
    try:
        async with budget.guard():
            await CosmosWriter(db).apply_all(writes)
    except CosmosUnavailable as exc:
        log.info("counters cache not refilled (%s); a later read refills it", exc.reason)


# --- counters --------------------------------------------------------------------------------------


async def _cached_counts(db: DatabaseProxy, post_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`${postId}:counts` for each post, in one batched point read; the counters are a 90-day cache,
    so some may be missing (`_rebuilt_counts` fills those from PostgreSQL)."""
    if not post_ids:
        return {}
    found = await db.get_container_client(COUNTERS).read_items([(f"{p}:counts", p) for p in post_ids])
    return {str(doc["subjectId"]): doc for doc in found}


async def _rebuilt_counts(uow: UnitOfWork, post_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The counters documents of these posts, from PostgreSQL."""
    if not post_ids:
        return []
    cur = await uow.conn.execute(
        "SELECT post_id, reactions, comments, version FROM post_counts WHERE post_id = ANY(%s)",
        ([UUID(p) for p in post_ids],),
    )
    return [
        post_counts_document(
            {"postId": r[0], "reactions": full_reaction_counts(r[1]), "comments": r[2], "version": r[3]},
            None,
        )
        for r in await cur.fetchall()
    ]


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
    me = str(await run(_caller))
    scope = f"feed:{me}"
    position = cursors.decode(scope, cursor) if cursor else {}
    if cursor and "c" not in position:
        return await _feed_from_postgres(run, cursors, media_urls, me, scope, limit, _keyset(position))
    try:
        async with budget.guard():
            items, continuation = await _page(
                db.get_container_client(FEED),
                "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC",
                [{"name": "@me", "value": me}],
                me,
                limit,
                position.get("c"),
            )
            counts = await _cached_counts(db, [item["postId"] for item in items])
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
    missing = [item["postId"] for item in items if item["postId"] not in counts]

    async def screen(uow: UnitOfWork) -> tuple[set[str], list[dict[str, Any]]]:
        return await _not_to_show(uow, me, items), await _rebuilt_counts(uow, missing)

    hidden, rebuilt = await run(screen) if items else (set(), [])
    await _refill(db, budget, [VersionedUpsert(COUNTERS, doc) for doc in rebuilt])
    counts.update({doc["subjectId"]: doc for doc in rebuilt})
    shown = [item for item in items if item["postId"] not in hidden and item["authorId"] not in hidden]
    next_position: dict[str, Any] = {"c": continuation}
    if items:  # where the page ended, for going on from PostgreSQL should Cosmos DB go away
        next_position.update(t=items[-1]["createdAt"], id=items[-1]["postId"])
    return FeedRead(
        Page[FeedItem](
            items=[_feed_item(item, counts.get(item["postId"]), media_urls) for item in shown],
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
    items = [
        _feed_item(
            feed_item(me, feed_post_from_row(row)), {"reactions": row[10], "comments": row[11]}, media_urls
        )
        for row in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return FeedRead(
        Page[FeedItem](
            items=items, next_cursor=cursors.time_cursor(scope, last[6], last[0]) if last else None
        ),
        from_postgres=True,
    )


# The fallback feed must answer within the request's 3 s even for someone who follows thousands,
# and must not overload PostgreSQL while every feed read falls back to it.
FEED_FALLBACK_STATEMENT_TIMEOUT_MS = 1000


async def _feed_rows(
    uow: UnitOfWork, me: UUID, limit: int, after: tuple[datetime, UUID] | None
) -> list[tuple[Any, ...]]:
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
    cur = await uow.conn.execute(
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
    return list(await cur.fetchall())


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


def _media(media: list[dict[str, Any]], media_urls: MediaUrls) -> list[Media]:
    refs = [MediaRef.model_validate(m) for m in media]
    return [
        Media(media_id=r.media_id, content_type=r.content_type, url=media_urls.url(r.blob_path)) for r in refs
    ]


def _feed_item(item: dict[str, Any], counts: dict[str, Any] | None, media_urls: MediaUrls) -> FeedItem:
    author = item.get("author") or {"userId": item["authorId"]}
    return FeedItem(
        post_id=item["postId"],
        author_id=item["authorId"],
        author=Author(
            user_id=author["userId"],
            username=author.get("username", ""),
            display_name=author.get("displayName", ""),
            avatar_url=author.get("avatarUrl"),
        ),
        content=item.get("content", ""),
        media=_media(item.get("media") or [], media_urls),
        created_at=item["createdAt"],
        edited_at=item.get("editedAt"),
        counts=full_reaction_counts((counts or {}).get("reactions")),
        comment_count=int((counts or {}).get("comments", 0)),
    )


# --- notifications ---------------------------------------------------------------------------------


async def list_notifications(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    unread_only: bool,
    limit: int,
    cursor: str | None,
) -> Page[Notification]:
    me = str(await run(_caller))
    scope = f"notifications:{me}:{'unread' if unread_only else 'all'}"
    query = (
        "SELECT * FROM c WHERE c.recipientId = @me AND c.read = false ORDER BY c.recipientId, c.read, c.createdAt DESC"
        if unread_only
        else "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.recipientId, c.createdAt DESC"
    )
    continuation = _continuation(cursors, scope, cursor)
    async with budget.guard():
        items, continuation = await _page(
            db.get_container_client(NOTIFICATIONS),
            query,
            [{"name": "@me", "value": me}],
            me,
            limit,
            continuation,
        )
    return Page[Notification](
        items=[
            Notification(
                id=n["id"],
                type=n["type"],
                actor_id=n["actorId"],
                subject_id=n["subjectId"],
                created_at=n.get("createdAt"),
                read=bool(n.get("read")),
            )
            for n in items
        ],
        next_cursor=_next_cursor(cursors, scope, continuation),
    )


async def mark_read(
    run: Transactions, db: DatabaseProxy, budget: RequestBudget, notification_id: str
) -> None:
    me = str(await run(_caller))
    try:
        async with budget.guard():
            await db.get_container_client(NOTIFICATIONS).patch_item(
                notification_id, me, [{"op": "set", "path": "/read", "value": True}]
            )
    except exceptions.CosmosResourceNotFoundError:
        raise NotFound("no such notification") from None


async def mark_all_read(run: Transactions, db: DatabaseProxy, budget: RequestBudget) -> int:
    """Every unread notification of the caller, in transactional batches of 100 patches (idempotent:
    if the budget runs out half-way, running it again marks the rest)."""
    me = str(await run(_caller))
    container = db.get_container_client(NOTIFICATIONS)
    async with budget.guard():
        ids = [
            n["id"]
            async for n in container.query_items(
                "SELECT c.id FROM c WHERE c.recipientId = @me AND c.read = false",
                parameters=[{"name": "@me", "value": me}],
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


# --- profiles --------------------------------------------------------------------------------------


async def read_profile(
    run: Transactions, db: DatabaseProxy, budget: RequestBudget, user_id: UUID
) -> PublicProfile:
    """`publicProfiles` and `${userId}:counts`: two point reads. A profile the projections do not have
    yet (just onboarded) comes from PostgreSQL."""

    async def may_see(uow: UnitOfWork) -> None:
        me = uow.require_user()
        if me != user_id and await has_blocked(uow, user_id, me):
            raise NotFound("no such user")

    await run(may_see)
    key = str(user_id)
    async with budget.guard():
        profile = await _read_or_none(db, PROFILES, key, key)
        if profile is not None and profile.get("deleted"):
            raise NotFound("no such user")
        counts = await _read_or_none(db, COUNTERS, f"{key}:counts", key)
    if profile is None or counts is None:
        found, refill = await run(lambda uow: _profile_from_postgres(uow, user_id))
        await _refill(db, budget, [refill])
        return found
    return PublicProfile(
        user_id=user_id,
        username=profile["username"],
        display_name=profile["displayName"],
        bio=profile.get("bio", ""),
        avatar_url=profile.get("avatarUrl"),
        followers=counts["followers"],
        following=counts["following"],
        posts=counts["posts"],
    )


async def _read_or_none(db: DatabaseProxy, container: str, item_id: str, key: str) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = await db.get_container_client(container).read_item(item_id, key)
    except exceptions.CosmosResourceNotFoundError:
        return None
    return document


async def _profile_from_postgres(uow: UnitOfWork, user_id: UUID) -> tuple[PublicProfile, VersionedUpsert]:
    """The profile from PostgreSQL, and the counters document to refill the cache with (a miss after
    its 90-day TTL is normal)."""
    cur = await uow.conn.execute(
        """SELECT u.username, p.display_name, p.bio, p.avatar_url, c.followers, c.following, c.posts, c.version
           FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
           WHERE u.id = %s AND u.deleted_at IS NULL""",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such user")
    refill = VersionedUpsert(
        COUNTERS,
        user_counts_document(
            {"userId": user_id, "followers": row[4], "following": row[5], "posts": row[6], "version": row[7]},
            None,
        ),
    )
    profile = PublicProfile(
        user_id=user_id,
        username=row[0],
        display_name=row[1],
        bio=row[2],
        avatar_url=row[3],
        followers=row[4],
        following=row[5],
        posts=row[6],
    )
    return profile, refill


# --- who reacted -----------------------------------------------------------------------------------


async def list_reactions(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    post_id: UUID,
    reaction_type: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Reaction]:
    async def may_see(uow: UnitOfWork) -> None:
        uow.require_user()
        await visible_post(uow, post_id)

    await run(may_see)
    if reaction_type is not None and reaction_type not in REACTION_TYPES:
        raise Invalid(f"type must be one of {', '.join(REACTION_TYPES)}", field="type")
    key = str(post_id)
    scope = f"reactions:{key}:{reaction_type or '*'}"
    parameters: list[dict[str, Any]] = [{"name": "@post", "value": key}]
    if reaction_type:
        query = (
            "SELECT c.userId, c.type, c.createdAt FROM c WHERE c.postId = @post AND c.type = @type "
            "AND c.deleted = false ORDER BY c.postId, c.type, c.createdAt DESC"
        )
        parameters.append({"name": "@type", "value": reaction_type})
    else:
        query = (
            "SELECT c.userId, c.type, c.createdAt FROM c WHERE c.postId = @post AND c.deleted = false "
            "ORDER BY c.postId, c.createdAt DESC"
        )
    continuation = _continuation(cursors, scope, cursor)
    async with budget.guard():
        items, continuation = await _page(
            db.get_container_client(REACTIONS), query, parameters, key, limit, continuation
        )
    return Page[Reaction](
        items=[Reaction(user_id=r["userId"], type=r["type"], created_at=r["createdAt"]) for r in items],
        next_cursor=_next_cursor(cursors, scope, continuation),
    )
