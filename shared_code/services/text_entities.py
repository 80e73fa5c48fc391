"""Mentions and hashtags of posts and comments: kept in PostgreSQL (`mentions`, `hashtag_uses`) in the
transaction that writes the text, so the rows, the trending counts (a trigger keeps
`hashtag_hourly_uses`) and the event that notifies the mentioned accounts commit together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Invalid
from shared_code.domain.text_entities import bounds_problem, extract
from shared_code.services.visibility import may_see_authors_content

SourceKind = Literal["post", "comment"]


@dataclass(frozen=True)
class TextEntitiesWritten:
    """What a write's event carries: every account mentioned, those to notify now, the tags."""

    mentions: tuple[UUID, ...]
    notify_mentions: tuple[UUID, ...]
    hashtags: tuple[str, ...]


@dataclass(frozen=True)
class _Account:
    id: UUID
    username: str


@dataclass(frozen=True)
class _Mentioned:
    mentioned_user_id: UUID


@dataclass(frozen=True)
class _Tag:
    tag: str


def check_text(content: str) -> None:
    """422 when a text holds more distinct mentions or tags than a text may (before anything is written)."""
    problem = bounds_problem(extract(content))
    if problem is not None:
        raise Invalid(problem, field="content")


async def write_text_entities(
    uow: UnitOfWork,
    *,
    source_id: UUID,
    source_kind: SourceKind,
    post_id: UUID,
    post_created_at: datetime,
    author_id: UUID,
    content: str,
    new_source: bool = False,
) -> TextEntitiesWritten:
    """Make the stored mentions and tags of `source_id` those of `content` (a new text, or an edit):
    rows no longer in the text go, new ones come. An account is notified when this write mentions it
    anew, is not the author, no block stands between the two, and it may see the author's content.

    `new_source`: `source_id` was inserted in this very transaction, so it has no rows yet: the reads of
    what was there and the deletes of what left are skipped (four statements fewer per new post or
    comment, on the write path every user waits for)."""
    entities = extract(content)
    problem = bounds_problem(entities)
    if problem is not None:
        raise Invalid(problem, field="content")
    accounts = (
        await fetch_all(
            uow.conn,
            _Account,
            "SELECT id, username::text AS username FROM users WHERE username = ANY(%s::citext[]) AND deleted_at IS NULL",
            (list(entities.mentions),),
        )
        if entities.mentions
        else []
    )
    order = {name: position for position, name in enumerate(entities.mentions)}
    mentioned = [a.id for a in sorted(accounts, key=lambda a: order[a.username.lower()])]
    before: set[UUID] = set()
    if not new_source:
        before = {
            row.mentioned_user_id
            for row in await fetch_all(
                uow.conn,
                _Mentioned,
                "SELECT mentioned_user_id FROM mentions WHERE source_id = %s",
                (source_id,),
            )
        }
        await uow.conn.execute(
            "DELETE FROM mentions WHERE source_id = %s AND mentioned_user_id <> ALL(%s::uuid[])",
            (source_id, mentioned),
        )
    added = [user_id for user_id in mentioned if user_id not in before]
    if added:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                """INSERT INTO mentions (source_id, source_kind, post_id, author_id, mentioned_user_id)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                [(source_id, source_kind, post_id, author_id, user_id) for user_id in added],
            )
    candidates = [user_id for user_id in added if user_id != author_id]
    allowed = await may_see_authors_content(uow, author_id, candidates) if candidates else set()
    notify = tuple(user_id for user_id in candidates if user_id in allowed)

    tags = list(entities.hashtags)
    tags_before: set[str] = set()
    if not new_source:
        tags_before = {
            row.tag
            for row in await fetch_all(
                uow.conn, _Tag, "SELECT tag FROM hashtag_uses WHERE source_id = %s", (source_id,)
            )
        }
        # Deleting a use takes it off its trending hour (the trigger), so only tags that left the text go.
        await uow.conn.execute(
            "DELETE FROM hashtag_uses WHERE source_id = %s AND tag <> ALL(%s::text[])", (source_id, tags)
        )
    new_tags = [tag for tag in tags if tag not in tags_before]
    if new_tags:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                """INSERT INTO hashtag_uses (source_id, source_kind, post_id, author_id, tag, post_created_at)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                [(source_id, source_kind, post_id, author_id, tag, post_created_at) for tag in new_tags],
            )
    return TextEntitiesWritten(mentions=tuple(mentioned), notify_mentions=notify, hashtags=entities.hashtags)


async def moderated_post_tags(
    uow: UnitOfWork, post_id: UUID, author_id: UUID, content: str, post_created_at: datetime, visible: bool
) -> None:
    """A moderator hid or removed a post (its tags stop counting in trending), or restored it (they
    count again, from now: a restored post trends as if just tagged)."""
    if not visible:
        await uow.conn.execute("DELETE FROM hashtag_uses WHERE source_id = %s", (post_id,))
        return
    tags = extract(content).hashtags
    if tags:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                """INSERT INTO hashtag_uses (source_id, source_kind, post_id, author_id, tag, post_created_at)
                   VALUES (%s, 'post', %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                [(post_id, post_id, author_id, tag, post_created_at) for tag in tags],
            )


async def remove_post_entities(uow: UnitOfWork, post_id: UUID) -> None:
    """A deleted post: its mentions and tags, and those of its comments, go (and leave trending)."""
    await uow.conn.execute("DELETE FROM mentions WHERE post_id = %s", (post_id,))
    await uow.conn.execute("DELETE FROM hashtag_uses WHERE post_id = %s", (post_id,))


async def remove_comment_entities(uow: UnitOfWork, comment_id: UUID) -> None:
    await uow.conn.execute("DELETE FROM mentions WHERE source_id = %s", (comment_id,))
    await uow.conn.execute("DELETE FROM hashtag_uses WHERE source_id = %s", (comment_id,))


async def erase_mentions_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: up to `limit` rows that say others' texts mentioned the account, or that the
    account's texts used a tag or mentioned someone (its posts' and comments' deletions take most of
    those already). How many went; 0 when none is left."""
    cur = await uow.conn.execute(
        """DELETE FROM mentions WHERE ctid IN (
               SELECT ctid FROM mentions WHERE mentioned_user_id = %(u)s OR author_id = %(u)s LIMIT %(limit)s)""",
        {"u": user_id, "limit": limit},
    )
    gone = cur.rowcount
    cur = await uow.conn.execute(
        """DELETE FROM hashtag_uses WHERE ctid IN (
               SELECT ctid FROM hashtag_uses WHERE author_id = %(u)s LIMIT %(limit)s)""",
        {"u": user_id, "limit": limit},
    )
    return gone + cur.rowcount
