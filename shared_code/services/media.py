"""Media uploads: request a signed upload URL, complete the upload after the client's PUT,
and clean up uploads that were never completed.

The server picks the blob path (`{ownerId}/{mediaId}`), so nothing a client sends ends up
in a storage path. The upload URL is create-only: after the one PUT the blob cannot be
replaced, so what `complete` checked is what posts show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from uuid import UUID, uuid4

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.availability import RequestBudget
from shared_code.adapters.media_signing import MediaSigner
from shared_code.db.unit_of_work import UnitOfWork, system_connection
from shared_code.domain.errors import Conflict, Invalid, NotFound, RateLimited
from shared_code.schemas.media import MediaReady, MediaUpload, RequestUpload

log = logging.getLogger("chorus.media")

# The cleanup handles this many stale assets per transaction.
CLEANUP_BATCH = 50


def blob_path_of(owner_id: UUID, media_id: UUID) -> str:
    return f"{owner_id}/{media_id}"


async def request_upload(
    uow: UnitOfWork,
    signer: MediaSigner,
    body: RequestUpload,
    *,
    max_bytes: int,
    budget: RequestBudget,
    pending_max: int | None = None,
) -> MediaUpload:
    """Record a pending asset of the caller and sign a URL for its one PUT. `budget` bounds the wait
    for a user delegation key, when one is due (MediaStorageUnavailable past it). At most
    `pending_max` uploads of one user may be pending (RATE_LIMIT_MEDIA_PENDING_MAX)."""
    me = uow.require_user()
    if body.size_bytes > max_bytes:
        raise Invalid(f"sizeBytes is over the limit of {max_bytes} bytes", field="sizeBytes")
    if pending_max is not None:
        await _within_pending_quota(uow, me, pending_max)
    async with budget.guard():
        await signer.ensure_fresh()
    media_id = uuid4()
    blob_path = blob_path_of(me, media_id)
    await uow.conn.execute(
        """INSERT INTO media_assets (id, owner_id, content_type, size_bytes, blob_path)
           VALUES (%s, %s, %s, %s, %s)""",
        (media_id, me, body.content_type, body.size_bytes, blob_path),
    )
    upload = signer.upload_url(blob_path)
    return MediaUpload(
        media_id=media_id,
        content_type=body.content_type,
        size_bytes=body.size_bytes,
        upload_url=upload.url,
        upload_headers={"x-ms-blob-type": "BlockBlob", "Content-Type": body.content_type},
        expires_at=upload.expires_at,
    )


# A user over the pending-uploads quota may try again after this long (completing one frees a place).
PENDING_QUOTA_RETRY_SECONDS = 60


async def _within_pending_quota(uow: UnitOfWork, owner: UUID, pending_max: int) -> None:
    # One upload request of an owner at a time (until commit), so two cannot both take the last place.
    await uow.conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"media-pending:{owner}",)
    )
    cur = await uow.conn.execute(
        """SELECT count(*) FROM media_assets
           WHERE owner_id = %s AND status = 'pending' AND deleted_at IS NULL""",
        (owner,),
    )
    row = await cur.fetchone()
    if row is not None and row[0] >= pending_max:
        raise RateLimited(
            f"{row[0]} uploads are pending (the most is {pending_max}): complete them (or let them "
            "expire) before requesting another",
            PENDING_QUOTA_RETRY_SECONDS,
            limit="media-pending",
        )


async def complete_upload(
    uow: UnitOfWork,
    blob_service: BlobServiceClient,
    signer: MediaSigner,
    media_id: UUID,
    budget: RequestBudget,
) -> MediaReady:
    """Mark the caller's pending asset ready once its blob is there with the declared size and type.

    Completing a ready asset again answers the same (idempotent). Nothing uploaded yet is a 409;
    a blob that differs from the declaration is a 422 naming the differences, and that blob is
    deleted so the client can PUT the right bytes to the same upload URL while it is valid. In
    every refusal the asset stays pending, and so it does when Blob storage does not answer within
    `budget` (MediaStorageUnavailable: a 503, and the client completes it again later).
    """
    me = uow.require_user()
    async with budget.guard():
        await signer.ensure_fresh()
    cur = await uow.conn.execute(
        """SELECT owner_id, content_type, size_bytes, blob_path, status FROM media_assets
           WHERE id = %s AND deleted_at IS NULL FOR UPDATE""",
        (media_id,),
    )
    row = await cur.fetchone()
    if row is None or row[0] != me:
        raise NotFound("no such media")
    _, content_type, size_bytes, blob_path, status = row
    if status == "pending":
        blob = blob_service.get_blob_client(signer.container, blob_path)
        try:
            async with budget.guard():
                properties = await blob.get_blob_properties()
        except ResourceNotFoundError:
            raise Conflict(
                "nothing has been uploaded for this media yet: upload the bytes first "
                "(one PUT to the uploadUrl), then complete it"
            ) from None
        found_type = (properties.content_settings.content_type or "").split(";")[0].strip().lower()
        found_size = int(properties.size)
        differences = []
        if found_size != size_bytes:
            differences.append(f"sizeBytes: declared {size_bytes}, uploaded {found_size}")
        if found_type != content_type:
            differences.append(f"contentType: declared {content_type}, uploaded {found_type or 'none'}")
        if differences:
            async with budget.guard():
                await _discard(blob_service, signer.container, blob_path, properties.etag)
            raise Invalid(
                "the upload does not match what was declared (" + "; ".join(differences) + "); it was "
                "discarded: PUT the declared bytes again while the upload URL is valid, or request a new "
                "upload",
                declared={"contentType": content_type, "sizeBytes": size_bytes},
                found={"contentType": found_type or None, "sizeBytes": found_size},
            )
        await uow.conn.execute(
            "UPDATE media_assets SET status = 'ready', ready_at = now() WHERE id = %s", (media_id,)
        )
    read = signer.read_url(blob_path)
    return MediaReady(
        media_id=media_id,
        content_type=content_type,
        size_bytes=size_bytes,
        url=read.url,
        url_expires_at=read.expires_at,
    )


async def _discard(blob_service: BlobServiceClient, container: str, blob_path: str, etag: str) -> None:
    """Delete the blob that was inspected, and only that one."""
    with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
        await blob_service.get_blob_client(container, blob_path).delete_blob(
            delete_snapshots="include", etag=etag, match_condition=MatchConditions.IfNotModified
        )


async def delete_stale_pending(
    pool: AsyncConnectionPool, blob_service: BlobServiceClient, container: str, older_than: timedelta
) -> int:
    """Remove pending assets created more than `older_than` ago: the blob (if any), then the row
    (soft-deleted). Small batches, each in its own transaction, skipping rows a `complete` holds.
    Idempotent: a blob already gone is fine, and a row whose blob could not be deleted stays
    pending for the next run. Returns how many assets were removed."""
    removed = 0
    while True:
        async with system_connection(pool) as conn, conn.transaction():
            cur = await conn.execute(
                """SELECT id, blob_path FROM media_assets
                   WHERE status = 'pending' AND deleted_at IS NULL AND created_at < now() - %s
                   ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED""",
                (older_than, CLEANUP_BATCH),
            )
            rows = await cur.fetchall()
            if not rows:
                return removed
            outcomes = await asyncio.gather(
                *(_delete_blob(blob_service, container, path) for _, path in rows)
            )
            done = [media_id for (media_id, _), deleted in zip(rows, outcomes, strict=True) if deleted]
            if done:
                await conn.execute("UPDATE media_assets SET deleted_at = now() WHERE id = ANY(%s)", (done,))
            removed += len(done)
        if len(done) < len(rows):
            # Some blobs could not be deleted; leave them for the next run rather than loop on them.
            return removed
        if len(rows) < CLEANUP_BATCH:
            return removed


async def _delete_blob(blob_service: BlobServiceClient, container: str, blob_path: str) -> bool:
    try:
        # Snapshots too: the create permission of an upload URL also lets a client snapshot its blob.
        await blob_service.get_blob_client(container, blob_path).delete_blob(delete_snapshots="include")
    except ResourceNotFoundError:
        return True
    except Exception:
        log.warning(
            "media cleanup: could not delete blob %s; it stays pending for the next run",
            blob_path,
            exc_info=True,
        )
        return False
    return True
