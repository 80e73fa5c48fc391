"""The social graph: follows, follow requests (private accounts), blocks, mutes, and
follower/following lists.

Every operation is idempotent: a second follow, block or mute changes nothing and
records no event. Counts move in the same transaction as the edge, with the
count rows locked in id order so that crossing follows cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import Actor, UnitOfWork, unit_of_work
from shared_code.domain.errors import Forbidden, Invalid, NotFound
from shared_code.domain.events import (
    BlockCreated,
    BlockDeleted,
    FollowCreated,
    FollowDeleted,
    FollowRequestApproved,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    FollowRequestsApprovalProgressed,
    MuteCreated,
    MuteDeleted,
    UserCounts,
)
from shared_code.schemas.accounts import FollowRequest, PublicProfile
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
    visibility: str
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


FollowOutcome = Literal["following", "requested"]


async def follow(uow: UnitOfWork, followee: UUID) -> FollowOutcome:
    """Follow a public account at once; ask to follow a private one (a pending request, until it
    approves or declines). Idempotent either way: following again, or asking again while a
    request is pending, changes nothing and records nothing."""
    me = uow.require_user()
    if followee == me:
        raise Invalid("you cannot follow yourself")
    # The accounts' rows first: a visibility change takes the followee's FOR UPDATE, so what is read
    # below is the visibility after any change that was under way (docs/privacy.md).
    await uow.lock_live_users(me, followee)
    await _one_at_a_time(uow, me, followee)
    if await blocked_either_way(uow, me, followee):
        raise Forbidden("you cannot follow this user")
    if await _is_private(uow, followee) and not await _follows(uow, me, followee):
        await _request_follow(uow, me, followee)
        return "requested"
    await _create_follow(uow, me, followee)
    return "following"


async def _is_private(uow: UnitOfWork, user_id: UUID) -> bool:
    cur = await uow.conn.execute("SELECT visibility <> 'public' FROM profiles WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _follows(uow: UnitOfWork, follower: UUID, followee: UUID) -> bool:
    cur = await uow.conn.execute(
        "SELECT 1 FROM follows WHERE follower_id = %s AND followee_id = %s AND deleted_at IS NULL",
        (follower, followee),
    )
    return await cur.fetchone() is not None


async def _create_follow(uow: UnitOfWork, follower: UUID, followee: UUID) -> bool:
    """The follow use case's write: the edge (new or revived), both counts, follow.created (which
    back-fills the follower's feed). False when the edge was live already. Also the approval of a
    request, acting as the followee (row-level security allows it while the request is pending)."""
    edge = await fetch_one(
        uow.conn,
        _Edge,
        """INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s)
           ON CONFLICT (follower_id, followee_id) DO UPDATE
               SET deleted_at = NULL, created_at = now(), version = follows.version + 1
               WHERE follows.deleted_at IS NOT NULL
           RETURNING id, version, created_at""",
        (follower, followee),
    )
    if edge is None:
        return False  # already following
    follow_id, version, created_at = edge.id, edge.version, edge.created_at
    assert created_at is not None
    follower_counts, followee_counts = await _move_follow_counts(uow, follower, followee, +1)
    uow.record(
        FollowCreated(
            follow_id=follow_id,
            follower_id=follower,
            followee_id=followee,
            follower_counts=follower_counts,
            followee_counts=followee_counts,
            created_at=created_at,
        ),
        follow_id,
        version,
    )
    return True


# --- follow requests (private accounts) --------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    id: UUID
    version: int
    created_at: datetime


@dataclass(frozen=True)
class _PendingRequest:
    id: UUID
    requester_id: UUID
    target_id: UUID


async def _request_follow(uow: UnitOfWork, requester: UUID, target: UUID) -> None:
    """A pending request (new, or the pair's old one revived); nothing while one is pending."""
    request = await fetch_one(
        uow.conn,
        _Request,
        """INSERT INTO follow_requests (requester_id, target_id) VALUES (%s, %s)
           ON CONFLICT (requester_id, target_id) DO UPDATE
               SET resolved_at = NULL, resolution = NULL, created_at = now(),
                   version = follow_requests.version + 1
               WHERE follow_requests.resolved_at IS NOT NULL
           RETURNING id, version, created_at""",
        (requester, target),
    )
    if request is not None:
        uow.record(
            FollowRequested(
                request_id=request.id, requester_id=requester, target_id=target, created_at=request.created_at
            ),
            request.id,
            request.version,
        )


async def _resolve_request(
    uow: UnitOfWork, requester: UUID, target: UUID, resolution: Literal["approved", "declined", "cancelled"]
) -> _Edge | None:
    """End the pending request of the pair; None when none is pending."""
    return await fetch_one(
        uow.conn,
        _Edge,
        """UPDATE follow_requests SET resolved_at = now(), resolution = %s, version = version + 1
           WHERE requester_id = %s AND target_id = %s AND resolved_at IS NULL
           RETURNING id, version, resolved_at AS created_at""",
        (resolution, requester, target),
    )


async def _approve(
    uow: UnitOfWork, requester: UUID, target: UUID, by: Literal["target", "made_public"]
) -> bool:
    """The follow through the follow use case, then the request approved: False if none was pending."""
    cur = await uow.conn.execute(
        "SELECT 1 FROM follow_requests WHERE requester_id = %s AND target_id = %s AND resolved_at IS NULL FOR UPDATE",
        (requester, target),
    )
    if await cur.fetchone() is None:
        return False
    # The follow first: row-level security lets the target create it only while the request is pending.
    await _create_follow(uow, requester, target)
    edge = await _resolve_request(uow, requester, target, "approved")
    assert edge is not None
    uow.record(
        FollowRequestApproved(
            request_id=edge.id,
            requester_id=requester,
            target_id=target,
            by=by,
            approved_at=edge.created_at or datetime.now(UTC),
        ),
        edge.id,
        edge.version,
    )
    return True


async def approve_request(uow: UnitOfWork, requester: UUID) -> None:
    """POST /users/me/follow-requests/{userId}/approve. Approving again (the requester follows
    already) changes nothing; 404 when that user has no request to approve."""
    me = uow.require_user()
    await uow.lock_live_users(me, requester)
    await _one_at_a_time(uow, requester, me)
    if not await _approve(uow, requester, me, "target") and not await _follows(uow, requester, me):
        raise NotFound("this user has no pending follow request to you")


async def decline_request(uow: UnitOfWork, requester: UUID) -> None:
    """POST /users/me/follow-requests/{userId}/decline. Declining again changes nothing; 404 when
    that user never asked."""
    me = uow.require_user()
    edge = await _resolve_request(uow, requester, me, "declined")
    if edge is None:
        cur = await uow.conn.execute(
            "SELECT 1 FROM follow_requests WHERE requester_id = %s AND target_id = %s", (requester, me)
        )
        if await cur.fetchone() is None:
            raise NotFound("this user has no pending follow request to you")
        return
    uow.record(
        FollowRequestDeclined(request_id=edge.id, requester_id=requester, target_id=me), edge.id, edge.version
    )


async def _cancel_request(
    uow: UnitOfWork, requester: UUID, target: UUID, cause: Literal["requester", "block"]
) -> None:
    edge = await _resolve_request(uow, requester, target, "cancelled")
    if edge is not None:
        uow.record(
            FollowRequestCancelled(request_id=edge.id, requester_id=requester, target_id=target, cause=cause),
            edge.id,
            edge.version,
        )


# An account's pending requests from live accounts (a deleted requester's go with its erasure).
_PENDING_FROM_LIVE = """FROM follow_requests r JOIN users u ON u.id = r.requester_id AND u.deleted_at IS NULL
    WHERE r.target_id = %s AND r.resolved_at IS NULL"""


async def approve_pending_requests(uow: UnitOfWork, target: UUID, limit: int) -> tuple[int, int]:
    """An account that turned public approves its pending requests, the oldest first, up to `limit`
    in this transaction (each through the follow use case: its event, counts and back-fill). Returns
    (approved, still pending). Does nothing if the account is private again."""
    if await _is_private(uow, target):
        return 0, 0
    pending = await fetch_all(
        uow.conn,
        _PendingRequest,
        f"""SELECT r.id, r.requester_id, r.target_id {_PENDING_FROM_LIVE}
            ORDER BY r.created_at, r.requester_id LIMIT %s""",
        (target, limit),
    )
    # Each requester held live, as every follow does (a requester being erased is skipped: its
    # erasure deletes the request); in id order, as UnitOfWork.lock_live_users locks.
    cur = await uow.conn.execute(
        "SELECT chorus_lock_live_users(%s::uuid[])", (sorted({r.requester_id for r in pending}),)
    )
    live = {row[0] for row in await cur.fetchall()}
    approved = 0
    for request in (r for r in pending if r.requester_id in live):
        await _one_at_a_time(uow, request.requester_id, target)
        if await blocked_either_way(uow, request.requester_id, target):
            await _cancel_request(uow, request.requester_id, target, "block")
        elif await _approve(uow, request.requester_id, target, "made_public"):
            approved += 1
    return approved, await _pending_count(uow, target)


async def _pending_count(uow: UnitOfWork, target: UUID) -> int:
    cur = await uow.conn.execute(f"SELECT count(*) {_PENDING_FROM_LIVE}", (target,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class _RequestRow:
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    requested_at: datetime


async def list_follow_requests(
    uow: UnitOfWork, cursors: CursorCodec, limit: int, cursor: str | None
) -> Page[FollowRequest]:
    """The caller's pending follow requests, newest first."""
    me = uow.require_user()
    scope = f"follow-requests:{me}"
    params: dict[str, Any] = {"me": me, "limit": limit + 1}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (r.created_at, r.requester_id) < (%(after_time)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        _RequestRow,
        f"""SELECT u.id AS user_id, u.username, p.display_name, p.avatar_url, r.created_at AS requested_at
            FROM follow_requests r
            JOIN users u ON u.id = r.requester_id AND u.deleted_at IS NULL
            JOIN profiles p ON p.user_id = u.id
            WHERE r.target_id = %(me)s AND r.resolved_at IS NULL {after}
            ORDER BY r.created_at DESC, r.requester_id DESC
            LIMIT %(limit)s""",  # noqa: S608 (a fixed keyset clause; values are parameters)
        params,
    )
    items = [FollowRequest.model_validate(r, from_attributes=True) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = cursors.time_cursor(scope, last.requested_at, last.user_id) if last else None
    return Page[FollowRequest](items=items, next_cursor=next_cursor)


async def erase_follow_requests_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: delete up to `limit` follow requests to and from `user_id` (private to the
    two parties, projected nowhere). How many; 0 when none is left."""
    cur = await uow.conn.execute(
        """DELETE FROM follow_requests WHERE id IN (
               SELECT id FROM follow_requests WHERE requester_id = %(u)s OR target_id = %(u)s LIMIT %(limit)s)""",
        {"u": user_id, "limit": limit},
    )
    return cur.rowcount


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
    """Unfollow, or cancel a pending request to follow."""
    me = uow.require_user()
    await _end_follow(uow, me, followee, "unfollow")
    await _cancel_request(uow, me, followee, "requester")


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
    await _cancel_request(uow, me, target, "block")
    await _cancel_request(uow, target, me, "block")
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
                   c.posts, p.visibility, f.created_at AS followed_at
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


# The relay approves the pending requests of an account that turned public in transactions of this
# many (the request itself approved the first services/accounts.APPROVE_IN_REQUEST).
APPROVAL_BATCH = 100
APPROVALS_ACTOR = Actor(subject="system:follow-requests", role="system")


@dataclass(frozen=True)
class PendingApprovals:
    """The relay's follow-request handler: one batch of a public account's pending requests per
    event, and the next event when more remain. A replayed event approves the next batch, if any:
    harmless, since every pending request of a public account is to be approved."""

    pool: AsyncConnectionPool
    batch_size: int = APPROVAL_BATCH

    async def approve_batch(self, user_id: UUID) -> None:
        async with unit_of_work(self.pool, APPROVALS_ACTOR) as uow:
            # As a visibility change does: follows of the account wait, and it cannot turn private meanwhile.
            cur = await uow.conn.execute(
                "SELECT 1 FROM users WHERE id = %s AND deleted_at IS NULL FOR UPDATE", (user_id,)
            )
            if await cur.fetchone() is None:
                return
            approved, pending = await approve_pending_requests(uow, user_id, self.batch_size)
            if pending == 0:
                return
            cur = await uow.conn.execute(
                "UPDATE users SET version = version + 1, updated_at = now() WHERE id = %s RETURNING version",
                (user_id,),
            )
            version = await cur.fetchone()
            assert version is not None
            uow.record(
                FollowRequestsApprovalProgressed(
                    user_id=user_id, approved=approved, pending_requests=pending
                ),
                user_id,
                version[0],
            )
