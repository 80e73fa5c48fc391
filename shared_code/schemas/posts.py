"""The post, comment and reaction routes' bodies (docs/api.md "Posts", "Comments and reactions")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field

from shared_code.domain.limits import COMMENT_CONTENT_MAX, MEDIA_PER_POST_MAX, POST_CONTENT_MAX, ReactionType
from shared_code.schemas.common import NonBlankText, RequestBody, ResponseBody, Uuid

PostContent = Annotated[NonBlankText, Field(min_length=1, max_length=POST_CONTENT_MAX)]
CommentContent = Annotated[NonBlankText, Field(min_length=1, max_length=COMMENT_CONTENT_MAX)]


def _unique(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an id")
    return values


class CreatePost(RequestBody):
    content: PostContent
    # A quote: the post this one embeds (one the caller can see).
    quote_post_id: Uuid | None = None
    # An event the post links (one the caller can see, not cancelled).
    event_id: Uuid | None = None
    media_ids: Annotated[list[Uuid], Field(max_length=MEDIA_PER_POST_MAX), AfterValidator(_unique)] = []  # noqa: RUF012 (pydantic copies defaults)


class EditPost(RequestBody):
    content: PostContent


class CreateComment(RequestBody):
    content: CommentContent
    parent_id: Uuid | None = None


class SetReaction(RequestBody):
    type: ReactionType


class Author(ResponseBody):
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None


class Media(ResponseBody):
    media_id: UUID
    content_type: str
    url: str


class QuotedPost(ResponseBody):
    """The post a quote embeds, as the reader may see it now: `unavailable` (and nothing but its id)
    once it is deleted, hidden or removed, or its author is out of the reader's reach."""

    post_id: UUID
    unavailable: bool
    author: Author | None
    content: str | None
    created_at: datetime | None


class LinkedEvent(ResponseBody):
    """The event a post links, as the reader may see it now: `unavailable` (and nothing but its id)
    once it is cancelled or out of the reader's reach (docs/api.md "Events and RSVPs")."""

    event_id: UUID
    unavailable: bool
    title: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    place: str | None


class Post(ResponseBody):
    id: UUID
    author_id: UUID
    author: Author
    content: str
    media: list[Media]
    status: str
    created_at: datetime
    edited_at: datetime | None
    counts: dict[str, int]
    comment_count: int
    repost_count: int = 0
    quoted: QuotedPost | None = None
    event: LinkedEvent | None = None


class Bookmark(ResponseBody):
    post_id: UUID
    bookmarked_at: datetime
    post: Post


class Comment(ResponseBody):
    id: UUID
    post_id: UUID
    author_id: UUID
    # The author's current profile (not as it was when they commented).
    author: Author
    parent_id: UUID | None
    content: str
    created_at: datetime
    # Live direct replies (GET /api/comments/{commentId}/replies).
    reply_count: int


class Reaction(ResponseBody):
    user_id: UUID
    type: str
    created_at: datetime
