"""Identity and profiles (docs/api.md): onboarding, the caller's account, public profiles."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest, ok
from shared_code.bootstrap import get_app_context
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.accounts import CreateUser, ErasureAccepted, ExportJob, Me, UpdateProfile
from shared_code.schemas.notification_settings import NotificationSettings, UpdateNotificationSettings
from shared_code.services import accounts, erasure, notification_settings
from shared_code.services import export as export_service
from shared_code.services.idempotency import ONBOARDING_OPERATION

bp = func.Blueprint()
log = logging.getLogger("chorus.accounts")


@api_route(
    bp,
    "POST",
    "users",
    summary="Set up the caller's account (onboard the token's subject)",
    request=CreateUser,
    response=Me,
    status=201,
    tag="identity",
)
async def create_user(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateUser)
    principal = api.principal
    assert principal is not None

    async def onboard(uow: UnitOfWork) -> tuple[Me, str]:
        me = await accounts.onboard(uow, body, principal.identity_provider, principal.email)
        return me, "users/me"

    return await api.create(ONBOARDING_OPERATION, body, onboard)


@api_route(
    bp, "GET", "users/me", summary="The caller's account, with private fields", response=Me, tag="identity"
)
async def get_me(api: ApiRequest) -> func.HttpResponse:
    return ok(await api.run(accounts.get_me))


@api_route(
    bp,
    "PATCH",
    "users/me",
    summary="Change the caller's profile",
    request=UpdateProfile,
    response=Me,
    tag="identity",
)
async def update_me(api: ApiRequest) -> func.HttpResponse:
    body = api.body(UpdateProfile)
    return ok(await api.run(lambda uow: accounts.update_profile(uow, body)))


@api_route(
    bp,
    "GET",
    "users/me/notification-settings",
    summary="Which notification types the caller receives",
    response=NotificationSettings,
    tag="identity",
)
async def get_notification_settings(api: ApiRequest) -> func.HttpResponse:
    return ok(await api.run(notification_settings.get_notification_settings))


@api_route(
    bp,
    "PATCH",
    "users/me/notification-settings",
    summary="Turn notification types on or off (a type turned off is not written at all)",
    request=UpdateNotificationSettings,
    response=NotificationSettings,
    tag="identity",
)
async def update_notification_settings(api: ApiRequest) -> func.HttpResponse:
    body = api.body(UpdateNotificationSettings)
    return ok(await api.run(lambda uow: notification_settings.update_notification_settings(uow, body)))


@api_route(
    bp,
    "DELETE",
    "users/me",
    summary="Delete the caller's account: locked at once, its data erased in the background",
    response=ErasureAccepted,
    status=202,
    tag="identity",
)
async def delete_me(api: ApiRequest) -> func.HttpResponse:
    hold_days = api.app.settings.erasure_username_hold_days
    accepted = await api.run(lambda uow: erasure.request_erasure(uow, hold_days))
    return ok(
        ErasureAccepted(user_id=accepted.user_id, status="accepted", requested_at=accepted.requested_at),
        status=202,
    )


@bp.timer_trigger(
    schedule="%IDEMPOTENCY_KEY_EXPIRY_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
async def expire_idempotency_keys(timer: func.TimerRequest) -> None:
    """Stored Idempotency-Key responses older than IDEMPOTENCY_KEY_TTL_HOURS, and username holds that
    ran out (docs/privacy.md)."""
    ctx = await get_app_context()
    keys, holds = await erasure.expire_keys_and_holds(ctx.system_pool, ctx.settings.idempotency_key_ttl_hours)
    log.info("expiry: deleted %d Idempotency-Key response(s) and %d username hold(s)", keys, holds)


_EXPORT_PENDING = "the export is too large to answer at once: a background job writes it; poll the location"


@api_route(
    bp,
    "GET",
    "users/me/export",
    summary="Everything Chorus holds about the caller, as JSON (202 and a job to poll when large)",
    tag="identity",
    other_responses=[(202, ExportJob, _EXPORT_PENDING)],
)
async def export_me(api: ApiRequest) -> func.HttpResponse:
    settings = api.app.settings
    cosmos_db = api.app.request_cosmos_db
    budget = api.cosmos_budget()

    async def export(uow: UnitOfWork) -> dict[str, Any] | ExportJob:
        me = uow.require_user()
        if await export_service.count_items(uow, me) <= settings.export_inline_max_items:
            async with budget.guard():
                return await export_service.build_document(uow, cosmos_db, me)
        accepted = await export_service.request_export(uow)
        return _job(accepted.export_id, "pending")

    result = await api.run(export)
    if isinstance(result, ExportJob):
        return _pending(result)
    return ok(result)


@api_route(
    bp,
    "GET",
    "users/me/exports/{exportId:guid}",
    summary="An export job of the caller: 202 while it runs, then a short-lived download link",
    response=ExportJob,
    tag="identity",
    other_responses=[(202, ExportJob, "the export is still being written; poll again after Retry-After")],
)
async def get_export(api: ApiRequest) -> func.HttpResponse:
    export_id = api.route_id("exportId")
    state = await api.run(lambda uow: export_service.export_state(uow, export_id))
    if state.status != "ready" or state.blob_path is None:
        return _pending(_job(export_id, "pending"))
    signer = api.app.media_urls.signer
    async with api.media_storage_budget().guard():
        await signer.ensure_fresh()
    link = signer.download_url(
        export_service.EXPORT_CONTAINER,
        state.blob_path,
        timedelta(minutes=api.app.settings.export_link_minutes),
    )
    ready = _job(export_id, "ready").model_copy(
        update={"download_url": link.url, "download_expires_at": link.expires_at, "items": state.items}
    )
    return ok(ready)


def _job(export_id: UUID, status: Literal["pending", "ready"]) -> ExportJob:
    return ExportJob(export_id=export_id, status=status, location=f"/api/users/me/exports/{export_id}")


def _pending(job: ExportJob) -> func.HttpResponse:
    response = ok(job, status=202, location=job.location)
    response.headers["Retry-After"] = "2"
    return response
