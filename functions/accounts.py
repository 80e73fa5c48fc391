"""Identity and profiles (API.md): onboarding, the caller's account, public profiles."""

from __future__ import annotations

import azure.functions as func

from functions.http_support import ApiRequest, endpoint, no_content, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas import CreateUser, Me, UpdateProfile
from shared_code.services import accounts

bp = func.Blueprint()


@bp.route(route="users", methods=["POST"])
@endpoint()
async def create_user(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateUser)
    principal = api.principal
    assert principal is not None

    async def onboard(uow: UnitOfWork) -> tuple[Me, str]:
        me = await accounts.onboard(uow, body, principal.identity_provider, principal.email)
        return me, "users/me"

    return await api.create("create_user", body, onboard)


@bp.route(route="users/me", methods=["GET"])
@endpoint()
async def get_me(api: ApiRequest) -> func.HttpResponse:
    return ok(await api.run(accounts.get_me))


@bp.route(route="users/me", methods=["PATCH"])
@endpoint()
async def update_me(api: ApiRequest) -> func.HttpResponse:
    body = api.body(UpdateProfile)
    return ok(await api.run(lambda uow: accounts.update_profile(uow, body)))


@bp.route(route="users/me", methods=["DELETE"])
@endpoint()
async def delete_me(api: ApiRequest) -> func.HttpResponse:
    await api.run(accounts.delete_account)
    return no_content()
