"""Uploaded media attached to what uses them, a post or a message: one use per asset, in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal
from uuid import UUID

from psycopg import errors as pg_errors
from psycopg import sql

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Invalid
from shared_code.domain.events import MediaRef

MediaUse = Literal["post", "message"]
# Each use is a row of its link table; the claim below checks both, so an asset has one use at most.
_LINK_TABLES: dict[MediaUse, tuple[str, str]] = {
    "post": ("post_media", "post_id"),
    "message": ("message_media", "message_id"),
}


async def attach_media(
    uow: UnitOfWork,
    owner: UUID,
    media_ids: Sequence[UUID],
    unattached_ttl: timedelta,
    used_by: MediaUse,
    user_id: UUID,
) -> tuple[MediaRef, ...]:
    """Attach to the post or message `user_id` ready, unpurged media of `owner` that nothing uses yet
    and that have not outlived MEDIA_UNATTACHED_TTL_HOURS (the sweep purges those)."""
    if not media_ids:
        return ()
    refs = await fetch_all(
        uow.conn,
        MediaRef,
        """SELECT m.id AS media_id, m.content_type, m.blob_path FROM media_assets m
           WHERE m.id = ANY(%s) AND m.owner_id = %s AND m.status = 'ready' AND m.deleted_at IS NULL
             AND m.purged_at IS NULL AND m.ready_at > now() - %s
             AND NOT EXISTS (SELECT 1 FROM post_media pm WHERE pm.media_id = m.id)
             AND NOT EXISTS (SELECT 1 FROM message_media mm WHERE mm.media_id = m.id)
           FOR UPDATE""",
        (list(media_ids), owner, unattached_ttl),
    )
    found = {ref.media_id: ref for ref in refs}
    missing = [str(m) for m in media_ids if m not in found]
    if missing:
        raise Invalid(
            "these media are not yours, not ready, or already used by a post or a message",
            field="mediaIds",
            mediaIds=missing,
        )
    table, column = _LINK_TABLES[used_by]
    insert = sql.SQL("INSERT INTO {} ({}, media_id, position) VALUES (%s, %s, %s)").format(
        sql.Identifier(table), sql.Identifier(column)
    )
    try:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                insert, [(user_id, media_id, position) for position, media_id in enumerate(media_ids)]
            )
    except pg_errors.UniqueViolation:
        # Another post or message took one of these media between the claim above and this insert (the
        # claim reads before the other transaction commits): the loser of the race is told, not a 500.
        raise Conflict(
            "one of these media was attached to another post or message at the same time",
            mediaIds=[str(m) for m in media_ids],
        ) from None
    return tuple(found[m] for m in media_ids)
