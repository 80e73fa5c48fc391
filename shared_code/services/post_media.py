"""The media attached to a post, in order, as events carry them."""

from __future__ import annotations

from uuid import UUID

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import MediaRef


async def media_refs(uow: UnitOfWork, post_id: UUID) -> tuple[MediaRef, ...]:
    refs = await fetch_all(
        uow.conn,
        MediaRef,
        """SELECT m.id AS media_id, m.content_type, m.blob_path
           FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
           WHERE pm.post_id = %s AND m.purged_at IS NULL ORDER BY pm.position""",
        (post_id,),
    )
    return tuple(refs)
