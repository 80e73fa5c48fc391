"""Comments and reactions, and the post counts they move.

Each change updates the post's `post_counts` row in the same transaction and
bumps its version; the event carries the counts and that version, so the
counters projection never has to count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Forbidden, Invalid, NotFound
from shared_code.domain.events import CommentCreated, CommentDeleted, PostCounts, ReactionRemoved, ReactionSet
from shared_code.domain.limits import ERASED_TEXT, ReactionType
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author, Comment, CreateComment
from shared_code.services.authors import author_snapshot
from shared_code.services.guards import blocked_either_way, blocked_either_way_ids, visible_post
from shared_code.services.reaction_counts import full_reaction_counts
from shared_code.services.text_entities import check_text, remove_comment_entities, write_text_entities


@dataclass(frozen=True)
class _CountsRow:
    post_id: UUID
    reactions: dict[str, int] | None
    comments: int
    version: int
    reposts: int

    def counts(self) -> PostCounts:
        return PostCounts(
            post_id=self.post_id,
            reactions=full_reaction_counts(self.reactions),
            comments=self.comments,
            version=self.version,
            reposts=self.reposts,
        )


@dataclass(frozen=True)
class _NewComment:
    id: UUID
    created_at: datetime


@dataclass(frozen=True)
class _CommentRef:
    post_id: UUID
    author_id: UUID


@dataclass(frozen=True)
class _Reaction:
    """A reaction row as a write returns it."""

    id: UUID
    version: int
    created_at: datetime


@dataclass(frozen=True)
class _CurrentReaction:
    type: ReactionType
    live: bool


@dataclass(frozen=True)
class _ReactedPost:
    post_id: UUID
    post_author_id: UUID


@dataclass(frozen=True)
class _RemovedReaction:
    id: UUID
    version: int
    type: ReactionType


async def _no_block_with_author(uow: UnitOfWork, author_id: UUID, me: UUID, action: str) -> None:
    """Blocks work both ways: whoever blocked whom, neither comments on nor reacts to the other's posts."""
    if author_id != me and await blocked_either_way(uow, author_id, me):
        raise Forbidden(f"you cannot {action} this post: one of you has blocked the other")


# --- comments --------------------------------------------------------------------------------


async def add_comment(uow: UnitOfWork, post_id: UUID, body: CreateComment) -> Comment:
    """A comment, or a reply to a comment of the same post (`parentId`; replies nest to any depth,
    each counted in its parent's reply count and notified to the parent's author)."""
    me = uow.require_user()
    check_text(body.content)
    post = await visible_post(uow, post_id)
    await uow.lock_live_users(me, post.author_id)
    await _no_block_with_author(uow, post.author_id, me, "comment on")
    parent_author_id: UUID | None = None
    if body.parent_id is not None:
        cur = await uow.conn.execute(
            "SELECT author_id FROM comments WHERE id = %s AND post_id = %s AND deleted_at IS NULL FOR SHARE",
            (body.parent_id, post_id),
        )
        parent = await cur.fetchone()
        if parent is None:
            raise Invalid("parentId is not a comment on this post", field="parentId")
        if parent[0] != me and await blocked_either_way(uow, parent[0], me):
            raise Forbidden("you cannot reply to this comment: one of you has blocked the other")
        parent_author_id = parent[0]
        await _move_reply_count(uow, body.parent_id, +1)
    comment = await fetch_one(
        uow.conn,
        _NewComment,
        "INSERT INTO comments (post_id, author_id, parent_id, content) VALUES (%s, %s, %s, %s) RETURNING id, created_at",
        (post_id, me, body.parent_id, body.content),
    )
    assert comment is not None
    comment_id, created_at = comment.id, comment.created_at
    counts = await _move_comment_count(uow, post_id, +1)
    entities = await write_text_entities(
        uow,
        source_id=comment_id,
        source_kind="comment",
        post_id=post_id,
        post_created_at=post.created_at,
        author_id=me,
        content=body.content,
        new_source=True,
    )
    uow.record(
        CommentCreated(
            comment_id=comment_id,
            post_id=post_id,
            post_author_id=post.author_id,
            author_id=me,
            parent_id=body.parent_id,
            content=body.content,
            created_at=created_at,
            post_counts=counts,
            parent_author_id=parent_author_id,
            mentions=entities.mentions,
            notify_mentions=entities.notify_mentions,
            hashtags=entities.hashtags,
        ),
        comment_id,
        1,
    )
    return Comment(
        id=comment_id,
        post_id=post_id,
        author_id=me,
        author=Author(**(await author_snapshot(uow, me)).model_dump()),
        parent_id=body.parent_id,
        content=body.content,
        created_at=created_at,
        reply_count=0,
    )


