"""Whose content a user may see, for the discovery reads (search, hashtags) and mention
notifications: the author is the viewer, or no block stands between them either way and the author's
profile is public or the viewer follows the author. One place, so the private-accounts rule replaces
it in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork

# A SQL condition on an author column (named by `{author}`): true when %(viewer)s may see that author's
# content. %(viewer)s is the reading account. Blocks both ways, then the profile's visibility.
_AUTHOR_VISIBLE_SQL = """(
    {author} = %(viewer)s
    OR (NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                    AND ((b.blocker_id = {author} AND b.blocked_id = %(viewer)s)
                         OR (b.blocker_id = %(viewer)s AND b.blocked_id = {author})))
        AND (EXISTS (SELECT 1 FROM profiles vp WHERE vp.user_id = {author} AND vp.visibility = 'public')
             OR EXISTS (SELECT 1 FROM follows vf WHERE vf.follower_id = %(viewer)s
                        AND vf.followee_id = {author} AND vf.deleted_at IS NULL))))"""


def author_visible_sql(author_column: str) -> str:
    """The condition for `author_column` (a trusted column name, never input)."""
    return _AUTHOR_VISIBLE_SQL.format(author=author_column)


@dataclass(frozen=True)
class _Viewer:
    id: UUID


async def may_see_authors_content(uow: UnitOfWork, author_id: UUID, viewers: Sequence[UUID]) -> set[UUID]:
    """Those of `viewers` who may see `author_id`'s content."""
    rows = await fetch_all(
        uow.conn,
        _Viewer,
        f"""SELECT v.id FROM unnest(%(viewers)s::uuid[]) AS v(id)
            WHERE {_AUTHOR_VISIBLE_SQL.format(author="%(author)s").replace("%(viewer)s", "v.id")}""",  # noqa: S608
        {"viewers": list(viewers), "author": author_id},
    )
    return {row.id for row in rows}
