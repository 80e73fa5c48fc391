"""Health. `GET /api/health` (anonymous) is liveness only: this instance answers, without asking any
dependency or telling anything internal, so a probe or a stranger cannot make it call the stores.
`GET /api/admin/health` (admin role) is the operators' readiness report: each dependency's state and
the outbox backlog; 503 when the canonical store does not answer. It is computed at most every
HEALTH_REPORT_CACHE_SECONDS per instance, so polling it cannot multiply calls to the stores."""

from __future__ import annotations

import time

import azure.functions as func

from functions.contract import api_route
from functions.http_support import ApiRequest
from functions.responses import json_response
from shared_code.bootstrap import health_probes
from shared_code.domain.errors import Forbidden
from shared_code.schemas.ops import Health, Liveness
from shared_code.services.health import HealthReport, check_health

bp = func.Blueprint()

_NO_STORE = {"Cache-Control": "no-store"}


@api_route(
    bp,
    "GET",
    "health",
    summary="Liveness: this instance answers (no dependency is asked)",
    response=Liveness,
    access="anonymous",
    limit="liveness",
    tag="operations",
)
async def health(api: ApiRequest) -> func.HttpResponse:
    return json_response({"status": "alive"}, headers=_NO_STORE)


class _CachedReport:
    """The last report of this instance and when it was made."""

    def __init__(self) -> None:
        self.report: HealthReport | None = None
        self.made_at = -float("inf")
        self.made_for: object = None  # the app context it was made with (tests install several)

    async def get(self, api: ApiRequest) -> HealthReport:
        max_age = api.app.settings.health_report_cache_seconds
        stale = time.monotonic() - self.made_at >= max_age or self.made_for is not api.app
        if self.report is None or stale:
            self.report = await check_health(health_probes(api.app))
            self.made_at, self.made_for = time.monotonic(), api.app
        return self.report


_cached = _CachedReport()


@api_route(
    bp,
    "GET",
    "admin/health",
    summary="Readiness: each dependency's state and the outbox backlog (cached a few seconds)",
    response=Health,
    access="admin",
    tag="operations",
)
async def readiness(api: ApiRequest) -> func.HttpResponse:
    assert api.principal is not None
    if not api.principal.is_admin:
        raise Forbidden("the readiness report needs the admin role")
    report = await _cached.get(api)
    status = 503 if report.status == "down" else 200
    return json_response(report.to_json(), status=status, headers=_NO_STORE)
