"""Finding people and posts: user search (name prefixes), post search (full text, ranked), a tag's
posts and the trending tags. Every read keeps to what the caller may see: live accounts, live
visible posts, no one either side of a block, and private authors only for their followers
(services/visibility.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.discovery import (
    SEARCH_POSTS_CANDIDATES,
    TRENDING_RETENTION_HOURS,
    USER_SEARCH_ROUNDS,
    NamePosition,
    hour_bucket,
    prefix_upper_bound,
    seen_through,
    trending_window_start,
)
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


# Old buckets go in batches, oldest first, each its own transaction (the trigger's rows stay short-locked).
_PRUNE_TRENDING_SQL = """DELETE FROM hashtag_hourly_uses WHERE (hour, tag) IN (
    SELECT hour, tag FROM hashtag_hourly_uses WHERE hour < %s ORDER BY hour, tag LIMIT %s)"""


async def prune_trending_buckets(
    pool: AsyncConnectionPool, now: datetime, batch: int = 1000, batches: int = 50
) -> int:
    """Delete the hourly trending buckets older than TRENDING_RETENTION_HOURS (the window reads the
    last 24 hours; without this the table grows by every tag of every hour forever): at most
    `batches` batches of `batch` rows per run, so a backlog shrinks over several runs."""
    cutoff = hour_bucket(now) - timedelta(hours=TRENDING_RETENTION_HOURS)
    deleted = 0
    for _ in range(batches):
        async with pool.connection() as conn:
            cur = await conn.execute(_PRUNE_TRENDING_SQL, (cutoff, batch))
        deleted += cur.rowcount
        if cur.rowcount < batch:
            break
    return deleted


# --- user search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    key: str | None


async def search_key(uow: UnitOfWork, q: str) -> str:
    """The query as the names are compared (chorus_search_key: trimmed, unaccented, lower case)."""
    row = await fetch_one(uow.conn, _Key, "SELECT chorus_search_key(%s) AS key", (q,))
    if row is None or not row.key:
        raise Invalid("q must hold something to search for", field="q")
    return row.key


@dataclass(frozen=True)
class _NameEntry:
    by_username: bool
    key: str
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    listed: bool


def user_search_sql(bounded: bool) -> str:
    """One round of user search (parameters low, high, after_key, after_id, window): the next
    `window` entries after (after_key, after_id) in each name index's prefix range, each with its
    account's names and whether it is listed there (live, and by its display name only when its
    username does not match: an account matching by both is listed once, by its username).
    `bounded`: whether the prefix has an upper bound (it has but for a prefix of only U+10FFFF).

    Each branch is one range scan of its index that stops after `window` entries. Both its lower
    bounds (the row comparison, and the same key alone, from which PostgreSQL estimates the range)
    are the position itself, never below it: with a bound below the position (the prefix's start
    next to a cursor, or an empty key), PostgreSQL may start the scan at the lower one and read
    every entry between."""
    below = "AND {key} < %(high)s" if bounded else ""
    return f"""SELECT m.by_username, m.key, m.user_id, u.username::text AS username, pr.display_name,
               pr.avatar_url,
               (u.deleted_at IS NULL AND pr.deleted_at IS NULL
                AND (m.by_username OR NOT (u.search_key >= %(low)s {below.format(key="u.search_key")})))
                   AS listed
        FROM ((SELECT true AS by_username, u.search_key AS key, u.id AS user_id FROM users u
               WHERE u.deleted_at IS NULL AND (u.search_key, u.id) > (%(after_key)s, %(after_id)s)
                 AND u.search_key >= %(after_key)s
                 {below.format(key="u.search_key")}
               ORDER BY u.search_key, u.id LIMIT %(window)s)
              UNION ALL
              (SELECT false, p.search_key, p.user_id FROM profiles p
               WHERE p.deleted_at IS NULL AND (p.search_key, p.user_id) > (%(after_key)s, %(after_id)s)
                 AND p.search_key >= %(after_key)s
                 {below.format(key="p.search_key")}
               ORDER BY p.search_key, p.user_id LIMIT %(window)s)) m
        JOIN users u ON u.id = m.user_id JOIN profiles pr ON pr.user_id = m.user_id"""  # noqa: S608 (fixed fragments; values are parameters)


def user_search_params(low: str, high: str | None, after: NamePosition | None, window: int) -> dict[str, Any]:
    """The parameters of `user_search_sql` for the entries after `after` (None: from the prefix's
    start, which no entry equals: the nil id is no account's)."""
    after_key, after_id = after if after is not None and after >= (low, UUID(int=0)) else (low, UUID(int=0))
    return {"low": low, "high": high, "after_key": after_key, "after_id": after_id, "window": window}


async def search_users(
    uow: UnitOfWork, cursors: CursorCodec, q: str, limit: int, cursor: str | None
) -> Page[Author]:
    """Accounts whose username or display name starts with `q` (without case or accents), in the
    order of the matching name. Each round reads the next limit + 1 entries of each name index's
    range (the "C" collation orders by code point, so a prefix is one range scan) and lists those
    the caller may see up to where both indexes have been read; entries not listed (a block either
    way, an account matching by both names) make another round, at most USER_SEARCH_ROUNDS, so a
    page costs a bounded number of index entries however many accounts match."""
    viewer = uow.require_user()
    low = await search_key(uow, q)
    high = prefix_upper_bound(low)
    scope = f"search-users:{low}"
    position: NamePosition | None = None
    if cursor:
        decoded = cursors.decode(scope, cursor)
        try:
            position = (str(decoded["k"]), UUID(decoded["id"]))
        except (KeyError, TypeError, ValueError):
            raise BadCursor("the cursor is not one this API issued") from None
    hidden = set(await blocked_either_way_ids(uow, viewer))
    window = limit + 1
    found: list[_NameEntry] = []
    for _ in range(USER_SEARCH_ROUNDS):
        entries = await fetch_all(
            uow.conn,
            _NameEntry,
            user_search_sql(high is not None),
            user_search_params(low, high, position, window),
        )
        branches = [
            sorted((e.key, e.user_id) for e in entries if e.by_username == by_username)
            for by_username in (True, False)
        ]
        position = seen_through(branches, window)
        found += sorted(
            (
                e
                for e in entries
                if e.listed
                and e.user_id not in hidden
                and (position is None or (e.key, e.user_id) <= position)
            ),
            key=lambda e: (e.key, e.user_id),
        )
        if len(found) > limit or position is None:
            break
    page = found[:limit]
    if len(found) > limit:
        position = (page[-1].key, page[-1].user_id)
    items = [
        Author(user_id=e.user_id, username=e.username, display_name=e.display_name, avatar_url=e.avatar_url)
        for e in page
    ]
    # A short page may still have a cursor: the rounds' budget ran out before the page filled.
    next_cursor = cursors.encode(scope, {"k": position[0], "id": str(position[1])}) if position else None
    return Page[Author](items=items, next_cursor=next_cursor)


# --- post search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RankedPostRow(PostRow):
    rank: float
    until: datetime


# The query as text search reads it; with the values known when the statement is planned (see
# search_posts: never a generic plan), PostgreSQL folds it to a constant and can weigh how many
# posts it matches from the column's statistics.
_TSQUERY = "websearch_to_tsquery(%(config)s::regconfig, %(q)s)"


def post_search_sql(first_page: bool) -> str:
    """Post search (parameters config, q, until, candidates, viewer, moderator, limit, and after a
    first page after_rank, after_time, after_id): of the newest `candidates` live, visible posts
    matching the query written until `until` (None on a first page: this statement's time), those
    the caller may see, best first.

    The candidates are chosen by time, not by rank, so that their number bounds the cost: for a word
    in many posts PostgreSQL walks posts_live_newest and stops at that many matches; for a rare one
    it reads the GIN index's few matches and sorts them by time. Ranking reads only the candidates,
    and the visibility rule only as many of them, best first, as the page needs."""
    after = (
        ""
        if first_page
        else "AND (c.rank, c.created_at, c.id) < (%(after_rank)s::real, %(after_time)s, %(after_id)s)"
    )
    return f"""WITH candidates AS MATERIALIZED (
            SELECT c.id, c.created_at, ts_rank_cd(c.search_vector, {_TSQUERY}) AS rank FROM posts c
            WHERE c.search_vector @@ {_TSQUERY} AND c.deleted_at IS NULL AND c.status = 'visible'
              AND c.created_at <= coalesce(%(until)s::timestamptz, statement_timestamp())
            ORDER BY c.created_at DESC, c.id DESC LIMIT %(candidates)s)
        SELECT {POST_COLUMNS}, c.rank, coalesce(%(until)s::timestamptz, statement_timestamp()) AS until
        FROM (SELECT * FROM candidates c ORDER BY c.rank DESC, c.created_at DESC, c.id DESC) c
        JOIN posts p ON p.id = c.id
        JOIN users u ON u.id = p.author_id
        JOIN profiles pr ON pr.user_id = p.author_id
        JOIN post_counts pc ON pc.post_id = p.id
        WHERE {_LIVE_VISIBLE_POST} {after}
        ORDER BY c.rank DESC, c.created_at DESC, c.id DESC
        LIMIT %(limit)s"""  # noqa: S608 (fixed fragments; values are parameters)


async def search_posts(
    uow: UnitOfWork,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    config: str,
    q: str,
    limit: int,
    cursor: str | None,
) -> Page[Post]:
    """Posts matching `q` (web-search syntax: words, "a phrase", -not, or) among the newest
    SEARCH_POSTS_CANDIDATES live matches written up to the first page's time, best first
    (ts_rank_cd; ties newest first). The first page's time travels in the cursor, so the later pages
    rank the same candidates however many posts are written meanwhile."""
    viewer = uow.require_user()
    if not q.strip():
        raise Invalid("q must hold something to search for", field="q")
    scope = f"search-posts:{config}:{q}"
    params: dict[str, Any] = {
        "viewer": viewer,
        "moderator": uow.actor.is_moderator,
        "config": config,
        "q": q,
        "candidates": SEARCH_POSTS_CANDIDATES,
        "until": None,
        "limit": limit + 1,
    }
    if cursor:
        position = cursors.decode(scope, cursor)
        try:
            # A cursor issued before the first page's time travelled in it ranks up to now.
            params["until"] = datetime.fromisoformat(position["u"]) if "u" in position else None
            params["after_rank"] = float(position["r"])
            params["after_time"] = datetime.fromisoformat(position["t"])
            params["after_id"] = UUID(position["id"])
        except (KeyError, TypeError, ValueError):
            raise BadCursor("the cursor is not one this API issued") from None
    # Never prepared: a prepared statement may run a generic plan, which cannot tell a common word
    # from a rare one and would pick one way to find the candidates for both.
    rows = await fetch_all(
        uow.conn, _RankedPostRow, post_search_sql(first_page=not cursor), params, prepare=False
    )
    page = rows[:limit]
    shown = await shown_by_the_rule(uow, {row.author_id for row in page})
    quoted = await quoted_posts(uow, viewer, [row.quote_post_id for row in page])
    items = [post_from_row(row, media_urls, quoted) for row in page if row.author_id in shown]
    next_cursor = (
        cursors.encode(
            scope,
            {
                "u": page[-1].until.isoformat(),
                "r": page[-1].rank,
                "t": page[-1].created_at.isoformat(),
                "id": str(page[-1].id),
            },
        )
        if page and len(rows) > limit
        else None
    )
    return Page[Post](items=items, next_cursor=next_cursor)
