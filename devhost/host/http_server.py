"""HTTP functions behind a real HTTP server, under the host's routePrefix."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.host.app_index import FunctionSpec, resolve_setting_refs
from devhost.host.invocation import Invoker
from devhost.host.routing import Route, RouteTable, RouteTemplate

log = logging.getLogger("devhost.http")

# The Functions host accepts request bodies up to FUNCTIONS_REQUEST_BODY_SIZE_LIMIT bytes (100 MB unless
# set; Chorus sets it to MAX_REQUEST_BODY_BYTES) and refuses a larger declared Content-Length before
# reading the body. The app checks the header again (functions/http_support.refuse_large_body).
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024


def max_body_bytes() -> int:
    raw = os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_BODY_BYTES


def build_route_table(specs: list[FunctionSpec]) -> RouteTable[FunctionSpec]:
    routes = []
    for spec in specs:
        trigger = spec.trigger
        template = resolve_setting_refs(str(trigger.get("route") or spec.name))
        methods = frozenset(str(m).upper() for m in trigger.get("methods") or ())
        routes.append(Route(RouteTemplate.parse(template), methods, spec))
    return RouteTable(routes)


# The Functions host's own status endpoint (outside the routePrefix); locally it says which worker
# answered, which timers it holds and which change-feed leases it reads (for tests and operators).
HOST_STATUS_PATH = "/admin/host/status"


class HttpFrontEnd:
    def __init__(
        self,
        specs: list[FunctionSpec],
        invoker: Invoker,
        route_prefix: str,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._status = status
        self._table = build_route_table(specs)
        self._invoker = invoker
        self._prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self._max_body = max_body_bytes()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body)
        if self._status is not None:
            app.router.add_get(HOST_STATUS_PATH, self._host_status)
        # [\s\S], not ".": a path may hold an encoded newline, and it must reach our router too.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._dispatch)
        return app

    async def _host_status(self, request: web.Request) -> web.Response:
        assert self._status is not None
        return web.json_response(self._status())

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if self._prefix:
            if not (path == self._prefix or path.lower().startswith(self._prefix.lower() + "/")):
                return web.Response(status=404)
            path = path[len(self._prefix) :]
        match = self._table.resolve(request.method, path)
        if match.target is None:
            if match.allowed_methods:
                return web.Response(status=405, headers={"Allow": ", ".join(sorted(match.allowed_methods))})
            return web.Response(status=404)
        spec = match.target
        if request.content_length is not None and request.content_length > self._max_body:
            return _too_large(request.content_length, self._max_body)
        body = await request.read()
        # As the Functions front end does: the address it accepted the connection from is appended to
        # X-Forwarded-For (the app trusts only that last entry; docs/api.md "Limits").
        headers = {k: v for k, v in request.headers.items() if k.lower() != "x-forwarded-for"}
        forwarded = [v.strip() for v in request.headers.getall("X-Forwarded-For", []) if v.strip()]
        if request.remote:
            forwarded.append(request.remote)
        if forwarded:
            headers["X-Forwarded-For"] = ", ".join(forwarded)
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=dict(request.query),
            route_params=match.route_params,
            body=body,
        )
        try:
            result: Any = await self._invoker.invoke(
                spec,
                http_request,
                summary=f"{request.method} {request.path_qs}",
                trace_parent=request.headers.get("traceparent"),
            )
        except Exception:
            log.exception("function %s raised; answering 500", spec.name)
            return web.Response(status=500)
        return _to_aiohttp(result)


def _too_large(declared: int, limit: int) -> web.Response:
    """Refused by the declared length, before the body is read; the connection is not reused, so
    the unread body is never taken for a next request."""
    body = {
        "type": "urn:chorus:problem:payload-too-large",
        "title": "Request body too large",
        "status": 413,
        "detail": f"the request body is over {limit} bytes (Content-Length {declared})",
    }
    return web.Response(
        status=413,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers={"Connection": "close"},
    )


def _to_aiohttp(result: Any) -> web.Response:
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(text=result)
    if not isinstance(result, func.HttpResponse):
        log.error("HTTP function returned %s, not an HttpResponse; answering 500", type(result).__name__)
        return web.Response(status=500)
    headers = dict(result.headers)
    content_type = headers.pop("Content-Type", None) or headers.pop("content-type", None)
    if content_type is None and result.mimetype:
        # As the Functions worker encodes it: a charset for text/* types only.
        text = result.mimetype.startswith("text/") and result.charset
        content_type = f"{result.mimetype}; charset={result.charset}" if text else result.mimetype
    response = web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if content_type:
        response.headers["Content-Type"] = content_type
    return response
