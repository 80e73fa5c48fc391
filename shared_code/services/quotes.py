"""Quotes: a post that embeds another. The embedded post is read when the quote is read, for that
reader, so it shows the quoted post's current author and text, or `unavailable` once it is deleted,
hidden or removed, or its author is out of the reader's reach (services/author_access.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import Invalid
from shared_code.schemas.posts import Author, QuotedPost
from shared_code.schemas.reads import FeedItem
from shared_code.services.author_access import author_visible_sql


@dataclass(frozen=True)
class _QuotedRow:
    id: UUID
    author_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    content: str
    created_at: datetime
    available: bool


_QUOTED = f"""SELECT p.id, p.author_id, u.username, pr.display_name, pr.avatar_url, p.content, p.created_at,
        (p.deleted_at IS NULL AND p.status = 'visible' AND u.deleted_at IS NULL
         AND {author_visible_sql("p.author_id")}) AS available
    FROM posts p JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
    WHERE p.id = ANY(%(ids)s)"""  # noqa: S608 (a constant condition; values are parameters)


def unavailable(post_id: UUID) -> QuotedPost:
    return QuotedPost(post_id=post_id, unavailable=True, author=None, content=None, created_at=None)


def quoted_view(row: _QuotedRow) -> QuotedPost:
    if not row.available:
        return unavailable(row.id)
    return QuotedPost(
        post_id=row.id,
        unavailable=False,
        author=Author(
            user_id=row.author_id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        ),
        content=row.content,
        created_at=row.created_at,
    )


async def quoted_posts(
    uow: UnitOfWork, viewer: UUID, post_ids: Iterable[UUID | None]
) -> dict[UUID, QuotedPost]:
    """The quoted posts of a page, as `viewer` may see them: one query whatever the page's size."""
    wanted = sorted({p for p in post_ids if p is not None})
    if not wanted:
        return {}
    rows = await fetch_all(uow.conn, _QuotedRow, _QUOTED, {"ids": wanted, "viewer": viewer})
    found = {row.id: quoted_view(row) for row in rows}
    return {post_id: found.get(post_id, unavailable(post_id)) for post_id in wanted}


async def require_quotable(uow: UnitOfWork, viewer: UUID, post_id: UUID) -> QuotedPost:
    """The post a new quote embeds: one the caller can see now, else 422 (nothing is written)."""
    quoted = (await quoted_posts(uow, viewer, [post_id]))[post_id]
    if quoted.unavailable:
        raise Invalid("quotePostId is not a post you can see", field="quotePostId")
    return quoted


async def with_quotes(run: Transactions, viewer: UUID, items: list[FeedItem]) -> list[FeedItem]:
    """Feed items with their quoted posts as `viewer` may see them now. Items are built with the quoted
    post's id and `unavailable` (what they show should this not run); one query for the page, and
    none when nothing on it quotes."""
    wanted = [item.quoted.post_id for item in items if item.quoted is not None]
    if not wanted:
        return items
    quoted = await run(lambda uow: quoted_posts(uow, viewer, wanted))
    return [
        item.model_copy(update={"quoted": quoted[item.quoted.post_id]}) if item.quoted is not None else item
        for item in items
    ]
