"""A post's author as events carry it, and the author's post count kept with each post write."""

from __future__ import annotations

from uuid import UUID

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import AuthorSnapshot, UserCounts


async def author_snapshot(uow: UnitOfWork, user_id: UUID) -> AuthorSnapshot:
    author = await fetch_one(
        uow.conn,
        AuthorSnapshot,
        """SELECT u.id AS user_id, u.username, p.display_name, p.avatar_url
           FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s""",
        (user_id,),
    )
    assert author is not None
    return author


async def change_post_count(uow: UnitOfWork, author: UUID, delta: int) -> UserCounts:
    counts = await fetch_one(
        uow.conn,
        UserCounts,
        """UPDATE user_counts SET posts = posts + %s, version = version + 1 WHERE user_id = %s
           RETURNING user_id, followers, following, posts, version""",
        (delta, author),
    )
    assert counts is not None
    return counts
