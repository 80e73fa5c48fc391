"""Soft-deleting a post (by its author, a moderator, or the erasure of its author's account)."""

from __future__ import annotations

from uuid import UUID

from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import PostDeleted
from shared_code.services.authors import change_post_count


async def soft_delete_post(uow: UnitOfWork, post_id: UUID, author_id: UUID) -> None:
    """Mark the post deleted, lower the author's post count and record PostDeleted; no-op if gone."""
    cur = await uow.conn.execute(
        """UPDATE posts SET deleted_at = now(), updated_at = now(), version = version + 1
           WHERE id = %s AND deleted_at IS NULL RETURNING version, deleted_at""",
        (post_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return
    version, deleted_at = row
    author_counts = await change_post_count(uow, author_id, -1)
    uow.record(
        PostDeleted(post_id=post_id, author_id=author_id, deleted_at=deleted_at, author_counts=author_counts),
        post_id,
        version,
    )
