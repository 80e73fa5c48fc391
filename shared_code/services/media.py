"""Media uploads: request a signed upload URL, complete the upload after the client's PUT, read
an asset through a fresh short-lived URL, clean up uploads that were never completed, and purge
the blobs of assets nobody may read any more (shared_code/domain/media_rules.py).

The server picks the blob path (`{ownerId}/{mediaId}`), so nothing a client sends ends up
in a storage path. The upload URL is create-only: after the one PUT the blob cannot be
replaced, so what `complete` checked is what posts show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobClient, BlobServiceClient
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.availability import RequestBudget
from shared_code.adapters.media_signing import MediaSigner, MediaUrls
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork, system_connection
from shared_code.domain.errors import Conflict, Invalid, NotFound, RateLimited
from shared_code.domain.events import MediaRef
from shared_code.domain.media_rules import (
    SNIFF_BYTES,
    AttachedPost,
    MediaState,
    bytes_match,
    purgeable,
    readable_by,
    served_as,
    sniffed_type,
)
from shared_code.schemas.media import MediaReady, MediaUpload, RequestUpload
from shared_code.services.audience import may_see

log = logging.getLogger("chorus.media")

# The cleanup handles this many stale assets per transaction.
CLEANUP_BATCH = 50


def blob_path_of(owner_id: UUID, media_id: UUID) -> str:
    return f"{owner_id}/{media_id}"


@dataclass(frozen=True)
class _Asset:
    owner_id: UUID
    content_type: str
    size_bytes: int
    blob_path: str
    status: str


@dataclass(frozen=True)
class _StaleUpload:
    id: UUID
    blob_path: str


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
    media_urls: MediaUrls,
    media_id: UUID,
    budget: RequestBudget,
) -> MediaReady:
    """Mark the caller's pending asset ready once its blob is there as declared, and sign a short
    read URL for it while it is readable (docs/api.md "Media").

    Completing a ready asset again answers the same (idempotent) while the asset is readable; once
    its post is deleted, hidden or removed, or it stayed unattached too long, it is a 404 and nothing
    is signed. Nothing uploaded yet is a 409; a blob that differs from the declaration (size, type,
    or bytes that are not of the declared type) is a 422 naming the differences, and that blob is
    deleted so the client can PUT the right bytes to the same upload URL while it is valid. In every
    refusal the asset stays pending, and so it does when Blob storage does not answer within
    `budget` (MediaStorageUnavailable: a 503, and the client completes it again later).
    """
    me = uow.require_user()
    signer = media_urls.signer
    async with budget.guard():
        await signer.ensure_fresh()
    asset = await fetch_one(
        uow.conn,
        _Asset,
        """SELECT owner_id, content_type, size_bytes, blob_path, status FROM media_assets
           WHERE id = %s AND deleted_at IS NULL FOR UPDATE""",
        (media_id,),
    )
    if asset is None or asset.owner_id != me:
        raise NotFound("no such media")
    content_type, size_bytes, blob_path, status = (
        asset.content_type,
        asset.size_bytes,
        asset.blob_path,
        asset.status,
    )
    if status == "pending":
        blob = blob_service.get_blob_client(signer.container, blob_path)
        await _check_upload(blob, media_id, content_type, size_bytes, budget)
        await uow.conn.execute(
            "UPDATE media_assets SET status = 'ready', ready_at = now() WHERE id = %s", (media_id,)
        )
    state = await media_state(uow, media_id)
    if state is None or not readable_by(
        state, me, await _db_now(uow), media_urls.unattached_ttl, hidden_by_author=False
    ):
        raise NotFound(
            "this media is not readable any more: its post was deleted, hidden or removed, or it was "
            "not attached to a post in time"
        )
    read = signer.read_url(MediaRef(media_id=media_id, content_type=content_type, blob_path=blob_path))
    return MediaReady(
        media_id=media_id,
        content_type=content_type,
        size_bytes=size_bytes,
        url=read.url,
        url_expires_at=read.expires_at,
    )


async def _check_upload(
    blob: BlobClient, media_id: UUID, content_type: str, size_bytes: int, budget: RequestBudget
) -> None:
    """The checks of a completion, in order: the blob is there; its size and the type it was
    uploaded with are the declared ones; its first bytes are of the declared type. A blob that fails
    is discarded (422). One that passes gets the headers the server decides (served_as), so
    readers never get the uploader's."""
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
    found: dict[str, object] = {"contentType": found_type or None, "sizeBytes": found_size}
    if not differences:
        async with budget.guard():
            download = await blob.download_blob(
                offset=0,
                length=min(found_size, SNIFF_BYTES),
                etag=properties.etag,
                match_condition=MatchConditions.IfNotModified,
            )
            head = await download.readall()
        if not bytes_match(content_type, head):
            looks_like = sniffed_type(head)
            found["bytesLookLike"] = looks_like
            differences.append(
                f"bytes: declared {content_type}, the uploaded bytes are "
                + (looks_like if looks_like else "not of any accepted media type")
            )
    if differences:
        async with budget.guard():
            await _discard(blob, properties.etag)
        raise Invalid(
            "the upload does not match what was declared (" + "; ".join(differences) + "); it was "
            "discarded: PUT the declared bytes again while the upload URL is valid, or request a new "
            "upload",
            declared={"contentType": content_type, "sizeBytes": size_bytes},
            found=found,
        )
    served = served_as(media_id, content_type)
    async with budget.guard():
        await blob.set_http_headers(
            ContentSettings(content_type=served.content_type, content_disposition=served.content_disposition),
            etag=properties.etag,
            match_condition=MatchConditions.IfNotModified,
        )


