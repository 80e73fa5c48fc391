"""A public profile: `publicProfiles` and `${userId}:counts`, two point reads; from PostgreSQL (and the
counters cache refilled) when the projections do not have it yet."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import NotFound
from shared_code.domain.privacy import Visibility
from shared_code.projections.documents import user_counts_document
from shared_code.projections.writes import COUNTERS, PROFILES, VersionedUpsert
from shared_code.schemas.accounts import PublicProfile
from shared_code.services.guards import has_blocked
from shared_code.services.projection_queries import read_or_none, refill


async def read_profile(
    run: Transactions, db: DatabaseProxy, budget: RequestBudget, user_id: UUID
) -> PublicProfile:
    """`publicProfiles` and `${userId}:counts`: two point reads. A profile the projections do not have
    yet (just onboarded) comes from PostgreSQL. Its visibility is read from PostgreSQL with the block
    check (same statement round): a change of visibility shows at once, with no projection to wait for."""

    async def may_see(uow: UnitOfWork) -> Visibility:
        me = uow.require_user()
        if me != user_id and await has_blocked(uow, user_id, me):
            raise NotFound("no such user")
        cur = await uow.conn.execute("SELECT visibility FROM profiles WHERE user_id = %s", (user_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("no such user")
        return "private" if row[0] == "private" else "public"

    visibility = await run(may_see)
    key = str(user_id)
    async with budget.guard():
        profile = await read_or_none(db, PROFILES, key, key)
        if profile is not None and profile.get("deleted"):
            raise NotFound("no such user")
        counts = await read_or_none(db, COUNTERS, f"{key}:counts", key)
    if profile is None or counts is None:
        found, counts_document = await run(lambda uow: _profile_from_postgres(uow, user_id))
        await refill(db, budget, [counts_document])
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
        visibility=visibility,
    )


@dataclass(frozen=True)
class _ProfileRow:
    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    followers: int
    following: int
    posts: int
    visibility: str
    version: int


async def _profile_from_postgres(uow: UnitOfWork, user_id: UUID) -> tuple[PublicProfile, VersionedUpsert]:
    """The profile from PostgreSQL, and the counters document to refill the cache with (a miss after
    its 90-day TTL is normal)."""
    row = await fetch_one(
        uow.conn,
        _ProfileRow,
        """SELECT u.id AS user_id, u.username, p.display_name, p.bio, p.avatar_url, c.followers, c.following,
                  c.posts, p.visibility, c.version
           FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
           WHERE u.id = %s AND u.deleted_at IS NULL""",
        (user_id,),
    )
    if row is None:
        raise NotFound("no such user")
    counts_document = VersionedUpsert(
        COUNTERS,
        user_counts_document(
            {
                "userId": user_id,
                "followers": row.followers,
                "following": row.following,
                "posts": row.posts,
                "version": row.version,
            },
            None,
        ),
    )
    return PublicProfile.model_validate(row, from_attributes=True), counts_document
