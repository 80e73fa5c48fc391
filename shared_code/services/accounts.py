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
from shared_code.domain.events import ProfileUpdated, UserCreated
from shared_code.schemas.accounts import CreateUser, Me, UpdateProfile
from shared_code.services.erasure import lock_username, username_held

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
                  c.followers, c.following, c.posts
           FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
           WHERE u.id = %s""",
        (user_id,),
    )
    assert me is not None  # require_user saw this live user in this transaction
    return me


async def update_profile(uow: UnitOfWork, body: UpdateProfile) -> Me:
    user_id = uow.require_user()
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
                changed=tuple(_camel(c) for c in changed),
            ),
            user_id,
            version_row[0],
        )
        return me
    return await get_me(uow)


def _camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)
