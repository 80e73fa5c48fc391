"""Moderation (docs/api.md): flags, the moderators' queue, decisions, appeals."""

from __future__ import annotations

import azure.functions as func

from functions.contract import PAGE_QUERY, api_route
from functions.http_support import ApiRequest, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.common import Page
from shared_code.schemas.moderation import (
    Appeal,
    AppealDecisionRequest,
    CreateAppeal,
    CreateFlag,
    Flag,
    ModerationOutcome,
    PostDecision,
    QueueItem,
)
from shared_code.services import moderation

bp = func.Blueprint()


@api_route(
    bp,
    "POST",
    "posts/{postId:guid}/flags",
    summary="Flag a post for moderators",
    request=CreateFlag,
    response=Flag,
    status=201,
    tag="moderation",
)
async def flag_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(CreateFlag)

    async def create(uow: UnitOfWork) -> tuple[Flag, str]:
        flag = await moderation.flag_post(uow, post_id, body)
        return flag, f"posts/{post_id}/flags/{flag.id}"

    return await api.create(f"flag_post:{post_id}", body, create)


@api_route(
    bp,
    "GET",
    "moderation/queue",
    summary="Flagged posts, most flagged first",
    response=Page[QueueItem],
    access="moderator",
    query=PAGE_QUERY,
    tag="moderation",
)
async def moderation_queue(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    return ok(await api.run(lambda uow: moderation.queue(uow, api.app.cursors, limit, cursor)))


@api_route(
    bp,
    "POST",
    "moderation/posts/{postId:guid}/decision",
    summary="Hide, remove or restore a post",
    request=PostDecision,
    response=ModerationOutcome,
    access="moderator",
    tag="moderation",
)
async def decide_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(PostDecision)
    return ok(await api.run(lambda uow: moderation.decide_post(uow, post_id, body)))


@api_route(
    bp,
    "POST",
    "appeals",
    summary="Appeal a moderation decision on one's own post",
    request=CreateAppeal,
    response=Appeal,
    status=201,
    tag="moderation",
)
async def create_appeal(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateAppeal)

    async def create(uow: UnitOfWork) -> tuple[Appeal, str]:
        appeal = await moderation.create_appeal(uow, body)
        return appeal, f"appeals/{appeal.id}"

    return await api.create("create_appeal", body, create)


@api_route(
    bp,
    "POST",
    "moderation/appeals/{appealId:guid}/decision",
    summary="Uphold or overturn an appeal",
    request=AppealDecisionRequest,
    response=Appeal,
    access="moderator",
    tag="moderation",
)
async def decide_appeal(api: ApiRequest) -> func.HttpResponse:
    appeal_id = api.route_id("appealId")
    body = api.body(AppealDecisionRequest)
    return ok(await api.run(lambda uow: moderation.decide_appeal(uow, appeal_id, body)))