async def _db_now(uow: UnitOfWork) -> datetime:
    """The database's clock: the one ready_at was written with."""
    cur = await uow.conn.execute("SELECT now()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


# An asset and what decides who may read it (shared_code/domain/media_rules.py), in one query; read
# into a _StateRow with the asset's id, type, size and blob path.
_STATE_COLUMNS = """
    m.id AS media_id, m.content_type, m.size_bytes, m.blob_path,
    m.owner_id, EXISTS (SELECT 1 FROM users u WHERE u.id = m.owner_id AND u.deleted_at IS NULL) AS owner_live,
    m.status, m.ready_at, m.deleted_at IS NOT NULL OR m.purged_at IS NOT NULL AS gone,
    p.id AS post_id, p.author_id AS post_author_id, p.deleted_at IS NULL AS post_live, p.status AS post_status,
    EXISTS (SELECT 1 FROM message_media mm JOIN messages msg ON msg.id = mm.message_id
            WHERE mm.media_id = m.id AND msg.deleted_at IS NULL) AS in_message
"""
_STATE_FROM = """
    FROM media_assets m
    LEFT JOIN post_media pm ON pm.media_id = m.id
    LEFT JOIN posts p ON p.id = pm.post_id
"""


@dataclass(frozen=True)
class _StateRow:
    media_id: UUID
    content_type: str
    size_bytes: int
    blob_path: str
    owner_id: UUID
    owner_live: bool
    status: str
    ready_at: datetime | None
    gone: bool
    post_id: UUID | None
    post_author_id: UUID | None
    post_live: bool | None
    post_status: str | None
    in_message: bool

    def state(self) -> MediaState:
        post = None
        if self.post_id is not None:
            assert self.post_author_id is not None
            assert self.post_status is not None
            post = AttachedPost(
                id=self.post_id,
                author_id=self.post_author_id,
                live=bool(self.post_live),
                status=self.post_status,
            )
        return MediaState(
            owner_id=self.owner_id,
            owner_live=self.owner_live,
            status=self.status,
            ready_at=self.ready_at,
            gone=self.gone,
            post=post,
            in_message=self.in_message,
        )


async def media_state(uow: UnitOfWork, media_id: UUID) -> MediaState | None:
    row = await fetch_one(
        uow.conn, _StateRow, f"SELECT {_STATE_COLUMNS} {_STATE_FROM} WHERE m.id = %s", (media_id,)
    )
    return None if row is None else row.state()


async def read_media(
    uow: UnitOfWork, media_urls: MediaUrls, media_id: UUID, budget: RequestBudget
) -> MediaReady:
    """GET /api/media/{id}: a fresh short-lived read URL when the caller may read the asset; a 409
    for the owner's upload not completed yet; else a 404 that does not say whether it exists."""
    me = uow.require_user()
    row = await fetch_one(
        uow.conn, _StateRow, f"SELECT {_STATE_COLUMNS} {_STATE_FROM} WHERE m.id = %s", (media_id,)
    )
    if row is None:
        raise NotFound("no such media")
    state = row.state()
    if state.status == "pending" and state.owner_id == me and not state.gone:
        # The owner's own upload, not completed yet: say so (the Location of POST /media points here).
        raise Conflict(
            "this upload is not complete yet: PUT the bytes to its uploadUrl, then POST "
            f"/api/media/{media_id}/complete"
        )
    # The privacy rule (services/audience.py): the media of a post reach whoever may see its author's content.
    hidden = state.post is not None and not await may_see(uow, state.post.author_id)
    if not readable_by(state, me, await _db_now(uow), media_urls.unattached_ttl, hidden_by_author=hidden):
        raise NotFound("no such media")
    content_type, size_bytes, blob_path = row.content_type, row.size_bytes, row.blob_path
    async with budget.guard():
        await media_urls.signer.ensure_fresh()
    read = media_urls.signer.read_url(
        MediaRef(media_id=media_id, content_type=content_type, blob_path=blob_path)
    )
    return MediaReady(
        media_id=media_id,
        content_type=content_type,
        size_bytes=size_bytes,
        url=read.url,
        url_expires_at=read.expires_at,
    )


async def _discard(blob: BlobClient, etag: str) -> None:
    """Delete the blob that was inspected, and only that one."""
    with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
        await blob.delete_blob(
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
            rows = await fetch_all(
                conn,
                _StaleUpload,
                """SELECT id, blob_path FROM media_assets
                   WHERE status = 'pending' AND deleted_at IS NULL AND created_at < now() - %s
                   ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED""",
                (older_than, CLEANUP_BATCH),
            )
            if not rows:
                return removed
            outcomes = await asyncio.gather(
                *(_delete_blob(blob_service, container, row.blob_path) for row in rows)
            )
            done = [row.id for row, deleted in zip(rows, outcomes, strict=True) if deleted]
            if done:
                await conn.execute("UPDATE media_assets SET deleted_at = now() WHERE id = ANY(%s)", (done,))
            removed += len(done)
        if len(done) < len(rows):
            # Some blobs could not be deleted; leave them for the next run rather than loop on them.
            return removed
        if len(rows) < CLEANUP_BATCH:
            return removed


async def _delete_blob(
    blob_service: BlobServiceClient,
    container: str,
    blob_path: str,
    left: str = "media cleanup: could not delete blob %s; it stays pending for the next run",
) -> bool:
    try:
        # Snapshots too: the create permission of an upload URL also lets a client snapshot its blob.
        await blob_service.get_blob_client(container, blob_path).delete_blob(delete_snapshots="include")
    except ResourceNotFoundError:
        return True
    except Exception:
        log.warning(left, blob_path, exc_info=True)
        return False
    return True


async def purge_unreadable_media(
    pool: AsyncConnectionPool, blob_service: BlobServiceClient, container: str, unattached_ttl: timedelta
) -> int:
    """The sweep: delete the blob of every ready asset nobody may read any more (its post deleted,
    hidden or removed, its owner's account deleted, or unattached for `unattached_ttl`), then mark
    the row purged. Small batches, each in its own transaction; rows are claimed with SKIP LOCKED, so
    two instances share the work and neither waits on a request that holds an asset. Idempotent: a
    blob already gone is fine (a replay after a crash between the delete and the commit), and a row
    whose blob could not be deleted stays unpurged for the next run. Returns how many were purged."""
    purged = 0
    while True:
        # As the system: the sweep spans every user's media (row-level security lets 'system' through).
        async with system_connection(pool) as conn, conn.transaction():
            cur = await conn.execute(
                """SELECT m.id FROM media_assets m
                   LEFT JOIN post_media pm ON pm.media_id = m.id
                   LEFT JOIN posts p ON p.id = pm.post_id
                   WHERE m.status = 'ready' AND m.purged_at IS NULL AND m.deleted_at IS NULL
                     AND (NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.owner_id AND u.deleted_at IS NULL)
                          OR (pm.media_id IS NULL AND m.ready_at <= now() - %s
                              AND NOT EXISTS (SELECT 1 FROM message_media mm JOIN messages msg ON msg.id = mm.message_id
                                              WHERE mm.media_id = m.id AND msg.deleted_at IS NULL))
                          OR (pm.media_id IS NOT NULL AND (p.deleted_at IS NOT NULL OR p.status <> 'visible')))
                   ORDER BY m.ready_at LIMIT %s FOR UPDATE OF m SKIP LOCKED""",
                (unattached_ttl, CLEANUP_BATCH),
            )
            claimed = [row[0] for row in await cur.fetchall()]
            if not claimed:
                return purged
            # Decided again by the rule itself, in a new statement that sees what committed since the
            # claim was read (a post attaching one of these media just before it): the row locks now
            # held keep it so until this transaction ends.
            rows = await fetch_all(
                conn, _StateRow, f"SELECT {_STATE_COLUMNS} {_STATE_FROM} WHERE m.id = ANY(%s)", (claimed,)
            )
            now_cur = await conn.execute("SELECT now()")
            now_row = await now_cur.fetchone()
            assert now_row is not None
            doomed = [
                (row.media_id, row.blob_path)
                for row in rows
                if purgeable(row.state(), now_row[0], unattached_ttl)
            ]
            if not doomed:
                return purged
            outcomes = await asyncio.gather(
                *(
                    _delete_blob(
                        blob_service,
                        container,
                        path,
                        "media sweep: could not delete blob %s (is Blob storage reachable, and may the app's "
                        "identity delete in the media container?); its row stays unpurged and the next run "
                        "tries again",
                    )
                    for _, path in doomed
                )
            )
            done = [media_id for (media_id, _), deleted in zip(doomed, outcomes, strict=True) if deleted]
            if done:
                await conn.execute("UPDATE media_assets SET purged_at = now() WHERE id = ANY(%s)", (done,))
            purged += len(done)
        if len(done) < len(doomed):
            return purged  # some blobs could not be deleted: the next run tries again
        if len(claimed) < CLEANUP_BATCH:
            return purged
