"""Moderation: flags, the moderators' queue, decisions on posts, appeals.

Every state change is recorded in `moderation_actions` and announced through the
outbox. A hidden or removed post leaves every feed (its posts_v2 document changes
status, and the change feed takes it out) and is 404 to everyone but its author and
moderators; a restore puts it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import errors as pg_errors

from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Forbidden, Invalid, NotFound
from shared_code.domain.events import AppealCreated, AppealDecided, FlagCreated, MediaRef, PostModerated
from shared_code.schemas.common import Page
from shared_code.schemas.moderation import (
    Appeal,
    AppealDecisionRequest,
    CreateAppeal,
    CreateFlag,
    Flag,
    ModerationOutcome,
    PostDecision,
    QueueItem,
)
from shared_code.services.authors import author_snapshot
from shared_code.services.engagement import restore_comment
from shared_code.services.guards import visible_post
from shared_code.services.post_media import media_refs
from shared_code.services.text_entities import moderated_post_tags

# The status each action leads to, and the statuses it may start from.
_TRANSITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hide": ("hidden", ("visible",)),
    "remove": ("removed", ("visible", "hidden")),
    "restore": ("visible", ("hidden", "removed")),
}


@dataclass(frozen=True)
class _Created:
    """A flag or an appeal as its INSERT returns it."""

    id: UUID
    status: str
    created_at: datetime
    flagged_text: str | None = None  # a flag's only


@dataclass(frozen=True)
class _ModeratedPost:
    version: int
    author_id: UUID
    content: str
    created_at: datetime
    edited_at: datetime | None
    quote_post_id: UUID | None


@dataclass(frozen=True)
class _PostOwner:
    author_id: UUID
    status: str


@dataclass(frozen=True)
class _PendingAppeal:
    post_id: UUID
    author_id: UUID
    status: str
    comment_id: UUID | None  # set when it appeals a moderator's delete of a comment


@dataclass(frozen=True)
class _DecidedAt:
    created_at: datetime
    decided_at: datetime


def _require_moderator(uow: UnitOfWork) -> UUID:
    me = uow.require_user()
    if not uow.actor.is_moderator:
        raise Forbidden("this needs the moderator role")
    return me


def _not_own_case(moderator: UUID, author_id: UUID, what: str) -> None:
    """No moderator decides on their own post or their own appeal: another moderator must."""
    if moderator == author_id:
        raise Forbidden(f"you cannot decide on your own {what}: another moderator must")


async def flag_post(uow: UnitOfWork, post_id: UUID, body: CreateFlag) -> Flag:
    me = uow.require_user()
    post = await visible_post(uow, post_id)
    if post.author_id == me:
        raise Invalid("you cannot flag your own post")
    await uow.lock_live_users(me, post.author_id)
    try:
        # The flag keeps the text it flagged: the author may edit or delete the post afterwards.
        flag = await fetch_one(
            uow.conn,
            _Created,
            """INSERT INTO moderation_flags (post_id, reporter_id, reason, severity, flagged_text)
               SELECT %s, %s, %s, %s, content FROM posts WHERE id = %s
               RETURNING id, status, created_at, flagged_text""",
            (post_id, me, body.reason, body.severity, post_id),
        )
    except pg_errors.UniqueViolation:
        raise Conflict("you have already flagged this post") from None
    assert flag is not None
    flag_id, status, created_at, flagged_text = flag.id, flag.status, flag.created_at, flag.flagged_text
    uow.record(
        FlagCreated(
            flag_id=flag_id,
            post_id=post_id,
            reporter_id=me,
            reason=body.reason,
            severity=body.severity,
            created_at=created_at,
        ),
        flag_id,
        1,
    )
    return Flag(
        id=flag_id,
        post_id=post_id,
        reason=body.reason,
        severity=body.severity,
        status=status,
        created_at=created_at,
        flagged_text=flagged_text,
    )


async def queue(uow: UnitOfWork, cursors: CursorCodec, limit: int, cursor: str | None) -> Page[QueueItem]:
    """Posts with open flags, most flagged first, from the moderators' mirror (row-level security
    lets only moderators read it)."""
    _require_moderator(uow)
    params: dict[str, Any] = {"limit": limit + 1}
    after = ""
    if cursor:
        position = cursors.decode("moderation-queue", cursor)
        params["after_flags"], params["after_id"] = int(position["f"]), UUID(position["id"])
        after = "AND (open_flags, post_id) < (%(after_flags)s, %(after_id)s)"
    rows = await fetch_all(
        uow.conn,
        QueueItem,
        f"""SELECT post_id, author_id, content, status, open_flags, last_action, updated_at
            FROM posts_admin_mirror WHERE open_flags > 0 AND NOT deleted {after}
            ORDER BY open_flags DESC, post_id DESC LIMIT %(limit)s""",  # noqa: S608
        params,
    )
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = cursors.encode("moderation-queue", {"f": last.open_flags, "id": str(last.post_id)})
    return Page[QueueItem](items=items, next_cursor=next_cursor)


async def _set_status(
    uow: UnitOfWork, post_id: UUID, action: str, recorded_action: str, reason: str, moderator: UUID
) -> tuple[str, bool]:
    """Move a post to the status `action` leads to; (status, changed). Records the action and the event."""
    target, sources = _TRANSITIONS[action]
    current = await fetch_one(
        uow.conn,
        _PostOwner,
        "SELECT author_id, status FROM posts WHERE id = %s AND deleted_at IS NULL FOR UPDATE",
        (post_id,),
    )
    if current is None:
        raise NotFound("no such post")
    _not_own_case(moderator, current.author_id, "post")
    if current.status == target:
        return target, False  # already so: nothing changes, nothing is recorded
    if current.status not in sources:
        raise Conflict(f"a {current.status} post cannot be {action}d")
    post = await fetch_one(
        uow.conn,
        _ModeratedPost,
        """UPDATE posts SET status = %s, version = version + 1, updated_at = now() WHERE id = %s
           RETURNING version, author_id, content, created_at, edited_at, quote_post_id""",
        (target, post_id),
    )
    assert post is not None
    await moderated_post_tags(
        uow, post_id, post.author_id, post.content, post.created_at, target == "visible"
    )
    await uow.conn.execute(
        "INSERT INTO moderation_actions (post_id, moderator_id, action, reason) VALUES (%s, %s, %s, %s)",
        (post_id, moderator, recorded_action, reason),
    )
    await uow.conn.execute(
        "UPDATE moderation_flags SET status = 'resolved', resolved_at = now() WHERE post_id = %s AND status = 'open'",
        (post_id,),
    )
    media: tuple[MediaRef, ...] = await media_refs(uow, post_id)
    uow.record(
        PostModerated(
            post_id=post_id,
            author=await author_snapshot(uow, post.author_id),
            content=post.content,
            media=media,
            status=target,
            created_at=post.created_at,
            edited_at=post.edited_at,
            action=recorded_action,
            reason=reason,
            moderator_id=moderator,
            quote_post_id=post.quote_post_id,
        ),
        post_id,
        post.version,
    )
    return target, True


async def decide_post(uow: UnitOfWork, post_id: UUID, body: PostDecision) -> ModerationOutcome:
    me = _require_moderator(uow)
    status, changed = await _set_status(uow, post_id, body.action, body.action, body.reason, me)
    return ModerationOutcome(post_id=post_id, status=status, action=body.action, changed=changed)


async def remove_as_moderator(uow: UnitOfWork, post_id: UUID, reason: str | None) -> None:
    """A moderator's delete of someone else's post: a removal, recorded with its reason in
    moderation_actions, that the author can appeal (an overturned appeal restores the post). The
    post leaves every feed and is 404 to all but its author and moderators, as any removal."""
    me = _require_moderator(uow)
    if reason is None:
        raise Invalid(
            "a moderator deleting someone else's post gives the reason: DELETE /api/posts/{postId}?reason=...",
            field="reason",
        )
    await _set_status(uow, post_id, "remove", "remove", reason, me)


async def _create_comment_appeal(uow: UnitOfWork, me: UUID, body: CreateAppeal, comment_id: UUID) -> Appeal:
    """The author of a comment a moderator deleted appeals that delete."""
    cur = await uow.conn.execute(
        "SELECT author_id, deleted_at IS NOT NULL FROM comments WHERE id = %s AND post_id = %s",
        (comment_id, body.post_id),
    )
    row = await cur.fetchone()
    if row is None or row[0] != me:
        raise NotFound("no such comment of yours on this post")
    cur = await uow.conn.execute(
        "SELECT 1 FROM moderation_actions WHERE comment_id = %s AND action = 'remove'", (comment_id,)
    )
    if not row[1] or await cur.fetchone() is None:
        raise Conflict("no moderator deleted this comment: there is nothing to appeal")
    try:
        cur = await uow.conn.execute(
            """INSERT INTO appeals (post_id, comment_id, author_id, statement) VALUES (%s, %s, %s, %s)
               RETURNING id, status, created_at""",
            (body.post_id, comment_id, me, body.statement),
        )
    except pg_errors.UniqueViolation:
        raise Conflict("this comment already has an appeal waiting for a decision") from None
    appeal = await cur.fetchone()
    assert appeal is not None
    appeal_id, status, created_at = appeal
    uow.record(
        AppealCreated(
            appeal_id=appeal_id,
            post_id=body.post_id,
            author_id=me,
            statement=body.statement,
            created_at=created_at,
        ),
        appeal_id,
        1,
    )
    return Appeal(
        id=appeal_id, post_id=body.post_id, comment_id=comment_id, status=status, created_at=created_at
    )


async def create_appeal(uow: UnitOfWork, body: CreateAppeal) -> Appeal:
    me = uow.require_user()
    if body.comment_id is not None:
        return await _create_comment_appeal(uow, me, body, body.comment_id)
    post = await fetch_one(
        uow.conn,
        _PostOwner,
        "SELECT author_id, status FROM posts WHERE id = %s AND deleted_at IS NULL",
        (body.post_id,),
    )
    if post is None or (post.author_id != me and not uow.actor.is_moderator):
        raise NotFound("no such post")
    if post.author_id != me:
        raise Forbidden("only the post's author can appeal")
    if post.status == "visible":
        raise Conflict("this post is not hidden or removed: there is nothing to appeal")
    try:
        appeal = await fetch_one(
            uow.conn,
            _Created,
            "INSERT INTO appeals (post_id, author_id, statement) VALUES (%s, %s, %s) RETURNING id, status, created_at",
            (body.post_id, me, body.statement),
        )
    except pg_errors.UniqueViolation:
        raise Conflict("this post already has an appeal waiting for a decision") from None
    assert appeal is not None
    appeal_id, status, created_at = appeal.id, appeal.status, appeal.created_at
    uow.record(
        AppealCreated(
            appeal_id=appeal_id,
            post_id=body.post_id,
            author_id=me,
            statement=body.statement,
            created_at=created_at,
        ),
        appeal_id,
        1,
    )
    return Appeal(id=appeal_id, post_id=body.post_id, status=status, created_at=created_at)


async def decide_appeal(uow: UnitOfWork, appeal_id: UUID, body: AppealDecisionRequest) -> Appeal:
    """Upheld: the moderation stands (the appeal is rejected). Overturned: the post is restored."""
    me = _require_moderator(uow)
    appeal = await fetch_one(
        uow.conn,
        _PendingAppeal,
        "SELECT post_id, author_id, status, comment_id FROM appeals WHERE id = %s FOR UPDATE",
        (appeal_id,),
    )
    if appeal is None:
        raise NotFound("no such appeal")
    post_id, author_id, comment_id = appeal.post_id, appeal.author_id, appeal.comment_id
    _not_own_case(me, author_id, "appeal")
    if appeal.status != "pending":
        raise Conflict(f"this appeal was already decided ({appeal.status})")
    new_status = "rejected" if body.decision == "upheld" else "approved"
    times = await fetch_one(
        uow.conn,
        _DecidedAt,
        """UPDATE appeals SET status = %s, decided_by = %s, decision_reason = %s, decided_at = now()
           WHERE id = %s RETURNING created_at, decided_at""",
        (new_status, me, body.reason, appeal_id),
    )
    assert times is not None
    if comment_id is not None:
        # An appeal of a comment's delete: overturned, the comment comes back.
        if body.decision == "overturned":
            await restore_comment(uow, comment_id)
        await uow.conn.execute(
            """INSERT INTO moderation_actions (post_id, comment_id, moderator_id, action, reason)
               VALUES (%s, %s, %s, %s, %s)""",
            (post_id, comment_id, me, f"appeal_{body.decision}", body.reason),
        )
    elif body.decision == "overturned":
        await _set_status(uow, post_id, "restore", "appeal_overturned", body.reason, me)
    else:
        await uow.conn.execute(
            "INSERT INTO moderation_actions (post_id, moderator_id, action, reason) VALUES (%s, %s, %s, %s)",
            (post_id, me, "appeal_upheld", body.reason),
        )
    uow.record(
        AppealDecided(
            appeal_id=appeal_id,
            post_id=post_id,
            author_id=author_id,
            decision=body.decision,
            reason=body.reason,
            moderator_id=me,
        ),
        appeal_id,
        2,
    )
    return Appeal(
        id=appeal_id,
        post_id=post_id,
        comment_id=comment_id,
        status=new_status,
        created_at=times.created_at,
        decided_at=times.decided_at,
        decision_reason=body.reason,
    )
