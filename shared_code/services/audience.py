"""The one query behind the privacy rule (shared_code/domain/privacy.py): for a viewer and some
authors, each author's visibility, whether the viewer follows them (approved) and whether a block
stands between them. Every read that shows an author's content asks through here:

    await require_may_see(uow, author_id)          # one author, opened: 404 unless the caller may see it
    shown = await visible_authors(uow, author_ids)  # many, listed (feeds, search, hashtags): the subset shown
    facts = await audience_of(conn, viewer, ids)    # the raw facts, for any connection (relay, timers)

`require_may_see`/`may_see` answer `may_see_content` (a blocker still opens what the account they
blocked posts); `visible_authors` answers `shows_in_listings` (a block hides it either way).

One round trip whatever the number of authors. A block is visible to both parties under row-level
security, so the caller's own transaction sees every fact it needs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import NotFound
from shared_code.domain.privacy import AuthorAudience, may_see_content, shows_in_listings

_AUDIENCE = """
    SELECT u.id AS author_id, p.visibility,
           EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = %(viewer)s AND f.followee_id = u.id
                     AND f.deleted_at IS NULL) AS viewer_follows,
           EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                     AND b.blocker_id = u.id AND b.blocked_id = %(viewer)s) AS author_blocked_viewer,
           EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                     AND b.blocker_id = %(viewer)s AND b.blocked_id = u.id) AS viewer_blocked_author
    FROM users u JOIN profiles p ON p.user_id = u.id
    WHERE u.id = ANY(%(authors)s) AND u.deleted_at IS NULL
"""


async def audience_of(
    conn: AsyncConnection[Any], viewer: UUID | None, authors: Collection[UUID]
) -> dict[UUID, AuthorAudience]:
    """The facts for each live author among `authors` as `viewer` relates to them (a deleted or
    unknown author is absent: `may_see_content` then says no)."""
    if not authors:
        return {}
    rows = await fetch_all(conn, AuthorAudience, _AUDIENCE, {"viewer": viewer, "authors": list(set(authors))})
    return {row.author_id: row for row in rows}


async def visible_authors(uow: UnitOfWork, authors: Collection[UUID]) -> set[UUID]:
    """Those of `authors` whose content may be listed for the caller (`shows_in_listings`: feeds,
    search, hashtags, reposts, notifications; moderators: every live one)."""
    facts = await audience_of(uow.conn, uow.user_id, authors)
    return {a for a in set(authors) if shows_in_listings(uow.user_id, uow.actor.is_moderator, facts.get(a))}


async def may_see(uow: UnitOfWork, author: UUID) -> bool:
    """Whether the caller may open `author`'s content (`may_see_content`)."""
    facts = await audience_of(uow.conn, uow.user_id, (author,))
    return may_see_content(uow.user_id, uow.actor.is_moderator, facts.get(author))


async def require_may_see(uow: UnitOfWork, author: UUID, what: str = "no such post") -> None:
    """404 (saying `what`) unless the caller may see `author`'s content: whoever may not must not
    learn that it exists."""
    if not await may_see(uow, author):
        raise NotFound(what)
