"""The social graph: follows, blocks, mutes, and follower/following lists.

Every operation is idempotent: a second follow, block or mute changes nothing and
records no event. Counts move in the same transaction as the edge, with the
count rows locked in id order so that crossing follows cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Forbidden, Invalid
from shared_code.domain.events import (
    BlockCreated,
    BlockDeleted,
    FollowCreated,
    FollowDeleted,
    MuteCreated,
    MuteDeleted,
    UserCounts,
)
from shared_code.schemas.accounts import PublicProfile
from shared_code.schemas.common import Page
from shared_code.services.audience import require_may_see
from shared_code.services.guards import blocked_either_way, blocked_either_way_ids, require_live_user

FollowCause = Literal["unfollow", "block", "account_deleted"]


@dataclass(frozen=True)
class _Edge:
    """A follow, block or mute row as a write returns it (created_at when the write creates it)."""

    id: UUID
    version: int
    created_at: datetime | None = None


@dataclass(frozen=True)
class _Follow:
    follower_id: UUID
    followee_id: UUID


@dataclass(frozen=True)
class _Block:
    blocker_id: UUID
    blocked_id: UUID


@dataclass(frozen=True)
class _Mute:
    muter_id: UUID
    muted_id: UUID


@dataclass(frozen=True)
class _Connection:
    """One follower or followee as the list shows them, with when the follow began (the cursor)."""

    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    followers: int
    following: int
    posts: int
    followed_at: datetime


async def _move_follow_counts(
    uow: UnitOfWork, follower: UUID, followee: UUID, delta: int
) -> tuple[UserCounts, UserCounts]:
    rows = await fetch_all(
        uow.conn,
        UserCounts,
        """UPDATE user_counts
           SET following = following + CASE WHEN user_id = %(follower)s THEN %(delta)s ELSE 0 END,
               followers = followers + CASE WHEN user_id = %(followee)s THEN %(delta)s ELSE 0 END,
               version = version + 1
           WHERE user_id IN (%(follower)s, %(followee)s)
           RETURNING user_id, followers, following, posts, version""",
        {"follower": follower, "followee": followee, "delta": delta},
    )
    counts = {row.user_id: row for row in rows}
    return counts[follower], counts[followee]


async def _one_at_a_time(uow: UnitOfWork, a: UUID, b: UUID) -> None:
    """Follows and blocks between two users take turns (a lock on the unordered pair, held to the end
    of the transaction). A follow checks for a block and a block ends the follows, so each must see
    the other's committed outcome: raced, they could otherwise leave a follow across a block."""
    low, high = sorted((str(a), str(b)))
    await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"graph:{low}:{high}",))


async def follow(uow: UnitOfWork, followee: UUID) -> None:
    me = uow.require_user()
    if followee == me:
        raise Invalid("you cannot follow yourself")
    await uow.lock_live_users(me, followee)
    await _one_at_a_time(uow, me, followee)
    if await blocked_either_way(uow, me, followee):
        raise Forbidden("you cannot follow this user")
    edge = await fetch_one(
        uow.conn,
        _Edge,
        """INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s)
           ON CONFLICT (follower_id, followee_id) DO UPDATE
               SET deleted_at = NULL, created_at = now(), version = follows.version + 1
               WHERE follows.deleted_at IS NOT NULL
           RETURNING id, version, created_at""",
        (me, followee),
    )
    if edge is None:
        return  # already following
    follow_id, version, created_at = edge.id, edge.version, edge.created_at
    assert created_at is not None
    follower_counts, followee_counts = await _move_follow_counts(uow, me, followee, +1)
    uow.record(
        FollowCreated(
            follow_id=follow_id,
            follower_id=me,
            followee_id=followee,
            follower_counts=follower_counts,
            followee_counts=followee_counts,
            created_at=created_at,
        ),
        follow_id,
        version,
    )


