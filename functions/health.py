"""GET /api/health: anonymous; 200 while the canonical store answers, 503 when it does not."""

from __future__ import annotations

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest
from functions.responses import json_response
from shared_code.bootstrap import health_probes
from shared_code.schemas.ops import Health
from shared_code.services.health import check_health

bp = func.Blueprint()


@api_route(
    bp,
    "GET",
    "health",
    summary="Each dependency's state and the outbox backlog",
    response=Health,
    access="anonymous",
    tag="operations",
)
async def health(api: ApiRequest) -> func.HttpResponse:
    report = await check_health(health_probes(api.app))
    status = 503 if report.status == "down" else 200
    return json_response(report.to_json(), status=status, headers={"Cache-Control": "no-store"})
