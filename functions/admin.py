"""Operations routes (docs/api.md "Operations"; runbooks in docs/operations.md): admin role only. The same use cases run from
`python -m shared_code.ops` for the platform team."""

from __future__ import annotations

import re

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest, ok
from shared_code.bootstrap import runbook
from shared_code.domain.errors import NotFound
from shared_code.domain.limits import BIGINT_MAX
from shared_code.schemas.ops import (
    FAILURE_ID_PATTERN,
    ChangeFeedFailures,
    DriftResult,
    FeedRebuildResult,
    ReconcileRequest,
    ReconcileResult,
    ReplayResult,
    RequeueRequest,
    RequeueResult,
    SkipRequest,
    SkipResult,
)

bp = func.Blueprint()


@api_route(
    bp,
    "POST",
    "admin/outbox/requeue",
    summary="Dead outbox events (all, or the listed ids) back to pending",
    request=RequeueRequest,
    response=RequeueResult,
    access="admin",
    tag="operations",
)
async def requeue_outbox(api: ApiRequest) -> func.HttpResponse:
    body = api.body(RequeueRequest) if api.req.get_body() else RequeueRequest()
    return ok(await runbook(api.app).requeue_dead_events(api.actor, body.event_ids))


@api_route(
    bp,
    "POST",
    "admin/outbox/skip",
    summary="Give up on dead outbox events, recording why; they stop blocking their aggregates",
    request=SkipRequest,
    response=SkipResult,
    access="admin",
    tag="operations",
)
async def skip_outbox_events(api: ApiRequest) -> func.HttpResponse:
    body = api.body(SkipRequest)
    return ok(await runbook(api.app).skip_dead_events(api.actor, body.event_ids, body.reason))


@api_route(
    bp,
    "GET",
    "admin/change-feed/failures",
    summary="Change-feed batches that failed past their retries and are not replayed yet, oldest first",
    response=ChangeFeedFailures,
    access="admin",
    tag="operations",
)
async def list_change_feed_failures(api: ApiRequest) -> func.HttpResponse:
    return ok(await runbook(api.app).list_change_feed_failures(api.actor))


@api_route(
    bp,
    "POST",
    "admin/change-feed/failures/{failureId}/replay",
    summary="Replay one recorded change-feed failure, once (409 if it was replayed already)",
    response=ReplayResult,
    access="admin",
    tag="operations",
)
async def replay_change_feed_failure(api: ApiRequest) -> func.HttpResponse:
    raw = api.req.route_params.get("failureId", "")
    failure_id = int(raw) if re.fullmatch(FAILURE_ID_PATTERN, raw) else 0
    if not 1 <= failure_id <= BIGINT_MAX:
        raise NotFound(f"there is no change feed failure {raw!r}")
    return ok(await runbook(api.app).replay_change_feed_failure(api.actor, failure_id))


@api_route(
    bp,
    "POST",
    "admin/feeds/{userId:guid}/rebuild",
    summary="Rebuild one user's home feed from PostgreSQL",
    response=FeedRebuildResult,
    access="admin",
    tag="operations",
)
async def rebuild_feed(api: ApiRequest) -> func.HttpResponse:
    return ok(await runbook(api.app).rebuild_user_feed(api.actor, api.route_id("userId")))


@api_route(
    bp,
    "POST",
    "admin/reconcile",
    summary="Compare PostgreSQL with the projections; repair on request",
    request=ReconcileRequest,
    response=ReconcileResult,
    access="admin",
    tag="operations",
)
async def reconcile(api: ApiRequest) -> func.HttpResponse:
    body = api.body(ReconcileRequest) if api.req.get_body() else ReconcileRequest()
    return ok(
        await runbook(api.app).reconcile_projections(api.actor, body.repair, body.user_id, body.feed_sample)
    )


@api_route(
    bp,
    "GET",
    "admin/schema/drift",
    summary="Differences between the live schema and sql/",
    response=DriftResult,
    access="admin",
    tag="operations",
)
async def schema_drift(api: ApiRequest) -> func.HttpResponse:
    return ok(await runbook(api.app).schema_drift_report(api.actor))
