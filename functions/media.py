"""Media uploads and reads (docs/api.md "Media"), and the timer that cleans up uploads never completed
and purges the blobs of media nobody may read any more."""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest, ok
from shared_code.bootstrap import get_app_context
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.media import MediaReady, MediaUpload, RequestUpload
from shared_code.services import media

bp = func.Blueprint()
log = logging.getLogger("chorus.media")

# A pending asset is never removed while its upload URL may still be used: otherwise a late PUT
# would leave a blob that no row points at.
UPLOAD_GRACE = timedelta(minutes=5)


@api_route(
    bp,
    "POST",
    "media",
    summary="Start a media upload: a pending asset and a write-only upload URL",
    request=RequestUpload,
    response=MediaUpload,
    status=201,
    tag="media",
)
async def request_media_upload(api: ApiRequest) -> func.HttpResponse:
    body = api.body(RequestUpload)
    signer = api.app.media_urls.signer
    max_bytes = api.app.settings.media_max_bytes
    pending_max = api.app.settings.rate_limit_media_pending_max
    # A media request costs the bytes it declares, against the caller's bytes per day (a size over
    # MEDIA_MAX_BYTES is refused by the service and costs nothing).
    if body.size_bytes <= max_bytes:
        await api.limiter.charge(api.buckets.media_bytes, api.limit_key, body.size_bytes)

    budget = api.media_storage_budget()

    async def create(uow: UnitOfWork) -> tuple[MediaUpload, str]:
        upload = await media.request_upload(
            uow, signer, body, max_bytes=max_bytes, budget=budget, pending_max=pending_max
        )
        return upload, f"media/{upload.media_id}"

    return await api.create("request_media_upload", body, create)


@api_route(
    bp,
    "POST",
    "media/{mediaId:guid}/complete",
    summary="Check the uploaded blob and mark the asset ready",
    response=MediaReady,
    tag="media",
)
async def complete_media_upload(api: ApiRequest) -> func.HttpResponse:
    media_id = api.route_id("mediaId")
    app = api.app
    return ok(
        await api.run(
            lambda uow: media.complete_upload(
                uow, app.blob_service, app.media_urls, media_id, api.media_storage_budget()
            )
        )
    )


@api_route(
    bp,
    "GET",
    "media/{mediaId:guid}",
    summary="A fresh short-lived read URL for a media asset the caller may see (404 when not)",
    response=MediaReady,
    tag="media",
)
async def read_media(api: ApiRequest) -> func.HttpResponse:
    media_id = api.route_id("mediaId")
    media_urls = api.app.media_urls
    budget = api.media_storage_budget()
    return ok(await api.run(lambda uow: media.read_media(uow, media_urls, media_id, budget)))


@bp.timer_trigger(
    schedule="%MEDIA_CLEANUP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
async def clean_up_pending_media(timer: func.TimerRequest) -> None:
    ctx = await get_app_context()
    settings = ctx.settings
    older_than = max(
        timedelta(minutes=settings.media_pending_max_age_minutes),
        timedelta(minutes=settings.media_upload_sas_minutes) + UPLOAD_GRACE,
    )
    removed = await media.delete_stale_pending(
        ctx.system_pool, ctx.blob_service, settings.media_container, older_than
    )
    log.info("media cleanup: removed %d pending upload(s) older than %s", removed, older_than)
    # The sweep: blobs of assets nobody may read any more (a deleted, hidden or removed post, a deleted
    # account, never attached in time) are deleted and the rows marked purged.
    unattached_ttl = timedelta(hours=settings.media_unattached_ttl_hours)
    purged = await media.purge_unreadable_media(
        ctx.system_pool, ctx.blob_service, settings.media_container, unattached_ttl
    )
    log.info("media sweep: purged %d asset(s) nobody may read any more", purged)