async def _move_reply_count(uow: UnitOfWork, comment_id: UUID, delta: int) -> None:
    """A comment's live direct replies, moved in the transaction that adds or removes one."""
    await uow.conn.execute(
        """INSERT INTO comment_reply_counts (comment_id, replies) VALUES (%(c)s, greatest(%(d)s, 0))
           ON CONFLICT (comment_id) DO UPDATE SET replies = comment_reply_counts.replies + %(d)s""",
        {"c": comment_id, "d": delta},
    )


async def _comment_removed(uow: UnitOfWork, comment_id: UUID) -> None:
    """What a comment's deletion takes with it: its mentions and tags, and its place in its parent's
    reply count."""
    await remove_comment_entities(uow, comment_id)
    cur = await uow.conn.execute("SELECT parent_id FROM comments WHERE id = %s", (comment_id,))
    row = await cur.fetchone()
    if row is not None and row[0] is not None:
        await _move_reply_count(uow, row[0], -1)


@dataclass(frozen=True)
class _CommentRow:
    """A comment with its author's current profile (so a changed name or avatar shows at once)."""

    id: UUID
    post_id: UUID
    author_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    parent_id: UUID | None
    content: str
    created_at: datetime
    reply_count: int

    def comment(self) -> Comment:
        return Comment(
            id=self.id,
            post_id=self.post_id,
            author_id=self.author_id,
            author=Author(
                user_id=self.author_id,
                username=self.username,
                display_name=self.display_name,
                avatar_url=self.avatar_url,
            ),
            parent_id=self.parent_id,
            content=self.content,
            created_at=self.created_at,
            reply_count=self.reply_count,
        )


async def _move_comment_count(uow: UnitOfWork, post_id: UUID, delta: int) -> PostCounts:
    row = await fetch_one(
        uow.conn,
        _CountsRow,
        """UPDATE post_counts SET comments = comments + %s, version = version + 1 WHERE post_id = %s
           RETURNING post_id, reactions, comments, version, reposts""",
        (delta, post_id),
    )
    assert row is not None
    return row.counts()


# A comment as every comment read shows it: with its author's current profile and its live direct replies.
COMMENT_COLUMNS = """c.id, c.post_id, c.author_id, u.username, pr.display_name, pr.avatar_url, c.parent_id,
    c.content, c.created_at,
    coalesce((SELECT replies FROM comment_reply_counts rc WHERE rc.comment_id = c.id), 0) AS reply_count"""
COMMENT_JOINS = (
    """FROM comments c JOIN users u ON u.id = c.author_id JOIN profiles pr ON pr.user_id = c.author_id"""
)


async def list_comments(
    uow: UnitOfWork, cursors: CursorCodec, post_id: UUID, limit: int, cursor: str | None
) -> Page[Comment]:
    me = uow.require_user()
    await visible_post(uow, post_id)
    # Comments by anyone the caller blocked or is blocked by are left out (moderators see all).
    hidden = [] if uow.actor.is_moderator else await blocked_either_way_ids(uow, me)
    return await _comment_page(uow, cursors, f"comments:{post_id}", "post_id", post_id, hidden, limit, cursor)


async def list_replies(
    uow: UnitOfWork, cursors: CursorCodec, comment_id: UUID, limit: int, cursor: str | None
) -> Page[Comment]:
    """A comment's direct replies, oldest first (each with its own reply count, for the next level);
    404 when the comment is deleted or its post is not the caller's to see."""
    me = uow.require_user()
    parent = await fetch_one(
        uow.conn,
        _CommentRef,
        "SELECT post_id, author_id FROM comments WHERE id = %s AND deleted_at IS NULL",
        (comment_id,),
    )
    if parent is None:
        raise NotFound("no such comment")
    await visible_post(uow, parent.post_id)
    hidden = [] if uow.actor.is_moderator else await blocked_either_way_ids(uow, me)
    if parent.author_id in hidden:
        raise NotFound("no such comment")
    return await _comment_page(
        uow, cursors, f"replies:{comment_id}", "parent_id", comment_id, hidden, limit, cursor
    )


