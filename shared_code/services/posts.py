"""Posts: create, read, edit, delete, and an author's posts newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Forbidden
from shared_code.domain.events import PostCreated, PostUpdated
from shared_code.domain.feed_merge import is_pulled
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author, CreatePost, EditPost, Post
from shared_code.services.audience import require_may_see
from shared_code.services.authors import author_snapshot, change_post_count
from shared_code.services.calendar import linked_events, require_linkable
from shared_code.services.guards import require_live_user, visible_post
from shared_code.services.media_attachments import attach_media
from shared_code.services.moderation import remove_as_moderator
from shared_code.services.post_deletion import soft_delete_post
from shared_code.services.post_media import media_refs
from shared_code.services.post_rows import POST_COLUMNS, POST_JOINS, PostRow, media_view, post_from_row
from shared_code.services.quotes import quoted_posts, require_quotable
from shared_code.services.reaction_counts import full_reaction_counts
from shared_code.services.text_entities import check_text, write_text_entities


async def create_post(
    uow: UnitOfWork,
    body: CreatePost,
    media_urls: MediaUrls,
    search_config: str = "simple",
    fanout_max_followers: int | None = None,
) -> Post:
    """`search_config`: the text-search configuration the post is indexed under (SEARCH_TEXT_CONFIG).
    `fanout_max_followers` (FANOUT_MAX_FOLLOWERS): an author above it has the pull window widened to
    the new post in this transaction, so followers pull it as soon as the relay has written it to
    authorPosts, without waiting for the change-feed fan-out (which widens it too, and decides)."""
    me = uow.require_user()
    check_text(body.content)
    await uow.lock_live_users(me)
    quoted = await require_quotable(uow, me, body.quote_post_id) if body.quote_post_id else None
    event = await require_linkable(uow, body.event_id) if body.event_id else None
    new = await fetch_one(
        uow.conn,
        _NewPost,
        """INSERT INTO posts (author_id, content, quote_post_id, event_id, search_config)
           VALUES (%s, %s, %s, %s, %s::regconfig)
           RETURNING id, created_at, status""",
        (me, body.content, body.quote_post_id, body.event_id, search_config),
    )
    assert new is not None
    post_id, created_at, status = new.id, new.created_at, new.status
    await uow.conn.execute("INSERT INTO post_counts (post_id) VALUES (%s)", (post_id,))
    media = await attach_media(uow, me, body.media_ids, media_urls.unattached_ttl, "post", post_id)
    entities = await write_text_entities(
        uow,
        source_id=post_id,
        source_kind="post",
        post_id=post_id,
        post_created_at=created_at,
        author_id=me,
        content=body.content,
        new_source=True,
    )
    author_counts = await change_post_count(uow, me, +1)
    if fanout_max_followers is not None and is_pulled(author_counts.followers, fanout_max_followers):
        await uow.conn.execute("SELECT chorus_widen_pull_window(%s, %s)", (me, created_at))
    author = await author_snapshot(uow, me)
    uow.record(
        PostCreated(
            post_id=post_id,
            author=author,
            content=body.content,
            media=media,
            status=status,
            created_at=created_at,
            author_counts=author_counts,
            mentions=entities.mentions,
            notify_mentions=entities.notify_mentions,
            hashtags=entities.hashtags,
            quote_post_id=body.quote_post_id,
        ),
        post_id,
        1,
    )
    return Post(
        id=post_id,
        author_id=me,
        author=Author(**author.model_dump()),
        content=body.content,
        media=[media_view(m, media_urls) for m in media],
        status=status,
        created_at=created_at,
        edited_at=None,
        counts=full_reaction_counts(None),
        comment_count=0,
        quoted=quoted,
        event=event,
    )


@dataclass(frozen=True)
class _NewPost:
    id: UUID
    created_at: datetime
    status: str


@dataclass(frozen=True)
class _Edited:
    version: int
    edited_at: datetime


async def get_post(uow: UnitOfWork, post_id: UUID, media_urls: MediaUrls) -> Post:
    me = uow.require_user()
    await visible_post(uow, post_id)
    row = await fetch_one(
        uow.conn, PostRow, f"SELECT {POST_COLUMNS} {POST_JOINS} WHERE p.id = %s", (post_id,)
    )
    assert row is not None
    quoted = await quoted_posts(uow, me, [row.quote_post_id])
    return post_from_row(row, media_urls, quoted, await linked_events(uow, [row.event_id]))


async def edit_post(
    uow: UnitOfWork, post_id: UUID, body: EditPost, media_urls: MediaUrls, search_config: str = "simple"
) -> Post:
    me = uow.require_user()
    check_text(body.content)
    post = await visible_post(uow, post_id, lock=True)
    if post.author_id != me:
        raise Forbidden("only the author can edit a post")
    if post.status != "visible":
        # Editing would change what the moderators judged behind their backs; appeal instead.
        raise Conflict(
            f"this post is {post.status} by a moderator and cannot be edited; appeal with POST /api/appeals"
        )
    edited = await fetch_one(
        uow.conn,
        _Edited,
        """UPDATE posts SET content = %s, search_config = %s::regconfig, edited_at = now(), updated_at = now(),
                  version = version + 1
           WHERE id = %s RETURNING version, edited_at""",
        (body.content, search_config, post_id),
    )
    assert edited is not None
    version, edited_at = edited.version, edited.edited_at
    entities = await write_text_entities(
        uow,
        source_id=post_id,
        source_kind="post",
        post_id=post_id,
        post_created_at=post.created_at,
        author_id=me,
        content=body.content,
    )
    updated = await get_post(uow, post_id, media_urls)
    media = await media_refs(uow, post_id)
    uow.record(
        PostUpdated(
            post_id=post_id,
            author=await author_snapshot(uow, me),
            content=body.content,
            media=media,
            status=updated.status,
            created_at=updated.created_at,
            edited_at=edited_at,
            mentions=entities.mentions,
            notify_mentions=entities.notify_mentions,
            hashtags=entities.hashtags,
            quote_post_id=updated.quoted.post_id if updated.quoted else None,
        ),
        post_id,
        version,
    )
    return updated


async def delete_post(uow: UnitOfWork, post_id: UUID, reason: str | None = None) -> None:
    """The author deletes; a moderator deleting someone else's post removes it with a reason, which
    is recorded and can be appealed (services/moderation.remove_as_moderator)."""
    me = uow.require_user()
    post = await visible_post(uow, post_id, lock=True)
    if post.author_id == me:
        await soft_delete_post(uow, post_id, post.author_id)
        return
    if not uow.actor.is_moderator:
        raise Forbidden("only the author or a moderator can delete a post")
    await remove_as_moderator(uow, post_id, reason)


async def list_author_posts(
    uow: UnitOfWork,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    author_id: UUID,
    limit: int,
    cursor: str | None,
) -> Page[Post]:
    viewer = uow.require_user()
    await require_live_user(uow, author_id)
    # A private account's page is its approved followers' (and nobody's across a block): 404 to others.
    await require_may_see(uow, author_id, "no such user")
    sees_all = viewer == author_id or uow.actor.is_moderator
    scope = f"posts:{author_id}"
    params: dict[str, Any] = {"author": author_id, "limit": limit + 1, "all": sees_all}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (p.created_at, p.id) < (%(after_time)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        PostRow,
        f"""SELECT {POST_COLUMNS} {POST_JOINS}
            WHERE p.author_id = %(author)s AND p.deleted_at IS NULL
              AND (%(all)s OR p.status = 'visible') {after}
            ORDER BY p.created_at DESC, p.id DESC
            LIMIT %(limit)s""",
        params,
    )
    quoted = await quoted_posts(uow, viewer, [row.quote_post_id for row in rows[:limit]])
    events = await linked_events(uow, [row.event_id for row in rows[:limit]])
    items = [post_from_row(row, media_urls, quoted, events) for row in rows[:limit]]
    last = items[-1] if items else None
    next_cursor = cursors.time_cursor(scope, last.created_at, last.id) if last and len(rows) > limit else None
    return Page[Post](items=items, next_cursor=next_cursor)
