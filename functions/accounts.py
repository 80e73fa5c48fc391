"""Identity and profiles (docs/api.md): onboarding, the caller's account, public profiles."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest, ok
from shared_code.bootstrap import get_app_context
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.accounts import CreateUser, ErasureAccepted, Me, UpdateProfile
from shared_code.services import accounts, erasure
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
    keys, holds = await erasure.expire_keys_and_holds(ctx.pg_pool, ctx.settings.idempotency_key_ttl_hours)
    log.info("expiry: deleted %d Idempotency-Key response(s) and %d username hold(s)", keys, holds)
