"""Reads served from the Cosmos DB projections: the home feed, notifications, public profiles
and who reacted to a post. Each costs a fixed, small number of Cosmos requests
(docs/read-costs.md); PostgreSQL is asked only who the caller is and what they must not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Invalid, NotFound
from shared_code.domain.events import MediaRef
from shared_code.domain.limits import REACTION_TYPES
from shared_code.projections.documents import post_counts_document, user_counts_document
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, PROFILES, REACTIONS, VersionedUpsert
from shared_code.schemas import Author, FeedItem, Media, Notification, Page, PublicProfile, Reaction
from shared_code.services.guards import has_blocked, visible_post
from shared_code.services.posts import MediaUrls, full_reaction_counts

# Transactional batches take at most 100 operations.
BATCH_LIMIT = 100


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


# --- counters --------------------------------------------------------------------------------------


async def post_counts(
    uow: UnitOfWork, db: DatabaseProxy, post_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """`${postId}:counts` for each post in one batched point read; a miss (the counters are a
    90-day cache) is rebuilt from PostgreSQL and written back."""
    if not post_ids:
        return {}
    container = db.get_container_client(COUNTERS)
    found = await container.read_items([(f"{p}:counts", p) for p in post_ids])
    counts = {str(doc["subjectId"]): doc for doc in found}
    missing = [p for p in post_ids if p not in counts]
    if missing:
        cur = await uow.conn.execute(
            "SELECT post_id, reactions, comments, version FROM post_counts WHERE post_id = ANY(%s)",
            ([UUID(p) for p in missing],),
        )
        rebuilt = [
            post_counts_document(
                {"postId": r[0], "reactions": full_reaction_counts(r[1]), "comments": r[2], "version": r[3]},
                None,
            )
            for r in await cur.fetchall()
        ]
        await CosmosWriter(db).apply_all(VersionedUpsert(COUNTERS, doc) for doc in rebuilt)
        counts.update({doc["subjectId"]: doc for doc in rebuilt})
    return counts


# --- the home feed ---------------------------------------------------------------------------------


async def read_feed(
    uow: UnitOfWork,
    db: DatabaseProxy,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    limit: int,
    cursor: str | None,
) -> Page[FeedItem]:
    me = str(uow.require_user())
    scope = f"feed:{me}"
    items, continuation = await _page(
        db.get_container_client(FEED),
        "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC",
        [{"name": "@me", "value": me}],
        me,
        limit,
        _continuation(cursors, scope, cursor),
    )
    hidden = await _not_to_show(uow, me, items)
    items = [item for item in items if item["postId"] not in hidden and item["authorId"] not in hidden]
    counts = await post_counts(uow, db, [item["postId"] for item in items])
    return Page[FeedItem](
        items=[_feed_item(item, counts.get(item["postId"]), media_urls) for item in items],
        next_cursor=_next_cursor(cursors, scope, continuation),
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
    uow: UnitOfWork,
    db: DatabaseProxy,
    cursors: CursorCodec,
    unread_only: bool,
    limit: int,
    cursor: str | None,
) -> Page[Notification]:
    me = str(uow.require_user())
    scope = f"notifications:{me}:{'unread' if unread_only else 'all'}"
    query = (
        "SELECT * FROM c WHERE c.recipientId = @me AND c.read = false ORDER BY c.recipientId, c.read, c.createdAt DESC"
        if unread_only
        else "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.recipientId, c.createdAt DESC"
    )
    items, continuation = await _page(
        db.get_container_client(NOTIFICATIONS),
        query,
        [{"name": "@me", "value": me}],
        me,
        limit,
        _continuation(cursors, scope, cursor),
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


async def mark_read(uow: UnitOfWork, db: DatabaseProxy, notification_id: str) -> None:
    me = str(uow.require_user())
    try:
        await db.get_container_client(NOTIFICATIONS).patch_item(
            notification_id, me, [{"op": "set", "path": "/read", "value": True}]
        )
    except exceptions.CosmosResourceNotFoundError:
        raise NotFound("no such notification") from None


async def mark_all_read(uow: UnitOfWork, db: DatabaseProxy) -> int:
    """Every unread notification of the caller, in transactional batches of 100 patches."""
    me = str(uow.require_user())
    container = db.get_container_client(NOTIFICATIONS)
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


async def read_profile(uow: UnitOfWork, db: DatabaseProxy, user_id: UUID) -> PublicProfile:
    """`publicProfiles` and `${userId}:counts`: two point reads. A profile the projections do not have
    yet (just onboarded) comes from PostgreSQL."""
    me = uow.require_user()
    if me != user_id and await has_blocked(uow, user_id, me):
        raise NotFound("no such user")
    key = str(user_id)
    try:
        profile: dict[str, Any] | None = await db.get_container_client(PROFILES).read_item(key, key)
    except exceptions.CosmosResourceNotFoundError:
        profile = None
    if profile is not None and profile.get("deleted"):
        raise NotFound("no such user")
    try:
        counts: dict[str, Any] | None = await db.get_container_client(COUNTERS).read_item(
            f"{key}:counts", key
        )
    except exceptions.CosmosResourceNotFoundError:
        counts = None
    if profile is None or counts is None:
        return await _profile_from_postgres(uow, db, user_id)
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


async def _profile_from_postgres(uow: UnitOfWork, db: DatabaseProxy, user_id: UUID) -> PublicProfile:
    cur = await uow.conn.execute(
        """SELECT u.username, p.display_name, p.bio, p.avatar_url, c.followers, c.following, c.posts, c.version
           FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
           WHERE u.id = %s AND u.deleted_at IS NULL""",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such user")
    # Refill the counters cache (a miss after its 90-day TTL is normal).
    await CosmosWriter(db).apply(
        VersionedUpsert(
            COUNTERS,
            user_counts_document(
                {
                    "userId": user_id,
                    "followers": row[4],
                    "following": row[5],
                    "posts": row[6],
                    "version": row[7],
                },
                None,
            ),
        )
    )
    return PublicProfile(
        user_id=user_id,
        username=row[0],
        display_name=row[1],
        bio=row[2],
        avatar_url=row[3],
        followers=row[4],
        following=row[5],
        posts=row[6],
    )


# --- who reacted -----------------------------------------------------------------------------------


async def list_reactions(
    uow: UnitOfWork,
    db: DatabaseProxy,
    cursors: CursorCodec,
    post_id: UUID,
    reaction_type: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Reaction]:
    uow.require_user()
    await visible_post(uow, post_id)
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
    items, continuation = await _page(
        db.get_container_client(REACTIONS),
        query,
        parameters,
        key,
        limit,
        _continuation(cursors, scope, cursor),
    )
    return Page[Reaction](
        items=[Reaction(user_id=r["userId"], type=r["type"], created_at=r["createdAt"]) for r in items],
        next_cursor=_next_cursor(cursors, scope, continuation),
    )