async def _comment_page(
    uow: UnitOfWork,
    cursors: CursorCodec,
    scope: str,
    column: Literal["post_id", "parent_id"],
    subject_id: UUID,
    hidden: list[UUID],
    limit: int,
    cursor: str | None,
) -> Page[Comment]:
    """One page of live comments whose `column` is `subject_id` (a post's comments, a comment's
    replies), oldest first, leaving out the `hidden` authors; keyset-paged on (created_at, id)."""
    params: dict[str, Any] = {"subject": subject_id, "limit": limit + 1, "hidden": hidden}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (c.created_at, c.id) > (%(after_time)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        _CommentRow,
        # `column` is one of two fixed names (the type says which), never from the request.
        f"""SELECT {COMMENT_COLUMNS} {COMMENT_JOINS}
            WHERE c.{column} = %(subject)s AND c.deleted_at IS NULL AND c.author_id <> ALL(%(hidden)s::uuid[]) {after}
            ORDER BY c.created_at, c.id LIMIT %(limit)s""",
        params,
    )
    items = [row.comment() for row in rows[:limit]]
    last = items[-1] if items else None
    next_cursor = cursors.time_cursor(scope, last.created_at, last.id) if last and len(rows) > limit else None
    return Page[Comment](items=items, next_cursor=next_cursor)


async def delete_comment(uow: UnitOfWork, comment_id: UUID, reason: str | None = None) -> None:
    """The comment's author or the post's author deletes; a moderator deleting someone else's comment
    gives a reason, recorded in moderation_actions, and the comment's author may appeal."""
    me = uow.require_user()
    comment = await fetch_one(
        uow.conn,
        _CommentRef,
        "SELECT post_id, author_id FROM comments WHERE id = %s AND deleted_at IS NULL FOR UPDATE",
        (comment_id,),
    )
    if comment is None:
        raise NotFound("no such comment")
    post_id, author_id = comment.post_id, comment.author_id
    post = await visible_post(uow, post_id)
    if me not in (author_id, post.author_id):
        if not uow.actor.is_moderator:
            raise Forbidden(
                "only the comment's author, the post's author or a moderator can delete a comment"
            )
        if reason is None:
            raise Invalid(
                "a moderator deleting someone else's comment gives the reason: "
                "DELETE /api/comments/{commentId}?reason=...",
                field="reason",
            )
        await uow.conn.execute(
            """INSERT INTO moderation_actions (post_id, comment_id, moderator_id, action, reason)
               VALUES (%s, %s, %s, 'remove', %s)""",
            (post_id, comment_id, me, reason),
        )
    cur = await uow.conn.execute(
        "UPDATE comments SET deleted_at = now(), version = version + 1 WHERE id = %s RETURNING version",
        (comment_id,),
    )
    version_row = await cur.fetchone()
    assert version_row is not None
    counts = await _move_comment_count(uow, post_id, -1)
    await _comment_removed(uow, comment_id)
    uow.record(
        CommentDeleted(
            comment_id=comment_id, post_id=post_id, author_id=author_id, deleted_by=me, post_counts=counts
        ),
        comment_id,
        version_row[0],
    )


