"""Operations routes (API.md): admin role only. The same use cases run from
`python -m shared_code.ops` for the platform team."""

from __future__ import annotations

import azure.functions as func

from functions.http_support import ApiRequest, endpoint, ok
from shared_code.ops import runbook
from shared_code.schemas_ops import ReconcileRequest, RequeueRequest

bp = func.Blueprint()


@bp.route(route="admin/outbox/requeue", methods=["POST"])
@endpoint()
async def requeue_outbox(api: ApiRequest) -> func.HttpResponse:
    body = api.body(RequeueRequest) if api.req.get_body() else RequeueRequest()
    return ok(await runbook.requeue_dead_events(api.app, api.actor, body.event_ids))


@bp.route(route="admin/feeds/{userId:guid}/rebuild", methods=["POST"])
@endpoint()
async def rebuild_feed(api: ApiRequest) -> func.HttpResponse:
    return ok(await runbook.rebuild_user_feed(api.app, api.actor, api.route_id("userId")))


@bp.route(route="admin/reconcile", methods=["POST"])
@endpoint()
async def reconcile(api: ApiRequest) -> func.HttpResponse:
    body = api.body(ReconcileRequest) if api.req.get_body() else ReconcileRequest()
    return ok(await runbook.reconcile_projections(api.app, api.actor, body.repair, body.user_id, body.feed_sample))


@bp.route(route="admin/schema/drift", methods=["GET"])
@endpoint()
async def schema_drift(api: ApiRequest) -> func.HttpResponse:
    return ok(await runbook.schema_drift_report(api.app, api.actor))
