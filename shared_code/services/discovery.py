"""Finding people and posts: user search (name prefixes), post search (full text, ranked), a tag's
posts and the trending tags. Every read keeps to what the caller may see: live accounts, live
visible posts, no one either side of a block, and private authors only for their followers
(services/visibility.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.discovery import prefix_upper_bound, trending_window_start
from shared_code.domain.errors import BadCursor, Invalid, NotFound
from shared_code.domain.text_entities import canonical_tag
from shared_code.schemas.common import Page
from shared_code.schemas.discovery import TrendingTag, TrendingTags
from shared_code.schemas.posts import Author, Post
from shared_code.services.guards import blocked_either_way_ids
from shared_code.services.post_rows import POST_COLUMNS, POST_JOINS, PostRow, post_from_row
from shared_code.services.quotes import quoted_posts
from shared_code.services.visibility import author_visible_sql, shown_by_the_rule

# What every post list here shows: live, visible posts of live accounts the caller may see.
_LIVE_VISIBLE_POST = f"""p.deleted_at IS NULL AND p.status = 'visible' AND u.deleted_at IS NULL
    AND {author_visible_sql("p.author_id")}"""


def tag_of(raw: str) -> str:
    """The canonical tag a path names (without its `#`); 404 when it is no tag, as for any other path
    value that names nothing."""
    tag = canonical_tag(raw)
    if tag is None:
        raise NotFound("no such hashtag: 1-64 letters, digits or _ of any script, with at least one letter")
    return tag


async def list_tag_posts(
    uow: UnitOfWork, cursors: CursorCodec, media_urls: MediaUrls, raw_tag: str, limit: int, cursor: str | None
) -> Page[Post]:
    """The posts whose text uses the tag, newest first."""
    viewer = uow.require_user()
    tag = tag_of(raw_tag)
    scope = f"hashtag:{tag}"
    params: dict[str, Any] = {
        "tag": tag,
        "viewer": viewer,
        "moderator": uow.actor.is_moderator,
        "limit": limit + 1,
    }
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (h.post_created_at, h.post_id) < (%(after_time)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        PostRow,
        f"""SELECT {POST_COLUMNS} {POST_JOINS}
            JOIN hashtag_uses h ON h.post_id = p.id AND h.source_kind = 'post'
            WHERE h.tag = %(tag)s AND {_LIVE_VISIBLE_POST} {after}
            ORDER BY h.post_created_at DESC, h.post_id DESC
            LIMIT %(limit)s""",
        params,
    )
    page = rows[:limit]
    shown = await shown_by_the_rule(uow, {row.author_id for row in page})
    quoted = await quoted_posts(uow, viewer, [row.quote_post_id for row in page])
    items = [post_from_row(row, media_urls, quoted) for row in page if row.author_id in shown]
    last = page[-1] if page else None
    next_cursor = cursors.time_cursor(scope, last.created_at, last.id) if last and len(rows) > limit else None
    return Page[Post](items=items, next_cursor=next_cursor)


@dataclass(frozen=True)
class _Trending:
    tag: str
    uses: int


async def trending_tags(uow: UnitOfWork, now: datetime, limit: int) -> TrendingTags:
    """The most used tags of the window: sums of the hourly buckets the writes keep (no post is read)."""
    uow.require_user()
    start = trending_window_start(now)
    rows = await fetch_all(
        uow.conn,
        _Trending,
        """SELECT tag, sum(uses)::int AS uses FROM hashtag_hourly_uses WHERE hour >= %s
           GROUP BY tag ORDER BY sum(uses) DESC, tag LIMIT %s""",
        (start, limit),
    )
    return TrendingTags(items=[TrendingTag(tag=row.tag, uses=row.uses) for row in rows], window_start=start)


# --- user search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    key: str | None


@dataclass(frozen=True)
class _FoundUser:
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    key: str


async def search_key(uow: UnitOfWork, q: str) -> str:
    """The query as the names are compared (chorus_search_key: trimmed, unaccented, lower case)."""
    row = await fetch_one(uow.conn, _Key, "SELECT chorus_search_key(%s) AS key", (q,))
    if row is None or not row.key:
        raise Invalid("q must hold something to search for", field="q")
    return row.key


def user_search_sql(bounded: bool) -> str:
    """The user search query (parameters low, high, after_key, after_id, hidden, limit); `bounded`:
    whether the prefix has an upper bound (it has but for a prefix of only U+10FFFF characters)."""
    below = "AND {key} < %(high)s" if bounded else ""
    return f"""SELECT m.user_id, u.username::text AS username, pr.display_name, pr.avatar_url, m.key
        FROM ((SELECT u.id AS user_id, u.search_key AS key FROM users u
               WHERE u.deleted_at IS NULL AND u.search_key >= %(low)s {below.format(key="u.search_key")}
                 AND (u.search_key, u.id) > (%(after_key)s, %(after_id)s)
                 AND u.id <> ALL(%(hidden)s::uuid[])
               ORDER BY u.search_key, u.id LIMIT %(limit)s)
              UNION ALL
              (SELECT p.user_id, p.search_key AS key FROM profiles p JOIN users u ON u.id = p.user_id
               WHERE u.deleted_at IS NULL AND p.search_key >= %(low)s {below.format(key="p.search_key")}
                 AND (p.search_key, p.user_id) > (%(after_key)s, %(after_id)s)
                 AND p.user_id <> ALL(%(hidden)s::uuid[])
                 AND NOT (u.search_key >= %(low)s {below.format(key="u.search_key")})
               ORDER BY p.search_key, p.user_id LIMIT %(limit)s)) m
        JOIN users u ON u.id = m.user_id JOIN profiles pr ON pr.user_id = m.user_id
        ORDER BY m.key, m.user_id LIMIT %(limit)s"""  # noqa: S608 (fixed fragments; values are parameters)


async def search_users(
    uow: UnitOfWork, cursors: CursorCodec, q: str, limit: int, cursor: str | None
) -> Page[Author]:
    """Accounts whose username or display name starts with `q` (without case or accents), in the
    order of the matching name. Each branch is one range scan of its index (the "C" collation orders
    by code point) that stops after the page; an account matching by both names is listed once, by
    its username."""
    viewer = uow.require_user()
    low = await search_key(uow, q)
    high = prefix_upper_bound(low)
    scope = f"search-users:{low}"
    after_key, after_id = "", UUID(int=0)
    if cursor:
        position = cursors.decode(scope, cursor)
        try:
            after_key, after_id = str(position["k"]), UUID(position["id"])
        except (KeyError, TypeError, ValueError):
            raise BadCursor("the cursor is not one this API issued") from None
    params: dict[str, Any] = {
        "low": low,
        "high": high,
        "after_key": after_key,
        "after_id": after_id,
        "hidden": await blocked_either_way_ids(uow, viewer),
        "limit": limit + 1,
    }
    rows = await fetch_all(uow.conn, _FoundUser, user_search_sql(bounded=high is not None), params)
    page = rows[:limit]
    items = [
        Author(user_id=r.user_id, username=r.username, display_name=r.display_name, avatar_url=r.avatar_url)
        for r in page
    ]
    next_cursor = (
        cursors.encode(scope, {"k": page[-1].key, "id": str(page[-1].user_id)})
        if page and len(rows) > limit
        else None
    )
    return Page[Author](items=items, next_cursor=next_cursor)


# --- post search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RankedPostRow(PostRow):
    rank: float


async def search_posts(
    uow: UnitOfWork,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    config: str,
    q: str,
    limit: int,
    cursor: str | None,
) -> Page[Post]:
    """Posts matching `q` (web-search syntax: words, "a phrase", -not, or), best first (ts_rank_cd;
    ties newest first), through the posts' tsvector column and its GIN index."""
    viewer = uow.require_user()
    if not q.strip():
        raise Invalid("q must hold something to search for", field="q")
    scope = f"search-posts:{config}:{q}"
    params: dict[str, Any] = {
        "viewer": viewer,
        "moderator": uow.actor.is_moderator,
        "config": config,
        "q": q,
        "limit": limit + 1,
    }
    after = ""
    if cursor:
        position = cursors.decode(scope, cursor)
        try:
            params["after_rank"] = float(position["r"])
            params["after_time"] = datetime.fromisoformat(position["t"])
            params["after_id"] = UUID(position["id"])
        except (KeyError, TypeError, ValueError):
            raise BadCursor("the cursor is not one this API issued") from None
        after = """AND (ts_rank_cd(p.search_vector, query), p.created_at, p.id)
                       < (%(after_rank)s::real, %(after_time)s, %(after_id)s)"""
    rows = await fetch_all(
        uow.conn,
        _RankedPostRow,
        f"""SELECT {POST_COLUMNS}, ts_rank_cd(p.search_vector, query) AS rank
            {POST_JOINS}
            CROSS JOIN websearch_to_tsquery(%(config)s::regconfig, %(q)s) AS query
            WHERE p.search_vector @@ query AND {_LIVE_VISIBLE_POST} {after}
            ORDER BY rank DESC, p.created_at DESC, p.id DESC
            LIMIT %(limit)s""",
        params,
    )
    page = rows[:limit]
    shown = await shown_by_the_rule(uow, {row.author_id for row in page})
    quoted = await quoted_posts(uow, viewer, [row.quote_post_id for row in page])
    items = [post_from_row(row, media_urls, quoted) for row in page if row.author_id in shown]
    next_cursor = (
        cursors.encode(
            scope, {"r": page[-1].rank, "t": page[-1].created_at.isoformat(), "id": str(page[-1].id)}
        )
        if page and len(rows) > limit
        else None
    )
    return Page[Post](items=items, next_cursor=next_cursor)
