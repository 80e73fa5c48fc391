"""The privacy rule (shared_code/domain/privacy.py, asked through services/audience.py) where the
discovery reads and mention notifications need it:

- `author_visible_sql`: the rule as a SQL condition, so that a search or a tag's page is filtered
  inside its index scan (filtering a page afterwards would leave short pages and break paging). It
  mirrors `shows_in_listings` (content put in front of someone unasked); every page it yields is
  then passed through the rule itself
  (`shown_by_the_rule`), so should the two ever disagree the rule wins and a page is only shorter.
- `may_see_authors_content`: which of several accounts (those a text mentions) may see an author.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from uuid import UUID

from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.privacy import shows_in_listings
from shared_code.services.audience import audience_of, visible_authors

# True when %(viewer)s may see the content of the author in `{author}`: moderators (%(moderator)s)
# and the author always; anyone else when no block stands between them either way and the author's
# profile is public or the viewer follows them (a live follow is an approved one).
_AUTHOR_VISIBLE_SQL = """(
    %(moderator)s OR {author} = %(viewer)s
    OR (NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                    AND ((b.blocker_id = {author} AND b.blocked_id = %(viewer)s)
                         OR (b.blocker_id = %(viewer)s AND b.blocked_id = {author})))
        AND (EXISTS (SELECT 1 FROM profiles vp WHERE vp.user_id = {author} AND vp.visibility = 'public')
             OR EXISTS (SELECT 1 FROM follows vf WHERE vf.follower_id = %(viewer)s
                        AND vf.followee_id = {author} AND vf.deleted_at IS NULL))))"""


def author_visible_sql(author_column: str) -> str:
    """The condition for `author_column` (a trusted column name, never input); its parameters are
    %(viewer)s and %(moderator)s."""
    return _AUTHOR_VISIBLE_SQL.format(author=author_column)


async def shown_by_the_rule(uow: UnitOfWork, authors: Collection[UUID]) -> set[UUID]:
    """Those of `authors` whose content the caller may see, by the rule itself."""
    return await visible_authors(uow, authors)


async def may_see_authors_content(uow: UnitOfWork, author_id: UUID, viewers: Sequence[UUID]) -> set[UUID]:
    """Those of `viewers` who may see `author_id`'s content (as plain users: a moderator mentioned
    in a private author's post is not told of it unless they follow the author)."""
    allowed = set()
    for viewer in viewers:
        facts = await audience_of(uow.conn, viewer, (author_id,))
        if shows_in_listings(viewer, False, facts.get(author_id)):
            allowed.add(viewer)
    return allowed
