"""Moderation (API.md): flags, the moderators' queue, decisions, appeals."""

from __future__ import annotations

import azure.functions as func

from functions.http_support import ApiRequest, endpoint, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas_moderation import (
    Appeal,
    AppealDecisionRequest,
    CreateAppeal,
    CreateFlag,
    Flag,
    PostDecision,
)
from shared_code.services import moderation

bp = func.Blueprint()


@bp.route(route="posts/{postId:guid}/flags", methods=["POST"])
@endpoint()
async def flag_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(CreateFlag)

    async def create(uow: UnitOfWork) -> tuple[Flag, str]:
        flag = await moderation.flag_post(uow, post_id, body)
        return flag, f"posts/{post_id}/flags/{flag.id}"

    return await api.create(f"flag_post:{post_id}", body, create)


@bp.route(route="moderation/queue", methods=["GET"])
@endpoint()
async def moderation_queue(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    return ok(await api.run(lambda uow: moderation.queue(uow, api.app.cursors, limit, cursor)))


@bp.route(route="moderation/posts/{postId:guid}/decision", methods=["POST"])
@endpoint()
async def decide_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(PostDecision)
    return ok(await api.run(lambda uow: moderation.decide_post(uow, post_id, body)))


@bp.route(route="appeals", methods=["POST"])
@endpoint()
async def create_appeal(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateAppeal)

    async def create(uow: UnitOfWork) -> tuple[Appeal, str]:
        appeal = await moderation.create_appeal(uow, body)
        return appeal, f"appeals/{appeal.id}"

    return await api.create("create_appeal", body, create)


@bp.route(route="moderation/appeals/{appealId:guid}/decision", methods=["POST"])
@endpoint()
async def decide_appeal(api: ApiRequest) -> func.HttpResponse:
    appeal_id = api.route_id("appealId")
    body = api.body(AppealDecisionRequest)
    return ok(await api.run(lambda uow: moderation.decide_appeal(uow, appeal_id, body)))
