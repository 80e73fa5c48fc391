"""The social graph (API.md): follow, block, mute, and follower/following lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal
from uuid import UUID

import azure.functions as func

from functions.http_support import ApiRequest, endpoint, no_content, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.services import social

bp = func.Blueprint()

EdgeChange = Callable[[UnitOfWork, UUID], Awaitable[None]]


async def _change_edge(api: ApiRequest, change: EdgeChange) -> func.HttpResponse:
    target = api.route_id("userId")
    await api.run(lambda uow: change(uow, target))
    return no_content()


@bp.route(route="users/{userId:guid}/follow", methods=["PUT"])
@endpoint()
async def follow_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.follow)


@bp.route(route="users/{userId:guid}/follow", methods=["DELETE"])
@endpoint()
async def unfollow_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unfollow)


@bp.route(route="users/{userId:guid}/block", methods=["PUT"])
@endpoint()
async def block_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.block)


@bp.route(route="users/{userId:guid}/block", methods=["DELETE"])
@endpoint()
async def unblock_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unblock)


@bp.route(route="users/{userId:guid}/mute", methods=["PUT"])
@endpoint()
async def mute_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.mute)


@bp.route(route="users/{userId:guid}/mute", methods=["DELETE"])
@endpoint()
async def unmute_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unmute)


async def _connections(api: ApiRequest, direction: Literal["followers", "following"]) -> func.HttpResponse:
    user_id = api.route_id("userId")
    limit, cursor = api.page()
    page = await api.run(
        lambda uow: social.list_connections(uow, api.app.cursors, user_id, direction, limit, cursor)
    )
    return ok(page)


@bp.route(route="users/{userId:guid}/followers", methods=["GET"])
@endpoint()
async def list_followers(api: ApiRequest) -> func.HttpResponse:
    return await _connections(api, "followers")


@bp.route(route="users/{userId:guid}/following", methods=["GET"])
@endpoint()
async def list_following(api: ApiRequest) -> func.HttpResponse:
    return await _connections(api, "following")
