"""GET /api/health: anonymous; 200 while the canonical store answers, 503 when it does not."""

from __future__ import annotations

import azure.functions as func

from functions.responses import json_response
from shared_code.app_context import get_app_context
from shared_code.services.health import check_health

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    report = await check_health(await get_app_context())
    status = 503 if report.status == "down" else 200
    return json_response(report.to_json(), status=status, headers={"Cache-Control": "no-store"})
