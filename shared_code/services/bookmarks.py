"""Bookmarks: posts a user saved, private to that user, newest first.

Read from PostgreSQL, not a projection (docs/read-costs.md): the list must drop a post the moment it
becomes invisible to its owner (deleted, hidden, its author erased, blocked or out of reach), which
is one indexed join here, and the list is read by its owner only, so it is not a hot path to cache.
A bookmark is a row per (user, post), soft-deleted when removed and revived (as new) when saved again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.events import BookmarkCreated, BookmarkDeleted
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Bookmark
from shared_code.services.author_access import author_visible_sql
from shared_code.services.calendar import linked_events
from shared_code.services.guards import visible_post
from shared_code.services.post_rows import POST_COLUMNS, PostRow, post_from_row
from shared_code.services.quotes import quoted_posts


@dataclass(frozen=True)
class _Saved:
    id: UUID
    version: int
    created_at: datetime


async def bookmark(uow: UnitOfWork, post_id: UUID) -> None:
    """Save a post the caller can see; saving it again changes nothing."""
    me = uow.require_user()
    await visible_post(uow, post_id)
    await uow.lock_live_users(me)
    row = await fetch_one(
        uow.conn,
        _Saved,
        """INSERT INTO bookmarks (user_id, post_id) VALUES (%s, %s)
           ON CONFLICT (user_id, post_id) DO UPDATE
               SET deleted_at = NULL, created_at = now(), version = bookmarks.version + 1
               WHERE bookmarks.deleted_at IS NOT NULL
           RETURNING id, version, created_at""",
        (me, post_id),
    )
    if row is None:
        return
    uow.record(
        BookmarkCreated(bookmark_id=row.id, user_id=me, post_id=post_id, created_at=row.created_at),
        row.id,
        row.version,
    )


async def unbookmark(uow: UnitOfWork, post_id: UUID) -> None:
    """Remove the caller's bookmark of a post, whatever became of the post; none: nothing changes."""
    me = uow.require_user()
    row = await fetch_one(
        uow.conn,
        _Saved,
        """UPDATE bookmarks SET deleted_at = now(), version = version + 1
           WHERE user_id = %s AND post_id = %s AND deleted_at IS NULL
           RETURNING id, version, created_at""",
        (me, post_id),
    )
    if row is None:
        return
    uow.record(BookmarkDeleted(bookmark_id=row.id, user_id=me, post_id=post_id), row.id, row.version)


@dataclass(frozen=True)
class _BookmarkRow(PostRow):
    bookmarked_at: datetime


async def list_bookmarks(
    uow: UnitOfWork, cursors: CursorCodec, media_urls: MediaUrls, limit: int, cursor: str | None
) -> Page[Bookmark]:
    """The caller's bookmarks, newest first, keyset-paged on (bookmark time, post id). Posts the caller
    may not see now are filtered in the query, so a page is cut after the filter and never comes short
    while more follow."""
    me = uow.require_user()
    scope = f"bookmarks:{me}"
    params: dict[str, Any] = {"viewer": me, "limit": limit + 1}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (b.created_at, b.post_id) < (%(after_time)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        _BookmarkRow,
        f"""SELECT {POST_COLUMNS}, b.created_at AS bookmarked_at
            FROM bookmarks b JOIN posts p ON p.id = b.post_id JOIN users u ON u.id = p.author_id
            JOIN profiles pr ON pr.user_id = p.author_id JOIN post_counts pc ON pc.post_id = p.id
            WHERE b.user_id = %(viewer)s AND b.deleted_at IS NULL
              AND p.deleted_at IS NULL AND p.status = 'visible' AND u.deleted_at IS NULL
              AND {author_visible_sql("p.author_id")} {after}
            ORDER BY b.created_at DESC, b.post_id DESC
            LIMIT %(limit)s""",  # noqa: S608 (constants and a fixed keyset clause; values are parameters)
        params,
    )
    page = rows[:limit]
    quoted = await quoted_posts(uow, me, [row.quote_post_id for row in page])
    events = await linked_events(uow, [row.event_id for row in page])
    items = [
        Bookmark(
            post_id=row.id,
            bookmarked_at=row.bookmarked_at,
            post=post_from_row(row, media_urls, quoted, events),
        )
        for row in page
    ]
    last = page[-1] if page else None
    next_cursor = (
        cursors.time_cursor(scope, last.bookmarked_at, last.id) if last and len(rows) > limit else None
    )
    return Page[Bookmark](items=items, next_cursor=next_cursor)
