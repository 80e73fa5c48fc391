"""May a viewer see an author's content? The one place the reads added for reposts, quotes and
bookmarks ask it, in two forms: a check for one author, and the same rule as a SQL condition for
lists filtered in the query (so a page is cut after the filter and keyset paging stays exact).

Today the rule is: the viewer is the author, or neither has blocked the other. Private accounts
(issue 15) add "or the viewer follows the author with an approved follow" to the same two places.
"""

from __future__ import annotations

from uuid import UUID

from shared_code.db.unit_of_work import UnitOfWork
from shared_code.services.guards import blocked_either_way


async def may_see_author(uow: UnitOfWork, viewer: UUID, author: UUID) -> bool:
    if viewer == author:
        return True
    return not await blocked_either_way(uow, viewer, author)


def author_visible_sql(author_column: str, viewer_param: str = "%(viewer)s") -> str:
    """The rule as a SQL condition on `author_column` (a column of the query: never user input) for
    the viewer passed as the named parameter `viewer_param`."""
    return f"""({author_column} = {viewer_param}
        OR NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                         AND ((b.blocker_id = {viewer_param} AND b.blocked_id = {author_column})
                              OR (b.blocker_id = {author_column} AND b.blocked_id = {viewer_param}))))"""  # noqa: S608 (column names of our own)
