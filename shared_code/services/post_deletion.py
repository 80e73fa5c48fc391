"""Soft-deleting a post (by its author, a moderator, or the erasure of its author's account)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import PostDeleted
from shared_code.services.authors import change_post_count
from shared_code.services.text_entities import remove_post_entities


@dataclass(frozen=True)
class _Deleted:
    version: int
    deleted_at: datetime


async def soft_delete_post(uow: UnitOfWork, post_id: UUID, author_id: UUID) -> None:
    """Mark the post deleted, lower the author's post count and record PostDeleted; no-op if gone."""
    deleted = await fetch_one(
        uow.conn,
        _Deleted,
        """UPDATE posts SET deleted_at = now(), updated_at = now(), version = version + 1
           WHERE id = %s AND deleted_at IS NULL RETURNING version, deleted_at""",
        (post_id,),
    )
    if deleted is None:
        return
    version, deleted_at = deleted.version, deleted.deleted_at
    await remove_post_entities(uow, post_id)
    author_counts = await change_post_count(uow, author_id, -1)
    uow.record(
        PostDeleted(post_id=post_id, author_id=author_id, deleted_at=deleted_at, author_counts=author_counts),
        post_id,
        version,
    )
