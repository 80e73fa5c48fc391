"""Who may see an author's content: the one rule every read asks (docs/privacy.md "Private accounts").

"Content" is what an account shares: its posts, the comments and reactions under them, their media,
its follower and following lists, and notifications about any of these. Its public profile (name,
bio, counts) stays visible to everyone it has not blocked, so that people can ask to follow it.

Two questions, one rule:

- `may_see_content`: may the viewer open it at all (a post by id, the author's page, comments,
  reactions, media, follower lists)? A block binds the blocked user: the blocker still sees (and can
  report) what the account they blocked posts.
- `shows_in_listings`: should it show in what Chorus puts in front of the viewer (feeds, search,
  hashtags, reposts, notifications)? The same, and a block hides it either way.

Pure: the facts come from one query (shared_code/services/audience.py, `audience_of`), which every
read uses; nothing else decides this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Visibility = Literal["public", "private"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")


@dataclass(frozen=True)
class AuthorAudience:
    """What decides whether one viewer sees one author's content."""

    author_id: UUID
    # The author's profile visibility. ('followers', which an early schema allowed, counts as private.)
    visibility: str
    # The viewer follows the author with an approved follow (a pending request is not one).
    viewer_follows: bool
    # The author has blocked the viewer.
    author_blocked_viewer: bool
    # The viewer has blocked the author.
    viewer_blocked_author: bool


def may_see_content(
    viewer_id: UUID | None, viewer_is_moderator: bool, audience: AuthorAudience | None
) -> bool:
    """True when `viewer_id` may see the content of `audience.author_id`.

    The author always sees their own content, and moderators see everyone's (an author must not
    escape moderation by going private or blocking). Anyone else: the author has not blocked them,
    and the author is public or the viewer follows them with an approved follow. `audience` None
    means the author is not a live account: nobody sees its content.
    """
    if audience is None:
        return False
    if viewer_is_moderator or viewer_id == audience.author_id:
        return True
    if audience.author_blocked_viewer:
        return False
    return audience.visibility == "public" or (viewer_id is not None and audience.viewer_follows)


def shows_in_listings(
    viewer_id: UUID | None, viewer_is_moderator: bool, audience: AuthorAudience | None
) -> bool:
    """True when the author's content may be put in front of the viewer unasked (feeds, search,
    hashtags, reposts, notifications): `may_see_content`, and no block either way."""
    if not may_see_content(viewer_id, viewer_is_moderator, audience):
        return False
    assert audience is not None
    own_or_staff = viewer_is_moderator or viewer_id == audience.author_id
    return own_or_staff or not audience.viewer_blocked_author
