"""Reposts: passing a post on to one's followers (docs/api.md "Reposts, quotes and bookmarks").

A repost is a row per (post, user), soft-deleted when undone and revived when reposted again, with
its own version (the event's aggregate version). Each change moves the post's `post_counts.reposts`
in the same transaction (the row lock orders concurrent reposts) and its event carries the counts
after the change, so the counters projection keeps the newest snapshot and never counts. The feeds
follow from the event (services/feeds.py: the original enters the reposter's followers' feeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Forbidden, NotFound
from shared_code.domain.events import PostCounts, RepostCreated, RepostDeleted
from shared_code.domain.feed_merge import is_pulled
from shared_code.services.guards import blocked_either_way, visible_post
from shared_code.services.reaction_counts import full_reaction_counts


@dataclass(frozen=True)
class _Repost:
    id: UUID
    version: int
    created_at: datetime


@dataclass(frozen=True)
class _Undone:
    id: UUID
    version: int
    post_id: UUID
    post_author_id: UUID


@dataclass(frozen=True)
class _Counts:
    post_id: UUID
    reactions: dict[str, int] | None
    comments: int
    reposts: int
    version: int


async def _move_repost_count(uow: UnitOfWork, post_id: UUID, delta: int) -> PostCounts:
    row = await fetch_one(
        uow.conn,
        _Counts,
        """UPDATE post_counts SET reposts = reposts + %s, version = version + 1 WHERE post_id = %s
           RETURNING post_id, reactions, comments, reposts, version""",
        (delta, post_id),
    )
    assert row is not None
    return PostCounts(
        post_id=row.post_id,
        reactions=full_reaction_counts(row.reactions),
        comments=row.comments,
        reposts=row.reposts,
        version=row.version,
    )


async def _is_pulled(uow: UnitOfWork, user_id: UUID, max_followers: int) -> bool:
    cur = await uow.conn.execute("SELECT followers FROM user_counts WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return is_pulled(int(row[0]) if row else 0, max_followers)


async def _author_is_public(uow: UnitOfWork, author_id: UUID) -> bool:
    cur = await uow.conn.execute(
        "SELECT visibility = 'public' FROM profiles WHERE user_id = %s", (author_id,)
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def repost(uow: UnitOfWork, post_id: UUID, fanout_max_followers: int | None = None) -> None:
    """Repost a post the caller can see; reposting again changes nothing. `fanout_max_followers`
    (FANOUT_MAX_FOLLOWERS): a reposter above it has the pull window widened to the repost in this
    transaction, as a big author's post does (services/posts.py), so followers pull it from the
    reposter's authorPosts partition as soon as the relay has written it there."""
    me = uow.require_user()
    post = await visible_post(uow, post_id)
    if post.status != "visible":
        raise Conflict(f"this post is {post.status} by a moderator and cannot be reposted")
    await uow.lock_live_users(me, post.author_id)
    # visible_post asked the privacy rule (services/audience.py): an author who blocked the caller, or
    # a private author the caller does not follow, is a 404 there. A repost puts the post in front of
    # others (a listing): a block either way refuses it, as it refuses reactions and comments.
    if post.author_id != me and await blocked_either_way(uow, post.author_id, me):
        raise Forbidden("you cannot repost this post: one of you has blocked the other")
    if post.author_id != me and not await _author_is_public(uow, post.author_id):
        # Its followers chose to show it to followers only; a repost would show it to others.
        raise Forbidden("posts of a private account cannot be reposted")
    row = await fetch_one(
        uow.conn,
        _Repost,
        """INSERT INTO reposts (post_id, user_id) VALUES (%s, %s)
           ON CONFLICT (post_id, user_id) DO UPDATE
               SET deleted_at = NULL, created_at = now(), version = reposts.version + 1
               WHERE reposts.deleted_at IS NOT NULL
           RETURNING id, version, created_at""",
        (post_id, me),
    )
    if row is None:
        return  # reposted already
    counts = await _move_repost_count(uow, post_id, +1)
    if fanout_max_followers is not None and await _is_pulled(uow, me, fanout_max_followers):
        await uow.conn.execute("SELECT chorus_widen_pull_window(%s, %s)", (me, row.created_at))
    uow.record(
        RepostCreated(
            repost_id=row.id,
            post_id=post_id,
            post_author_id=post.author_id,
            user_id=me,
            created_at=row.created_at,
            post_counts=counts,
        ),
        row.id,
        row.version,
    )


_UNDO = """UPDATE reposts r SET deleted_at = now(), version = r.version + 1
           FROM posts p WHERE p.id = r.post_id AND r.post_id = %s AND r.user_id = %s AND r.deleted_at IS NULL
           RETURNING r.id, r.version, r.post_id, p.author_id AS post_author_id"""


async def _undo(uow: UnitOfWork, post_id: UUID, user_id: UUID, cause: str) -> bool:
    undone = await fetch_one(uow.conn, _Undone, _UNDO, (post_id, user_id))
    if undone is None:
        return False
    counts = await _move_repost_count(uow, post_id, -1)
    uow.record(
        RepostDeleted(
            repost_id=undone.id,
            post_id=post_id,
            post_author_id=undone.post_author_id,
            user_id=user_id,
            post_counts=counts,
            cause=cause,
        ),
        undone.id,
        undone.version,
    )
    return True


async def unrepost(uow: UnitOfWork, post_id: UUID) -> None:
    """Undo the caller's repost; nothing to undo changes nothing. Works on a post deleted or hidden
    since (its repost still counts until undone), so only an id naming no post at all is a 404."""
    me = uow.require_user()
    cur = await uow.conn.execute("SELECT 1 FROM posts WHERE id = %s", (post_id,))
    if await cur.fetchone() is None:
        raise NotFound("no such post")
    await _undo(uow, post_id, me, "unrepost")


async def erase_reposts_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: undo up to `limit` live reposts of `user_id`, each with its event (counts
    lowered, feeds retracted); 0 when none is left."""
    rows = await fetch_all(
        uow.conn,
        _PostId,
        """SELECT post_id FROM reposts WHERE user_id = %s AND deleted_at IS NULL
           ORDER BY post_id LIMIT %s FOR UPDATE""",
        (user_id, limit),
    )
    for row in rows:
        await _undo(uow, row.post_id, user_id, "account_deleted")
    return len(rows)


@dataclass(frozen=True)
class _PostId:
    post_id: UUID
