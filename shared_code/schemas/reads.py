"""The projection reads' bodies: home feed and notifications (docs/api.md "Feed and notifications")."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

from shared_code.schemas.common import ResponseBody
from shared_code.schemas.posts import Author, Media, QuotedPost


class FeedItem(ResponseBody):
    post_id: UUID
    author_id: UUID
    author: Author
    content: str
    media: list[Media]
    created_at: datetime
    edited_at: datetime | None
    counts: dict[str, int]
    comment_count: int
    repost_count: int = 0
    # In the feed because someone the reader follows reposted it: the newest such reposter, and when.
    reposted_by: UUID | None = None
    reposted_at: datetime | None = None
    quoted: QuotedPost | None = None


# A notification's id names its cause ("<kind>:<id of the follow, comment or reaction>").
NOTIFICATION_ID_PATTERN: Final = r"^[A-Za-z0-9:_-]{1,200}$"


class Notification(ResponseBody):
    id: str
    type: str
    actor_id: UUID
    # The actor's current profile (the notification stores only their id).
    actor: Author
    subject_id: UUID
    created_at: datetime | None
    read: bool
