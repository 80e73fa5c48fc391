"""Reads served from the projections (docs/api.md): the home feed, notifications, public profiles.
When Cosmos DB is away the feed comes from PostgreSQL (header Chorus-Degraded) and the others
answer 503 (docs/reliability.md)."""

from __future__ import annotations

import re
from datetime import timedelta

import azure.functions as func

from functions.contract import NOTIFICATION_QUERY, PAGE_QUERY, api_route
from functions.http_support import ApiRequest, no_content, ok
from shared_code.domain.errors import Invalid, NotFound
from shared_code.schemas.accounts import PublicProfile
from shared_code.schemas.common import Page
from shared_code.schemas.reads import NOTIFICATION_ID_PATTERN, FeedItem, Notification
from shared_code.services import feed_reads, notification_reads, notifications, profile_reads

bp = func.Blueprint()

# Set on a home feed served from PostgreSQL while Cosmos DB is away (docs/reliability.md).
DEGRADED_HEADER = "Chorus-Degraded"
DEGRADED_HEADER_DOC = (
    "present, with the value `feed-from-postgres`, when the feed was served from PostgreSQL because "
    "Cosmos DB was not answering: the same posts, newest first; the next page's cursor works either way"
)


@api_route(
    bp,
    "GET",
    "feed",
    summary="The caller's home feed, newest first",
    response=Page[FeedItem],
    query=PAGE_QUERY,
    tag="feed",
    response_headers={DEGRADED_HEADER: DEGRADED_HEADER_DOC},
)
async def get_feed(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    app = api.app
    read = await feed_reads.read_feed(
        api.run,
        app.request_cosmos_db,
        api.cosmos_budget(),
        app.cursors,
        app.media_urls,
        limit,
        cursor,
        retention=timedelta(days=app.settings.feed_item_ttl_days),
        subject=api.actor.subject,
        readers=feed_reads.RECENT_READERS,
    )
    response = ok(read.page)
    if read.from_postgres:
        response.headers[DEGRADED_HEADER] = "feed-from-postgres"
    return response


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
        await notification_reads.list_notifications(
            api.run, app.request_cosmos_db, api.cosmos_budget(), app.cursors, unread == "true", limit, cursor
        )
    )


@api_route(
    bp, "POST", "notifications/read-all", summary="Mark every notification read", status=204, tag="feed"
)
async def read_all_notifications(api: ApiRequest) -> func.HttpResponse:
    await notifications.mark_all_read(api.run, api.app.request_cosmos_db, api.cosmos_budget())
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
    await notifications.mark_read(api.run, api.app.request_cosmos_db, api.cosmos_budget(), notification_id)
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
    return ok(
        await profile_reads.read_profile(api.run, api.app.request_cosmos_db, api.cosmos_budget(), user_id)
    )
