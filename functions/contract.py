"""The HTTP contract, declared once per route: the route the host serves and the OpenAPI
document both come from `api_route`, so they cannot disagree (a test checks it). Routes for
people rather than clients (`page_route`) are served but not in the document."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import azure.functions as func
from pydantic import BaseModel

from functions.http_support import Handler, LimitClass, Weigh, endpoint
from shared_code.cursors import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from shared_code.domain.discovery import SEARCH_POSTS_CANDIDATES, SEARCH_QUERY_MAX, TRENDING_LIMIT_DEFAULT
from shared_code.domain.event_rules import EVENT_WINDOW_DEFAULT, EVENT_WINDOW_MAX
from shared_code.domain.limits import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    QUERY_REASON_MAX,
    REACTION_TYPES,
)
from shared_code.schemas.common import NON_BLANK_PATTERN

Access = Literal["anonymous", "user", "moderator", "admin"]


@dataclass(frozen=True)
class QueryParameter:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


PAGE_QUERY = (
    QueryParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX, "default": PAGE_LIMIT_DEFAULT},
        "page size",
    ),
    QueryParameter(
        "cursor",
        {"type": "string", "pattern": CURSOR_PATTERN, "maxLength": CURSOR_MAX_LENGTH},
        "the nextCursor of the previous page of the same list, as given (opaque and signed); "
        "any other value answers 400 bad-cursor. Empty or absent: the first page.",
    ),
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
    # Other success answers the route may give: (status, body model, what it means).
    other_responses: tuple[tuple[int, type[BaseModel], str], ...] = ()
    # The limit the route spends (docs/api.md "Limits"), and whether its cost has a weight rule.
    limit: LimitClass = "write"
    weighted: bool = False


ROUTES: list[RouteContract] = []

_GUID_CONSTRAINT = re.compile(r":guid(?=[:}])")


def host_route(route: str) -> str:
    """The route the host serves: without the `:guid` constraints. A host that cannot match a
    route answers an empty 404, so ids are checked by the function (`ApiRequest.route_id`), which
    answers a 404 problem like any other id that names nothing."""
    return _GUID_CONSTRAINT.sub("", route)


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
    limit: LimitClass | None = None,
    weigh: Weigh | None = None,
    other_responses: Sequence[tuple[int, type[BaseModel], str]] = (),
) -> Callable[[Handler], Any]:
    """Declare and register one HTTP function: its route, its contract, its handler.

    Every route spends a rate limit (docs/api.md "Limits"): anonymous ones per client address, GETs
    the caller's reads, others the caller's writes at cost 1 or `weigh`'s answer."""
    limit_class: LimitClass = limit or (
        "anonymous" if access == "anonymous" else "read" if method.upper() == "GET" else "write"
    )

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
                limit=limit_class,
                weighted=weigh is not None,
                other_responses=tuple(other_responses),
            )
        )
        function: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]] = endpoint(
            anonymous=access == "anonymous", limit=limit_class, weigh=weigh
        )(handler)
        return bp.route(route=host_route(route), methods=[method.upper()])(function)

    return decorate


@dataclass(frozen=True)
class PageRoute:
    """A route served to people, not to API clients (the API docs page and its files): anonymous,
    GET, and deliberately not in the OpenAPI document, which describes the JSON API only."""

    function_name: str
    route: str


PAGES: list[PageRoute] = []


def page_route(bp: func.Blueprint, route: str) -> Callable[[Handler], Any]:
    """Declare and register one anonymous GET route that serves a page or one of its files."""

    def decorate(handler: Handler) -> Any:
        PAGES.append(PageRoute(function_name=handler.__name__, route=route))
        function = endpoint(anonymous=True)(handler)
        return bp.route(route=route, methods=["GET"])(function)

    return decorate


REACTION_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "type",
        {"type": "string", "enum": list(REACTION_TYPES)},
        "only this reaction type",
    ),
)


def _moderation_reason_query(thing: str) -> tuple[QueryParameter, ...]:
    """A moderator deleting someone else's post or comment says why (recorded, and its author may
    appeal); its own author needs no reason, and one given is ignored."""
    return (
        QueryParameter(
            "reason",
            {
                "type": "string",
                "minLength": 1,
                "maxLength": QUERY_REASON_MAX,
                "pattern": NON_BLANK_PATTERN,
            },
            f"why a moderator deletes someone else's {thing}: required then (422 without it), recorded, and "
            f"its author may appeal; ignored when the {thing}'s own author deletes it",
        ),
    )


DELETE_POST_QUERY = _moderation_reason_query("post")
DELETE_COMMENT_QUERY = _moderation_reason_query("comment")
NOTIFICATION_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "unread",
        {"type": "string", "enum": ["true", "false"], "default": "false"},
        "only unread notifications",
    ),
)

# Search (docs/api.md "Search, hashtags and mentions"): what to look for, then the page.
SEARCH_QUERY = (
    QueryParameter(
        "q",
        {
            "type": "string",
            "minLength": 1,
            "maxLength": SEARCH_QUERY_MAX,
            "pattern": NON_BLANK_PATTERN,
        },
        f"what to look for: 1 to {SEARCH_QUERY_MAX} characters, not blank, without NUL (422 otherwise)",
        required=True,
    ),
    *PAGE_QUERY,
)
# Post search: the same `q`, with the rule that bounds what it ranks.
POST_SEARCH_QUERY = (
    QueryParameter(
        "q",
        SEARCH_QUERY[0].schema,
        f'what to look for (web-search syntax: words, "a phrase", -word, or): 1 to {SEARCH_QUERY_MAX} '
        "characters, not blank, without NUL (422 otherwise). The answer ranks at most the newest "
        f"{SEARCH_POSTS_CANDIDATES} live posts that match, written up to the first page's time (the "
        "cursor keeps it): a word found in more posts than that answers as fast as a rare one, with the "
        "best matches among its newest posts",
        required=True,
    ),
    *PAGE_QUERY,
)
TRENDING_QUERY = (
    QueryParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX, "default": TRENDING_LIMIT_DEFAULT},
        "how many tags",
    ),
)

# GET /api/events: the window, then the page (docs/api.md "Events and RSVPs").
EVENT_LIST_QUERY = (
    QueryParameter(
        "from",
        {"type": "string", "format": "date-time"},
        "the window's start (RFC 3339 with an offset; percent-encode a '+'): events still running then "
        "are listed. Absent: now",
    ),
    QueryParameter(
        "to",
        {"type": "string", "format": "date-time"},
        f"the window's end: events starting before it are listed. Absent: {EVENT_WINDOW_DEFAULT.days} days "
        f"after from; at most {EVENT_WINDOW_MAX.days} days after it (422 otherwise)",
    ),
    *PAGE_QUERY,
)
# Direct messages (docs/api.md "Conversations and messages").
CONVERSATIONS_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "requests",
        {"type": "string", "enum": ["true", "false"], "default": "false"},
        "true: the message requests waiting for the caller (from people they do not follow) instead of the inbox",
    ),
)
MESSAGES_QUERY = (
    *PAGE_QUERY,
    QueryParameter(
        "since",
        {"type": "string", "format": "date-time"},
        "only what was sent, edited or deleted after this time (deleted messages as tombstones), "
        "newest change first: a device catching up",
    ),
)
