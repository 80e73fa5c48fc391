"""Finding people and posts, hashtags, and comment replies (docs/api.md "Search, hashtags and
mentions")."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func
from pydantic import TypeAdapter, ValidationError

from functions.contract import PAGE_QUERY, POST_SEARCH_QUERY, SEARCH_QUERY, TRENDING_QUERY, api_route
from functions.http_support import ApiRequest, ok
from shared_code.domain.discovery import SEARCH_POSTS_CANDIDATES, SEARCH_QUERY_MAX, TRENDING_LIMIT_DEFAULT
from shared_code.domain.errors import Invalid
from shared_code.domain.limits import PAGE_LIMIT_MAX
from shared_code.schemas.common import NonBlankText, Page
from shared_code.schemas.discovery import TrendingTags
from shared_code.schemas.posts import Author, Comment, Post
from shared_code.services import discovery, engagement

bp = func.Blueprint()

_QUERY_TEXT: TypeAdapter[str] = TypeAdapter(NonBlankText)


def _search_text(api: ApiRequest) -> str:
    """`?q=`: 1 to SEARCH_QUERY_MAX characters, not blank, without NUL (422 otherwise)."""
    q = api.req.params.get("q")
    detail = f"q must be 1 to {SEARCH_QUERY_MAX} characters, not blank, without NUL"
    if q is None or not 1 <= len(q) <= SEARCH_QUERY_MAX:
        raise Invalid(detail, field="q")
    try:
        return _QUERY_TEXT.validate_python(q)
    except ValidationError:
        raise Invalid(detail, field="q") from None


@api_route(
    bp,
    "GET",
    "search/users",
    summary="Accounts whose username or display name starts with q (without case or accents)",
    response=Page[Author],
    query=SEARCH_QUERY,
    tag="search",
)
async def search_users(api: ApiRequest) -> func.HttpResponse:
    q = _search_text(api)
    limit, cursor = api.page()
    return ok(await api.run(lambda uow: discovery.search_users(uow, api.app.cursors, q, limit, cursor)))


@api_route(
    bp,
    "GET",
    "search/posts",
    summary=f"Posts matching q (full text), best match first among the newest {SEARCH_POSTS_CANDIDATES} matches",
    response=Page[Post],
    query=POST_SEARCH_QUERY,
    tag="search",
)
async def search_posts(api: ApiRequest) -> func.HttpResponse:
    q = _search_text(api)
    limit, cursor = api.page()
    app = api.app
    return ok(
        await api.run(
            lambda uow: discovery.search_posts(
                uow, app.cursors, app.media_urls, app.settings.search_text_config, q, limit, cursor
            )
        )
    )


@api_route(
    bp,
    "GET",
    "hashtags/trending",
    summary="The most used hashtags of the last 24 hours",
    response=TrendingTags,
    query=TRENDING_QUERY,
    tag="search",
)
async def trending_hashtags(api: ApiRequest) -> func.HttpResponse:
    raw_limit = api.req.params.get("limit")
    limit = TRENDING_LIMIT_DEFAULT
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= PAGE_LIMIT_MAX:
            raise Invalid(f"limit must be a whole number from 1 to {PAGE_LIMIT_MAX}", field="limit")
        limit = int(raw_limit)
    now = datetime.now(UTC)
    return ok(await api.run(lambda uow: discovery.trending_tags(uow, now, limit)))


@api_route(
    bp,
    "GET",
    "hashtags/{tag}/posts",
    summary="The posts using a hashtag, newest first",
    response=Page[Post],
    query=PAGE_QUERY,
    tag="search",
)
async def list_hashtag_posts(api: ApiRequest) -> func.HttpResponse:
    raw_tag = api.req.route_params.get("tag", "")
    limit, cursor = api.page()
    app = api.app
    return ok(
        await api.run(
            lambda uow: discovery.list_tag_posts(uow, app.cursors, app.media_urls, raw_tag, limit, cursor)
        )
    )


@api_route(
    bp,
    "GET",
    "comments/{commentId:guid}/replies",
    summary="A comment's replies, oldest first",
    response=Page[Comment],
    query=PAGE_QUERY,
    tag="posts",
)
async def list_replies(api: ApiRequest) -> func.HttpResponse:
    comment_id = api.route_id("commentId")
    limit, cursor = api.page()
    return ok(
        await api.run(lambda uow: engagement.list_replies(uow, api.app.cursors, comment_id, limit, cursor))
    )
