"""The social graph (docs/api.md): follow, block, mute, and follower/following lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal
from uuid import UUID

import azure.functions as func

from functions.contract import PAGE_QUERY, api_route
from functions.http_support import (
    ApiRequest,
    no_content,
    ok,
    weigh_by_callers_followers,
    weigh_by_followers_of,
)
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.accounts import FollowAnswer, FollowRequest, PublicProfile
from shared_code.schemas.common import Page
from shared_code.services import social

bp = func.Blueprint()

EdgeChange = Callable[[UnitOfWork, UUID], Awaitable[None]]


async def _change_edge(api: ApiRequest, change: EdgeChange) -> func.HttpResponse:
    target = api.route_id("userId")
    await api.run(lambda uow: change(uow, target))
    return no_content()


@api_route(
    bp,
    "PUT",
    "users/{userId:guid}/follow",
    summary="Follow a user (idempotent); a private account: ask to follow it (202)",
    status=204,
    tag="social",
    weigh=weigh_by_followers_of("userId"),
    other_responses=[
        (
            202,
            FollowAnswer,
            "the account is private: a follow request waits for its approval (asking again while it "
            "waits answers 202 again and changes nothing)",
        )
    ],
)
async def follow_user(api: ApiRequest) -> func.HttpResponse:
    target = api.route_id("userId")
    outcome = await api.run(lambda uow: social.follow(uow, target))
    return ok(FollowAnswer(), status=202) if outcome == "requested" else no_content()


@api_route(
    bp,
    "DELETE",
    "users/{userId:guid}/follow",
    summary="Unfollow a user, or cancel a pending follow request (idempotent)",
    status=204,
    tag="social",
)
async def unfollow_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unfollow)


@api_route(
    bp,
    "PUT",
    "users/{userId:guid}/block",
    summary="Block a user; ends follows both ways (idempotent)",
    status=204,
    tag="social",
)
async def block_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.block)


@api_route(
    bp, "DELETE", "users/{userId:guid}/block", summary="Unblock a user (idempotent)", status=204, tag="social"
)
async def unblock_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unblock)


@api_route(
    bp,
    "PUT",
    "users/{userId:guid}/mute",
    summary="Mute a user: their posts leave the caller's feed (idempotent)",
    status=204,
    tag="social",
)
async def mute_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.mute)


@api_route(
    bp, "DELETE", "users/{userId:guid}/mute", summary="Unmute a user (idempotent)", status=204, tag="social"
)
async def unmute_user(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.unmute)


async def _connections(api: ApiRequest, direction: Literal["followers", "following"]) -> func.HttpResponse:
    user_id = api.route_id("userId")
    limit, cursor = api.page()
    page = await api.run(
        lambda uow: social.list_connections(uow, api.app.cursors, user_id, direction, limit, cursor)
    )
    return ok(page)


@api_route(
    bp,
    "GET",
    "users/{userId:guid}/followers",
    summary="A user's followers",
    response=Page[PublicProfile],
    query=PAGE_QUERY,
    tag="social",
)
async def list_followers(api: ApiRequest) -> func.HttpResponse:
    return await _connections(api, "followers")


@api_route(
    bp,
    "GET",
    "users/{userId:guid}/following",
    summary="Who a user follows",
    response=Page[PublicProfile],
    query=PAGE_QUERY,
    tag="social",
)
async def list_following(api: ApiRequest) -> func.HttpResponse:
    return await _connections(api, "following")


@api_route(
    bp,
    "GET",
    "users/me/follow-requests",
    summary="Pending requests to follow the caller, newest first",
    response=Page[FollowRequest],
    query=PAGE_QUERY,
    tag="social",
)
async def list_follow_requests(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    return ok(await api.run(lambda uow: social.list_follow_requests(uow, api.app.cursors, limit, cursor)))


@api_route(
    bp,
    "POST",
    "users/me/follow-requests/{userId:guid}/approve",
    summary="Approve a follow request: the user follows the caller (idempotent)",
    status=204,
    tag="social",
    weigh=weigh_by_callers_followers,  # the new follow back-fills from, and joins, the caller's fan-out
)
async def approve_follow_request(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.approve_request)


@api_route(
    bp,
    "POST",
    "users/me/follow-requests/{userId:guid}/decline",
    summary="Decline a follow request (idempotent)",
    status=204,
    tag="social",
)
async def decline_follow_request(api: ApiRequest) -> func.HttpResponse:
    return await _change_edge(api, social.decline_request)
