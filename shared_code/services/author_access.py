"""May a viewer see an author's content? The reads added for reposts, quotes and bookmarks ask it here,
in two forms: a check for the caller and one author (the privacy rule itself: domain/privacy.py through
services/audience.py), and the same rule as a SQL condition for lists filtered in the query (so a page
is cut after the filter and keyset paging stays exact) and for the relay's fan-out of a repost.

The rule (docs/privacy.md "Private accounts"): the viewer is the author, or neither has blocked the
other and the author is public or the viewer follows them (a `follows` row is an approved follow; a
request is not one). Moderators' wider view applies to reads by id, not to these lists.
"""

from __future__ import annotations

from uuid import UUID

from shared_code.db.unit_of_work import UnitOfWork
from shared_code.services.audience import may_see


async def may_see_author(uow: UnitOfWork, author: UUID) -> bool:
    """Whether the caller may see `author`'s content (services/audience.py, the one rule)."""
    return await may_see(uow, author)


def author_visible_sql(author_column: str, viewer_param: str = "%(viewer)s") -> str:
    """The rule as a SQL condition on `author_column` (a column or parameter of the query: never user
    input) for the viewer passed as `viewer_param`. Must say what domain/privacy.may_see_content says
    for a viewer who is not a moderator (tests/e2e/test_reposts_quotes_bookmarks.py checks both)."""
    return f"""({author_column} = {viewer_param}
        OR (NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                          AND ((b.blocker_id = {viewer_param} AND b.blocked_id = {author_column})
                               OR (b.blocker_id = {author_column} AND b.blocked_id = {viewer_param})))
            AND EXISTS (SELECT 1 FROM profiles vp WHERE vp.user_id = {author_column}
                          AND (vp.visibility = 'public'
                               OR EXISTS (SELECT 1 FROM follows vf WHERE vf.follower_id = {viewer_param}
                                            AND vf.followee_id = {author_column} AND vf.deleted_at IS NULL)))))"""  # noqa: S608 (column names of our own)
