"""Accounts: onboarding a token's subject, the caller's own account, profile edits. (Deletion is an
erasure: shared_code/services/erasure.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import errors as pg_errors

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict
from shared_code.domain.events import ProfileUpdated, ProfileVisibilityChanged, UserCreated
from shared_code.domain.privacy import Visibility
from shared_code.schemas.accounts import CreateUser, Me, UpdateProfile
from shared_code.services.erasure import lock_username, username_held
from shared_code.services.social import approve_pending_requests

# Token `idp` claim values → the auth providers the schema allows; anything else is email/password.
_PROVIDERS = {
    "google": "google",
    "google.com": "google",
    "apple": "apple",
    "apple.com": "apple",
    "github": "github",
    "github.com": "github",
}


@dataclass(frozen=True)
class _NewUser:
    id: UUID
    created_at: datetime


@dataclass(frozen=True)
class _Profile:
    display_name: str
    bio: str
    avatar_url: str | None


def auth_provider(identity_provider: str | None) -> str:
    return _PROVIDERS.get((identity_provider or "").lower(), "email")


async def onboard(uow: UnitOfWork, body: CreateUser, identity_provider: str | None, email: str | None) -> Me:
    if uow.user_id is not None:
        raise Conflict("this account already exists")
    # Reserved names are refused by the request's validation (schemas/accounts.py); a name an erasure
    # freed is held back for ERASURE_USERNAME_HOLD_DAYS.
    await lock_username(uow, body.username)
    if await username_held(uow, body.username):
        raise Conflict("that username is not available; choose another", field="username")
    try:
        user = await fetch_one(
            uow.conn,
            _NewUser,
            """INSERT INTO users (auth_subject, auth_provider, email, username)
               VALUES (%s, %s, %s, %s) RETURNING id, created_at""",
            (uow.actor.subject, auth_provider(identity_provider), email, body.username),
        )
    except pg_errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "users_live_username":
            raise Conflict("that username is taken", field="username") from None
        raise Conflict("this account already exists") from None
    assert user is not None
    user_id, created_at = user.id, user.created_at
    await uow.act_as(user_id)
    await uow.conn.execute(
        "INSERT INTO profiles (user_id, display_name, bio, avatar_url) VALUES (%s, %s, %s, %s)",
        (user_id, body.display_name, body.bio, body.avatar_url),
    )
    await uow.conn.execute("INSERT INTO user_counts (user_id) VALUES (%s)", (user_id,))
    uow.record(
        UserCreated(
            user_id=user_id,
            username=body.username,
            display_name=body.display_name,
            bio=body.bio,
            avatar_url=body.avatar_url,
            created_at=created_at,
        ),
        user_id,
        1,
    )
    return await get_me(uow)


async def get_me(uow: UnitOfWork) -> Me:
    user_id = uow.require_user()
    me = await fetch_one(
        uow.conn,
        Me,
        """SELECT u.id, u.username, p.display_name, p.bio, p.avatar_url, u.email, u.auth_provider, u.created_at,
                  c.followers, c.following, c.posts,
                  CASE WHEN p.visibility = 'public' THEN 'public' ELSE 'private' END AS visibility
           FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
           WHERE u.id = %s""",
        (user_id,),
    )
    assert me is not None  # require_user saw this live user in this transaction
    return me


# Turning public approves this many pending follow requests in the request itself; the relay approves
# the rest in batches of as many (services/social.py approve_pending_requests).
APPROVE_IN_REQUEST = 100


async def update_profile(uow: UnitOfWork, body: UpdateProfile) -> Me:
    user_id = uow.require_user()
    if body.visibility is not None:
        await _change_visibility(uow, user_id, body.visibility)
    if not body.model_fields_set - {"visibility"}:
        return await get_me(uow)
    renamed = body.username is not None and await _change_username(uow, user_id, body.username)
    changes: dict[str, Any] = {
        column: getattr(body, field)
        for field, column in (("display_name", "display_name"), ("bio", "bio"), ("avatar_url", "avatar_url"))
        if field in body.model_fields_set
    }
    current = await fetch_one(
        uow.conn,
        _Profile,
        "SELECT display_name, bio, avatar_url FROM profiles WHERE user_id = %s FOR UPDATE",
        (user_id,),
    )
    assert current is not None
    changed = {column: value for column, value in changes.items() if getattr(current, column) != value}
    if changed or renamed:
        if changed:
            # Column names come from the fixed mapping above, never from the request.
            assignments = ", ".join(f"{column} = %({column})s" for column in changed)
            await uow.conn.execute(
                f"UPDATE profiles SET {assignments}, updated_at = now() WHERE user_id = %(user_id)s",  # noqa: S608
                {**changed, "user_id": user_id},
            )
        cur = await uow.conn.execute(
            "UPDATE users SET version = version + 1, updated_at = now() WHERE id = %s RETURNING version",
            (user_id,),
        )
        version_row = await cur.fetchone()
        assert version_row is not None
        me = await get_me(uow)
        uow.record(
            ProfileUpdated(
                user_id=user_id,
                username=me.username,
                display_name=me.display_name,
                bio=me.bio,
                avatar_url=me.avatar_url,
                changed=(("username",) if renamed else ()) + tuple(_camel(c) for c in changed),
            ),
            user_id,
            version_row[0],
        )
        return me
    return await get_me(uow)


async def _change_username(uow: UnitOfWork, user_id: UUID, username: str) -> bool:
    """Take a new username, under the same rules and lock as onboarding; False when it is already
    the account's. The old name is free for others at once (only an erasure holds a name back)."""
    await lock_username(uow, username)
    if await username_held(uow, username):
        raise Conflict("that username is not available; choose another", field="username")
    try:
        cur = await uow.conn.execute(
            """UPDATE users SET username = %s, updated_at = now()
               WHERE id = %s AND username::text IS DISTINCT FROM %s RETURNING 1""",
            (username, user_id, username),
        )
    except pg_errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "users_live_username":
            raise Conflict("that username is taken", field="username") from None
        raise
    return await cur.fetchone() is not None


def _camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)


async def _change_visibility(uow: UnitOfWork, user_id: UUID, visibility: Visibility) -> None:
    """Set the account's visibility. The account's row is taken FOR UPDATE first, so a follow of it
    under way (which holds the row FOR KEY SHARE) commits before, and one that comes after reads the
    new visibility: no request is left pending on a public account. Turning public approves up to
    APPROVE_IN_REQUEST pending requests at once; the event tells the relay how many are left."""
    await uow.conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
    cur = await uow.conn.execute(
        """UPDATE profiles SET visibility = %s, updated_at = now()
           WHERE user_id = %s AND visibility IS DISTINCT FROM %s RETURNING 1""",
        (visibility, user_id, visibility),
    )
    if await cur.fetchone() is None:
        return  # unchanged: nothing recorded
    pending = 0
    if visibility == "public":
        _, pending = await approve_pending_requests(uow, user_id, APPROVE_IN_REQUEST)
    cur = await uow.conn.execute(
        "UPDATE users SET version = version + 1, updated_at = now() WHERE id = %s RETURNING version",
        (user_id,),
    )
    version_row = await cur.fetchone()
    assert version_row is not None
    uow.record(
        ProfileVisibilityChanged(user_id=user_id, visibility=visibility, pending_requests=pending),
        user_id,
        version_row[0],
    )
