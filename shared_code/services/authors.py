"""A post's author as events carry it, and the author's post count kept with each post write."""

from __future__ import annotations

from uuid import UUID

from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import AuthorSnapshot, UserCounts


async def author_snapshot(uow: UnitOfWork, user_id: UUID) -> AuthorSnapshot:
    cur = await uow.conn.execute(
        """SELECT u.id, u.username, p.display_name, p.avatar_url
           FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s""",
        (user_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return AuthorSnapshot(user_id=row[0], username=row[1], display_name=row[2], avatar_url=row[3])


async def change_post_count(uow: UnitOfWork, author: UUID, delta: int) -> UserCounts:
    cur = await uow.conn.execute(
        """UPDATE user_counts SET posts = posts + %s, version = version + 1 WHERE user_id = %s
           RETURNING user_id, followers, following, posts, version""",
        (delta, author),
    )
    row = await cur.fetchone()
    assert row is not None
    return UserCounts(user_id=row[0], followers=row[1], following=row[2], posts=row[3], version=row[4])
