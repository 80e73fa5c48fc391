"""Checks several use cases share: does the user exist, is there a block between two users,
may the caller see this post (through the privacy rule, services/audience.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import NotFound
from shared_code.services.audience import require_may_see


async def require_live_user(uow: UnitOfWork, user_id: UUID) -> None:
    """404 unless `user_id` is a live account."""
    cur = await uow.conn.execute("SELECT 1 FROM users WHERE id = %s AND deleted_at IS NULL", (user_id,))
    if await cur.fetchone() is None:
        raise NotFound("no such user")


async def blocked_either_way(uow: UnitOfWork, a: UUID, b: UUID) -> bool:
    cur = await uow.conn.execute(
        """SELECT 1 FROM blocks WHERE deleted_at IS NULL
             AND ((blocker_id = %(a)s AND blocked_id = %(b)s) OR (blocker_id = %(b)s AND blocked_id = %(a)s))""",
        {"a": a, "b": b},
    )
    return await cur.fetchone() is not None


async def blocked_either_way_ids(uow: UnitOfWork, user_id: UUID) -> list[UUID]:
    """Everyone `user_id` has blocked or is blocked by: hidden from each other's lists (followers,
    following, comments, reactions) and notifications. A user blocks few people, so this is short."""
    cur = await uow.conn.execute(
        """SELECT blocked_id FROM blocks WHERE blocker_id = %(u)s AND deleted_at IS NULL
           UNION SELECT blocker_id FROM blocks WHERE blocked_id = %(u)s AND deleted_at IS NULL""",
        {"u": user_id},
    )
    return [row[0] for row in await cur.fetchall()]


async def has_blocked(uow: UnitOfWork, blocker: UUID, blocked: UUID) -> bool:
    cur = await uow.conn.execute(
        "SELECT 1 FROM blocks WHERE blocker_id = %s AND blocked_id = %s AND deleted_at IS NULL",
        (blocker, blocked),
    )
    return await cur.fetchone() is not None


@dataclass(frozen=True)
class PostRef:
    id: UUID
    author_id: UUID
    status: str
    version: int
    created_at: datetime


_POST = "SELECT id, author_id, status, version, created_at FROM posts WHERE id = %s AND deleted_at IS NULL"
_POST_FOR_UPDATE = _POST + " FOR UPDATE"


async def visible_post(uow: UnitOfWork, post_id: UUID, lock: bool = False) -> PostRef:
    """The post if the caller may see it, else 404: deleted posts for everyone; hidden or
    removed ones for all but the author and moderators; and the posts of an author whose content
    the caller may not see (a private account they do not follow, an author who blocked them: the
    privacy rule, services/audience.py), unless the caller is a moderator."""
    post = await fetch_one(uow.conn, PostRef, _POST_FOR_UPDATE if lock else _POST, (post_id,))
    if post is None:
        raise NotFound("no such post")
    viewer = uow.user_id
    if post.status != "visible" and viewer != post.author_id and not uow.actor.is_moderator:
        raise NotFound("no such post")
    # Moderators see past blocks and privacy: an author must not escape moderation that way.
    await require_may_see(uow, post.author_id)
    return post
