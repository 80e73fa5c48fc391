"""A post as every post read shows it (by id, an author's page, bookmarks): one query shape (the
post, its author, counts and media in one round trip) and the response it makes. Shared by the post
use cases and the other reads of posts, so that none builds on another's use cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared_code.adapters.media_signing import MediaUrls
from shared_code.domain.events import MediaRef
from shared_code.schemas.posts import Author, LinkedEvent, Media, Post, QuotedPost
from shared_code.services.reaction_counts import full_reaction_counts


def media_view(ref: MediaRef, media_urls: MediaUrls) -> Media:
    return Media(media_id=ref.media_id, content_type=ref.content_type, url=media_urls.url(ref))


@dataclass(frozen=True)
class PostRow:
    """A post as POST_COLUMNS reads it."""

    id: UUID
    author_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    content: str
    status: str
    created_at: datetime
    edited_at: datetime | None
    reactions: dict[str, int] | None
    comments: int
    media: list[dict[str, Any]]
    reposts: int
    quote_post_id: UUID | None
    event_id: UUID | None


# One query shape for every post read: the post, its author, counts and media in one round trip.
POST_COLUMNS = """
    p.id, p.author_id, u.username, pr.display_name, pr.avatar_url, p.content, p.status, p.created_at,
    p.edited_at, pc.reactions, pc.comments,
    coalesce((SELECT json_agg(json_build_object('mediaId', m.id, 'contentType', m.content_type,
                                                'blobPath', m.blob_path) ORDER BY pm.position)
              FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
              WHERE pm.post_id = p.id AND m.purged_at IS NULL), '[]'::json) AS media,
    pc.reposts, p.quote_post_id, p.event_id
"""
POST_JOINS = """
    FROM posts p
    JOIN users u ON u.id = p.author_id
    JOIN profiles pr ON pr.user_id = p.author_id
    JOIN post_counts pc ON pc.post_id = p.id
"""


def post_from_row(
    row: PostRow,
    media_urls: MediaUrls,
    quoted: dict[UUID, QuotedPost],
    events: dict[UUID, LinkedEvent] | None = None,
) -> Post:
    media = [MediaRef.model_validate(m) for m in row.media]
    return Post(
        id=row.id,
        author_id=row.author_id,
        author=Author(
            user_id=row.author_id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        ),
        content=row.content,
        status=row.status,
        created_at=row.created_at,
        edited_at=row.edited_at,
        counts=full_reaction_counts(row.reactions),
        comment_count=row.comments,
        # Media of a hidden or removed post is not readable by anyone, its author and moderators
        # included (docs/api.md "Media"): no URL is signed for it.
        media=[media_view(m, media_urls) for m in media] if row.status == "visible" else [],
        repost_count=row.reposts,
        quoted=quoted.get(row.quote_post_id) if row.quote_post_id else None,
        event=(events or {}).get(row.event_id) if row.event_id else None,
    )
