"""The HTTP contract, declared once per route: the route the host serves and the OpenAPI
document both come from `api_route`, so they cannot disagree (a test checks it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import azure.functions as func
from pydantic import BaseModel

from functions.http_support import Handler, endpoint

Access = Literal["anonymous", "user", "moderator", "admin"]


@dataclass(frozen=True)
class QueryParameter:
    name: str
    schema: dict[str, Any]
    description: str


PAGE_QUERY = (
    QueryParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "page size"),
    QueryParameter("cursor", {"type": "string"}, "the nextCursor of the previous page"),
)


@dataclass(frozen=True)
class RouteContract:
    function_name: str
    method: str
    route: str  # as the Functions host reads it, e.g. "posts/{postId:guid}"
    summary: str
    access: Access
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    query: tuple[QueryParameter, ...] = ()
    tags: tuple[str, ...] = field(default=())
    idempotent_create: bool = False
    # Headers the success response may carry besides the usual ones: name -> what it means.
    response_headers: tuple[tuple[str, str], ...] = ()


ROUTES: list[RouteContract] = []


def api_route(
    bp: func.Blueprint,
    method: str,
    route: str,
    *,
    summary: str,
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    access: Access = "user",
    query: Sequence[QueryParameter] = (),
    tag: str,
    response_headers: Mapping[str, str] | None = None,
) -> Callable[[Handler], Any]:
    """Declare and register one HTTP function: its route, its contract, its handler."""

    def decorate(handler: Handler) -> Any:
        ROUTES.append(
            RouteContract(
                function_name=handler.__name__,
                method=method.upper(),
                route=route,
                summary=summary,
                access=access,
                request=request,
                response=response,
                status=status,
                query=tuple(query),
                tags=(tag,),
                idempotent_create=status == 201,
                response_headers=tuple((response_headers or {}).items()),
            )
        )
        function: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]] = endpoint(
            anonymous=access == "anonymous"
        )(handler)
        return bp.route(route=route, methods=[method.upper()])(function)

    return decorate


REACTION_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "type",
        {"type": "string", "enum": ["like", "love", "laugh", "wow", "sad", "angry"]},
        "only this reaction type",
    ),
)
NOTIFICATION_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "unread",
        {"type": "string", "enum": ["true", "false"], "default": "false"},
        "only unread notifications",
    ),
)