async def _end_follow(uow: UnitOfWork, follower: UUID, followee: UUID, cause: FollowCause) -> None:
    edge = await fetch_one(
        uow.conn,
        _Edge,
        """UPDATE follows SET deleted_at = now(), version = version + 1
           WHERE follower_id = %s AND followee_id = %s AND deleted_at IS NULL
           RETURNING id, version""",
        (follower, followee),
    )
    if edge is None:
        return
    follow_id, version = edge.id, edge.version
    follower_counts, followee_counts = await _move_follow_counts(uow, follower, followee, -1)
    uow.record(
        FollowDeleted(
            follow_id=follow_id,
            follower_id=follower,
            followee_id=followee,
            follower_counts=follower_counts,
            followee_counts=followee_counts,
            cause=cause,
        ),
        follow_id,
        version,
    )


async def unfollow(uow: UnitOfWork, followee: UUID) -> None:
    me = uow.require_user()
    await _end_follow(uow, me, followee, "unfollow")


async def erase_follows_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: end up to `limit` follows to and from `user_id`, one event per edge (the
    counts of both sides move with it). How many; 0 when none is left."""
    follows = await fetch_all(
        uow.conn,
        _Follow,
        """SELECT follower_id, followee_id FROM follows
           WHERE (follower_id = %(u)s OR followee_id = %(u)s) AND deleted_at IS NULL
           ORDER BY follower_id, followee_id LIMIT %(limit)s""",
        {"u": user_id, "limit": limit},
    )
    for edge in follows:
        await _end_follow(uow, edge.follower_id, edge.followee_id, "account_deleted")
    return len(follows)


async def erase_blocks_and_mutes_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: end up to `limit` blocks and mutes by or of `user_id`, each with its event.
    How many; 0 when none is left."""
    blocks = await fetch_all(
        uow.conn,
        _Block,
        """SELECT blocker_id, blocked_id FROM blocks
           WHERE (blocker_id = %(u)s OR blocked_id = %(u)s) AND deleted_at IS NULL
           ORDER BY blocker_id, blocked_id LIMIT %(limit)s""",
        {"u": user_id, "limit": limit},
    )
    for block in blocks:
        edge = await _clear_edge(
            uow, "blocks", "blocker_id", "blocked_id", block.blocker_id, block.blocked_id
        )
        if edge is not None:
            uow.record(
                BlockDeleted(block_id=edge.id, blocker_id=block.blocker_id, blocked_id=block.blocked_id),
                edge.id,
                edge.version,
            )
    mutes = await fetch_all(
        uow.conn,
        _Mute,
        """SELECT muter_id, muted_id FROM mutes
           WHERE (muter_id = %(u)s OR muted_id = %(u)s) AND deleted_at IS NULL
           ORDER BY muter_id, muted_id LIMIT %(limit)s""",
        {"u": user_id, "limit": limit},
    )
    for mute in mutes:
        edge = await _clear_edge(uow, "mutes", "muter_id", "muted_id", mute.muter_id, mute.muted_id)
        if edge is not None:
            uow.record(
                MuteDeleted(mute_id=edge.id, muter_id=mute.muter_id, muted_id=mute.muted_id),
                edge.id,
                edge.version,
            )
    return len(blocks) + len(mutes)


async def _set_edge(
    uow: UnitOfWork,
    table: Literal["blocks", "mutes"],
    actor_column: str,
    target_column: str,
    actor: UUID,
    target: UUID,
) -> _Edge | None:
    """Create or revive an edge; None if it already exists. Table and columns are fixed by callers."""
    return await fetch_one(
        uow.conn,
        _Edge,
        f"""INSERT INTO {table} ({actor_column}, {target_column}) VALUES (%s, %s)
            ON CONFLICT ({actor_column}, {target_column}) DO UPDATE
                SET deleted_at = NULL, created_at = now(), version = {table}.version + 1
                WHERE {table}.deleted_at IS NOT NULL
            RETURNING id, version""",  # noqa: S608
        (actor, target),
    )


async def _clear_edge(
    uow: UnitOfWork,
    table: Literal["blocks", "mutes"],
    actor_column: str,
    target_column: str,
    actor: UUID,
    target: UUID,
) -> _Edge | None:
    return await fetch_one(
        uow.conn,
        _Edge,
        f"""UPDATE {table} SET deleted_at = now(), version = version + 1
            WHERE {actor_column} = %s AND {target_column} = %s AND deleted_at IS NULL
            RETURNING id, version""",  # noqa: S608
        (actor, target),
    )


