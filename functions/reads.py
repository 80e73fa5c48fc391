"""Reads served from the projections (docs/api.md): the home feed, notifications, public profiles."""

from __future__ import annotations

import re

import azure.functions as func

from functions.contract import NOTIFICATION_QUERY, PAGE_QUERY, api_route
from functions.http_support import ApiRequest, no_content, ok
from shared_code.domain.errors import Invalid, NotFound
from shared_code.schemas import NOTIFICATION_ID_PATTERN, FeedItem, Notification, Page, PublicProfile
from shared_code.services import projection_reads

bp = func.Blueprint()


@api_route(
    bp,
    "GET",
    "feed",
    summary="The caller's home feed, newest first",
    response=Page[FeedItem],
    query=PAGE_QUERY,
    tag="feed",
)
async def get_feed(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    app = api.app
    return ok(
        await api.run(
            lambda uow: projection_reads.read_feed(
                uow, app.cosmos_db, app.cursors, app.media_urls, limit, cursor
            )
        )
    )


@api_route(
    bp,
    "GET",
    "notifications",
    summary="The caller's notifications, newest first",
    response=Page[Notification],
    query=NOTIFICATION_QUERY,
    tag="feed",
)
async def list_notifications(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    unread = api.req.params.get("unread", "false")
    if unread not in ("true", "false"):
        raise Invalid("unread must be true or false", field="unread")
    app = api.app
    return ok(
        await api.run(
            lambda uow: projection_reads.list_notifications(
                uow, app.cosmos_db, app.cursors, unread == "true", limit, cursor
            )
        )
    )


@api_route(
    bp, "POST", "notifications/read-all", summary="Mark every notification read", status=204, tag="feed"
)
async def read_all_notifications(api: ApiRequest) -> func.HttpResponse:
    await api.run(lambda uow: projection_reads.mark_all_read(uow, api.app.cosmos_db))
    return no_content()


@api_route(
    bp,
    "POST",
    "notifications/{notificationId}/read",
    summary="Mark one notification read",
    status=204,
    tag="feed",
)
async def read_notification(api: ApiRequest) -> func.HttpResponse:
    notification_id = api.req.route_params.get("notificationId", "")
    if re.fullmatch(NOTIFICATION_ID_PATTERN, notification_id) is None:
        raise NotFound("no such notification")
    await api.run(lambda uow: projection_reads.mark_read(uow, api.app.cosmos_db, notification_id))
    return no_content()


@api_route(
    bp,
    "GET",
    "profiles/{userId:guid}",
    summary="A public profile with follower, following and post counts",
    response=PublicProfile,
    tag="identity",
)
async def get_profile(api: ApiRequest) -> func.HttpResponse:
    user_id = api.route_id("userId")
    return ok(await api.run(lambda uow: projection_reads.read_profile(uow, api.app.cosmos_db, user_id)))
