"""Calling the app's HTTP functions in-process: the real functions, routed by the local
host's route table, with real PostgreSQL and Cosmos behind them; no sockets in between."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from devhost.host.app_index import FunctionSpec
from devhost.host.http_server import build_route_table
from devhost.host.routing import RouteTable
from devhost.tokens import issue_token


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:300]!r}>"


@dataclass
class ApiClient:
    specs: list[FunctionSpec]
    state_dir: Path
    _table: RouteTable[FunctionSpec] = field(init=False)

    def __post_init__(self) -> None:
        self._table = build_route_table([s for s in self.specs if s.trigger_type == "httpTrigger"])

    def token(self, subject: str, role: str = "user") -> str:
        return issue_token(self.state_dir, subject, role)

    async def call(
        self,
        method: str,
        path: str,
        *,
        subject: str | None = None,
        role: str = "user",
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Response:
        """`path` is as a client writes it, e.g. "/api/posts?limit=5"."""
        parts = urlsplit(path)
        assert parts.path.startswith("/api/"), path
        match = self._table.resolve(method, parts.path[len("/api") :])
        if match.target is None:
            return Response(405 if match.allowed_methods else 404, {}, b"")
        request_headers = {"content-type": "application/json", **(headers or {})}
        if token is None and subject is not None:
            token = self.token(subject, role)
        if token is not None:
            request_headers["authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
        params = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        request = func.HttpRequest(
            method=method,
            url="http://localhost" + path,
            headers=request_headers,
            params=params,
            route_params=match.route_params,
            body=body or b"",
        )
        result = await match.target.user_function(request)
        assert isinstance(result, func.HttpResponse)
        return Response(
            result.status_code, {k.lower(): v for k, v in result.headers.items()}, result.get_body()
        )