async def restore_comment(uow: UnitOfWork, comment_id: UUID) -> None:
    """Bring back a comment a moderator deleted (an overturned appeal): live again, counted again (its
    post's comments and its parent's replies), its mentions and tags stored again, and announced as
    created again (same id, so a notification still there is the same one). Who is notified is
    decided now, by the rules a new comment meets: a mentioned account only if no block stands
    between them and it may see the author's content (write_text_entities); the parent's author
    only if the parent is live and no block stands between them; the gate then drops what a
    recipient turned off or may not see (services/notification_settings.py)."""
    cur = await uow.conn.execute(
        # Not a comment its author's account erasure took (that one is gone for good).
        """UPDATE comments SET deleted_at = NULL, version = version + 1
           WHERE id = %s AND deleted_at IS NOT NULL
             AND author_id IN (SELECT id FROM users WHERE deleted_at IS NULL)
           RETURNING post_id, author_id, parent_id, content, created_at, version""",
        (comment_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return  # live already
    post_id, author_id, parent_id, content, created_at, version = row
    cur = await uow.conn.execute("SELECT author_id, created_at FROM posts WHERE id = %s", (post_id,))
    post_row = await cur.fetchone()
    assert post_row is not None
    counts = await _move_comment_count(uow, post_id, +1)
    parent_author_id: UUID | None = None
    if parent_id is not None:
        await _move_reply_count(uow, parent_id, +1)
    # The author's own text comes back under the author's rules: row-level security then sees the
    # blocks between the author and others (hidden from a moderator) and lets the mentions be theirs.
    moderator = uow.user_id
    await uow.act_as(author_id)
    try:
        if parent_id is not None:
            parent_author_id = await _reply_notifies(uow, parent_id, author_id)
        entities = await write_text_entities(
            uow,
            source_id=comment_id,
            source_kind="comment",
            post_id=post_id,
            post_created_at=post_row[1],
            author_id=author_id,
            content=content,
        )
    finally:
        if moderator is not None:
            await uow.act_as(moderator)
    uow.record(
        CommentCreated(
            comment_id=comment_id,
            post_id=post_id,
            post_author_id=post_row[0],
            author_id=author_id,
            parent_id=parent_id,
            content=content,
            created_at=created_at,
            post_counts=counts,
            parent_author_id=parent_author_id,
            mentions=entities.mentions,
            notify_mentions=entities.notify_mentions,
            hashtags=entities.hashtags,
        ),
        comment_id,
        version,
    )


async def _reply_notifies(uow: UnitOfWork, parent_id: UUID, replier: UUID) -> UUID | None:
    """The author a restored reply notifies, as a new reply would: the live parent's, unless a block
    stands between them (a new reply is refused then: a restored one is not refused, only silent)."""
    cur = await uow.conn.execute(
        "SELECT author_id FROM comments WHERE id = %s AND deleted_at IS NULL", (parent_id,)
    )
    parent = await cur.fetchone()
    if parent is None:
        return None
    if parent[0] != replier and await blocked_either_way(uow, parent[0], replier):
        return None
    parent_author: UUID = parent[0]
    return parent_author


async def erase_comments_of(uow: UnitOfWork, author_id: UUID, limit: int) -> int:
    """Account erasure: delete up to `limit` live comments of `author_id` (each with its event and the
    post's comment count lowered, so the counters stay exact) and blank the text of its deleted ones.
    How many rows it changed; 0 when none is left."""
    cur = await uow.conn.execute(
        """SELECT id, post_id FROM comments WHERE author_id = %s AND deleted_at IS NULL
           ORDER BY id LIMIT %s FOR UPDATE""",
        (author_id, limit),
    )
    live = await cur.fetchall()
    for comment_id, post_id in live:
        cur = await uow.conn.execute(
            "UPDATE comments SET deleted_at = now(), version = version + 1 WHERE id = %s RETURNING version",
            (comment_id,),
        )
        version_row = await cur.fetchone()
        assert version_row is not None
        counts = await _move_comment_count(uow, post_id, -1)
        await _comment_removed(uow, comment_id)
        uow.record(
            CommentDeleted(
                comment_id=comment_id,
                post_id=post_id,
                author_id=author_id,
                deleted_by=author_id,
                post_counts=counts,
            ),
            comment_id,
            version_row[0],
        )
    cur = await uow.conn.execute(
        """UPDATE comments SET content = %s WHERE id IN (
               SELECT id FROM comments WHERE author_id = %s AND deleted_at IS NOT NULL AND content <> %s
               ORDER BY id LIMIT %s)""",
        (ERASED_TEXT, author_id, ERASED_TEXT, limit),
    )
    return len(live) + cur.rowcount


# --- reactions -------------------------------------------------------------------------------


async def _move_reaction_counts(
    uow: UnitOfWork, post_id: UUID, added: str | None, removed: str | None
) -> PostCounts:
    row = await fetch_one(
        uow.conn,
        _CountsRow,
        """UPDATE post_counts SET
               reactions = reactions
                   || CASE WHEN %(added)s::text IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object(%(added)s::text, coalesce((reactions ->> %(added)s)::int, 0) + 1) END
                   || CASE WHEN %(removed)s::text IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object(%(removed)s::text,
                                                   coalesce((reactions ->> %(removed)s)::int, 0) - 1) END,
               version = version + 1
           WHERE post_id = %(post)s
           RETURNING post_id, reactions, comments, version, reposts""",
        {"post": post_id, "added": added, "removed": removed},
    )
    assert row is not None
    return row.counts()


async def set_reaction(uow: UnitOfWork, post_id: UUID, reaction_type: ReactionType) -> None:
    me = uow.require_user()
    post = await visible_post(uow, post_id)
    await uow.lock_live_users(me, post.author_id)
    await _no_block_with_author(uow, post.author_id, me, "react to")
    reaction = await fetch_one(
        uow.conn,
        _Reaction,
        """INSERT INTO reactions (post_id, user_id, type) VALUES (%s, %s, %s)
           ON CONFLICT (post_id, user_id) DO NOTHING RETURNING id, version, created_at""",
        (post_id, me, reaction_type),
    )
    previous: ReactionType | None = None
    if reaction is None:
        existing = await fetch_one(
            uow.conn,
            _CurrentReaction,
            "SELECT type, deleted_at IS NULL AS live FROM reactions WHERE post_id = %s AND user_id = %s FOR UPDATE",
            (post_id, me),
        )
        assert existing is not None
        if existing.live and existing.type == reaction_type:
            return  # the same reaction again: nothing changes
        previous = existing.type if existing.live else None
        reaction = await fetch_one(
            uow.conn,
            _Reaction,
            """UPDATE reactions SET type = %s, version = version + 1, updated_at = now(),
                   created_at = CASE WHEN deleted_at IS NULL THEN created_at ELSE now() END, deleted_at = NULL
               WHERE post_id = %s AND user_id = %s RETURNING id, version, created_at""",
            (reaction_type, post_id, me),
        )
        assert reaction is not None
    reaction_id, version, created_at = reaction.id, reaction.version, reaction.created_at
    counts = await _move_reaction_counts(uow, post_id, reaction_type, previous)
    uow.record(
        ReactionSet(
            reaction_id=reaction_id,
            post_id=post_id,
            post_author_id=post.author_id,
            user_id=me,
            type=reaction_type,
            previous_type=previous,
            created_at=created_at,
            post_counts=counts,
        ),
        reaction_id,
        version,
    )


async def remove_reaction(uow: UnitOfWork, post_id: UUID) -> None:
    me = uow.require_user()
    post = await visible_post(uow, post_id)
    removed = await fetch_one(
        uow.conn,
        _RemovedReaction,
        """UPDATE reactions SET deleted_at = now(), updated_at = now(), version = version + 1
           WHERE post_id = %s AND user_id = %s AND deleted_at IS NULL
           RETURNING id, version, type""",
        (post_id, me),
    )
    if removed is None:
        return  # nothing to remove
    reaction_id, version, previous = removed.id, removed.version, removed.type
    counts = await _move_reaction_counts(uow, post_id, None, previous)
    uow.record(
        ReactionRemoved(
            reaction_id=reaction_id,
            post_id=post_id,
            post_author_id=post.author_id,
            user_id=me,
            previous_type=previous,
            post_counts=counts,
        ),
        reaction_id,
        version,
    )


async def erase_reactions_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: remove up to `limit` live reactions of `user_id`, each with its event and the
    post's counts lowered (the counters projection retracts it). How many; 0 when none is left."""
    live = await fetch_all(
        uow.conn,
        _ReactedPost,
        """SELECT r.post_id, p.author_id AS post_author_id FROM reactions r JOIN posts p ON p.id = r.post_id
           WHERE r.user_id = %s AND r.deleted_at IS NULL ORDER BY r.post_id LIMIT %s FOR UPDATE OF r""",
        (user_id, limit),
    )
    for reacted in live:
        post_id, post_author_id = reacted.post_id, reacted.post_author_id
        removed = await fetch_one(
            uow.conn,
            _RemovedReaction,
            """UPDATE reactions SET deleted_at = now(), updated_at = now(), version = version + 1
               WHERE post_id = %s AND user_id = %s RETURNING id, version, type""",
            (post_id, user_id),
        )
        assert removed is not None
        reaction_id, version, previous = removed.id, removed.version, removed.type
        counts = await _move_reaction_counts(uow, post_id, None, previous)
        uow.record(
            ReactionRemoved(
                reaction_id=reaction_id,
                post_id=post_id,
                post_author_id=post_author_id,
                user_id=user_id,
                previous_type=previous,
                post_counts=counts,
            ),
            reaction_id,
            version,
        )
    return len(live)