async def block(uow: UnitOfWork, target: UUID) -> None:
    me = uow.require_user()
    if target == me:
        raise Invalid("you cannot block yourself")
    await uow.lock_live_users(me, target)
    await _one_at_a_time(uow, me, target)
    edge = await _set_edge(uow, "blocks", "blocker_id", "blocked_id", me, target)
    if edge is None:
        return
    # A block ends follows both ways, each with its own event.
    await _end_follow(uow, me, target, "block")
    await _end_follow(uow, target, me, "block")
    uow.record(BlockCreated(block_id=edge.id, blocker_id=me, blocked_id=target), edge.id, edge.version)


async def unblock(uow: UnitOfWork, target: UUID) -> None:
    me = uow.require_user()
    edge = await _clear_edge(uow, "blocks", "blocker_id", "blocked_id", me, target)
    if edge is not None:
        uow.record(BlockDeleted(block_id=edge.id, blocker_id=me, blocked_id=target), edge.id, edge.version)


async def mute(uow: UnitOfWork, target: UUID) -> None:
    me = uow.require_user()
    if target == me:
        raise Invalid("you cannot mute yourself")
    await uow.lock_live_users(me, target)
    edge = await _set_edge(uow, "mutes", "muter_id", "muted_id", me, target)
    if edge is not None:
        uow.record(MuteCreated(mute_id=edge.id, muter_id=me, muted_id=target), edge.id, edge.version)


async def unmute(uow: UnitOfWork, target: UUID) -> None:
    me = uow.require_user()
    edge = await _clear_edge(uow, "mutes", "muter_id", "muted_id", me, target)
    if edge is not None:
        uow.record(MuteDeleted(mute_id=edge.id, muter_id=me, muted_id=target), edge.id, edge.version)


async def list_connections(
    uow: UnitOfWork,
    cursors: CursorCodec,
    user_id: UUID,
    direction: Literal["followers", "following"],
    limit: int,
    cursor: str | None,
) -> Page[PublicProfile]:
    """A user's followers or followees, most recent first, as public profiles; without anyone the
    caller blocked or is blocked by (moderators see everyone). 404 when the caller may not see the
    user's content (the privacy rule: a private account's lists are for its approved followers)."""
    me = uow.require_user()
    await require_live_user(uow, user_id)
    # Whom a private account follows and who follows it are its approved followers' to see.
    await require_may_see(uow, user_id, "no such user")
    hidden = [] if uow.actor.is_moderator else await blocked_either_way_ids(uow, me)
    mine, theirs = (
        ("followee_id", "follower_id") if direction == "followers" else ("follower_id", "followee_id")
    )
    scope = f"{direction}:{user_id}"
    params: dict[str, Any] = {"user": user_id, "limit": limit + 1, "hidden": hidden}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = f"AND (f.created_at, f.{theirs}) < (%(after_time)s, %(after_id)s)"
    # Column names are fixed above, never from the request.
    rows = await fetch_all(
        uow.conn,
        _Connection,
        f"""SELECT u.id AS user_id, u.username, p.display_name, p.bio, p.avatar_url, c.followers, c.following,
                   c.posts, f.created_at AS followed_at
            FROM follows f
            JOIN users u ON u.id = f.{theirs} AND u.deleted_at IS NULL
            JOIN profiles p ON p.user_id = u.id
            JOIN user_counts c ON c.user_id = u.id
            WHERE f.{mine} = %(user)s AND f.deleted_at IS NULL AND f.{theirs} <> ALL(%(hidden)s::uuid[]) {after}
            ORDER BY f.created_at DESC, f.{theirs} DESC
            LIMIT %(limit)s""",  # noqa: S608
        params,
    )
    items = [PublicProfile.model_validate(r, from_attributes=True) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = cursors.time_cursor(scope, last.followed_at, last.user_id) if last else None
    return Page[PublicProfile](items=items, next_cursor=next_cursor)
