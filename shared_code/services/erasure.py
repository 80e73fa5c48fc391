"""Account erasure (docs/privacy.md): accepted at once, done in batches in the background.

`request_erasure` (DELETE /api/users/me) locks the account (FOR UPDATE, against the FOR KEY SHARE
every write involving an account takes: see UnitOfWork.lock_live_users), marks it deleted, holds
its username back and records account.erasure_requested. From then on no follow, post, comment,
reaction, block, mute or flag by or to the account can commit.

The relay's erasure handler takes that event and `run_step` does one batch of one step in one
transaction, records its progress in account_erasures and the chain's next event in the outbox, in the
same transaction. A batch whose event was handled already (a relay retry, a crash after the commit)
finds a newer version in account_erasures and does nothing, so the chain is resumable and idempotent.
Every row removed is removed the way its own use case removes it, with its event, so every projection
and counter retracts it as it would a single delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.core.exceptions import ResourceNotFoundError
from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy
from azure.storage.blob.aio import BlobServiceClient
from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import Actor, UnitOfWork, unit_of_work
from shared_code.domain.errors import NotFound
from shared_code.domain.events import (
    AccountErased,
    AccountErasureProgressed,
    AccountErasureRequested,
    UserDeleted,
)
from shared_code.domain.limits import ERASED_DISPLAY_NAME, ERASED_TEXT
from shared_code.projections.writes import AUTHOR_POSTS, COUNTERS, FEED, NOTIFICATIONS, REACTIONS
from shared_code.services.calendar import erase_events_of, erase_rsvps_of
from shared_code.services.engagement import erase_comments_of, erase_reactions_of
from shared_code.services.export import EXPORT_CONTAINER
from shared_code.services.idempotency import delete_expired_keys
from shared_code.services.messaging import erase_messages_of
from shared_code.services.notification_settings import erase_notification_settings_of
from shared_code.services.post_deletion import soft_delete_post
from shared_code.services.reposts import erase_reposts_of
from shared_code.services.social import erase_blocks_and_mutes_of, erase_follow_requests_of, erase_follows_of
from shared_code.services.text_entities import erase_mentions_of

log = logging.getLogger("chorus.erasure")

ERASURE_ACTOR = Actor(subject="system:erasure", role="system")
# The steps in order. Posts go first, so the graph steps after them never back-fill a feed with them.
STEPS = (
    "posts",
    "comments",
    "reactions",
    "reposts_and_bookmarks",
    "events",
    "messages",
    "follows",
    "blocks_and_mutes",
    "moderation",
    "media",
    "idempotency",
    "exports",
    "projections",
    "outbox",
    "account",
)
# While earlier events about the account are still to be projected, the projections step waits this
# long before it looks again (its Cosmos DB documents must be written before they are deleted).
PROJECTIONS_WAIT_SECONDS = 1.0
# The outbox scrub reads this many outbox ids per batch for each row the batch size allows.
OUTBOX_IDS_PER_ROW = 20
# Payload fields that carry what a person wrote or is called; scrubbed from their events once published.
PERSONAL_PAYLOAD_FIELDS = [
    "content",
    "reason",
    "statement",
    "username",
    "displayName",
    "bio",
    "avatarUrl",
    "email",
    "hashtags",
    "details",  # an event's title, description and place
    # Direct messages (services/messaging.py).
    "text",
    "ciphertexts",
    "title",
]


def username_digest(username: str) -> str:
    """What a hold keeps of a username: its SHA-256, lowercased (usernames compare without case)."""
    return hashlib.sha256(username.lower().encode()).hexdigest()


async def lock_username(uow: UnitOfWork, username: str) -> None:
    """Onboarding and erasure take turns per username, so a claim cannot slip between an erasure
    freeing a name and its hold (held to the end of the transaction)."""
    await uow.conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"username:{username.lower()}",)
    )


async def username_held(uow: UnitOfWork, username: str) -> bool:
    cur = await uow.conn.execute(
        "SELECT 1 FROM username_holds WHERE username_sha256 = %s AND held_until > now()",
        (username_digest(username),),
    )
    return await cur.fetchone() is not None


@dataclass(frozen=True)
class Batch:
    """What one batch did: rows changed; whether its step has more to do (else the next step follows);
    how long the next batch waits; where the outbox scrub goes on from."""

    changed: int
    stay: bool
    delay_seconds: float = 0.0
    outbox_after: int = 0

    @classmethod
    def of(cls, changed: int, outbox_after: int) -> Batch:
        """A batch that changed nothing found its step done."""
        return cls(changed, stay=changed > 0, outbox_after=outbox_after)


@dataclass(frozen=True)
class _Progress:
    """An account's erasure as account_erasures records it."""

    step: str
    version: int
    rows_erased: int
    outbox_after: int
    completed_at: datetime | None


@dataclass(frozen=True)
class ErasureAccepted:
    user_id: UUID
    requested_at: datetime


async def request_erasure(uow: UnitOfWork, hold_days: float) -> ErasureAccepted:
    """Lock and mark the caller's account deleted, hold its username, start the erasure job."""
    user_id = uow.require_user()
    cur = await uow.conn.execute(
        "SELECT username FROM users WHERE id = %s AND deleted_at IS NULL FOR UPDATE", (user_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("this account no longer exists")
    username = str(row[0])
    await lock_username(uow, username)
    await uow.conn.execute(
        """INSERT INTO username_holds (username_sha256, held_until)
           VALUES (%s, now() + make_interval(secs => %s))
           ON CONFLICT (username_sha256) DO UPDATE SET held_until = greatest(username_holds.held_until,
                                                                              EXCLUDED.held_until)""",
        (username_digest(username), hold_days * 86400),
    )
    cur = await uow.conn.execute(
        """UPDATE users SET deleted_at = now(), updated_at = now(), version = version + 1
           WHERE id = %s RETURNING version, deleted_at""",
        (user_id,),
    )
    version_row = await cur.fetchone()
    assert version_row is not None
    version, deleted_at = version_row
    await uow.conn.execute("UPDATE profiles SET deleted_at = %s WHERE user_id = %s", (deleted_at, user_id))
    await uow.conn.execute(
        "INSERT INTO account_erasures (user_id, requested_at) VALUES (%s, %s)", (user_id, deleted_at)
    )
    uow.record(UserDeleted(user_id=user_id, deleted_at=deleted_at), user_id, version)
    uow.record(AccountErasureRequested(user_id=user_id, requested_at=deleted_at), user_id, 1)
    return ErasureAccepted(user_id=user_id, requested_at=deleted_at)


class ErasureService:
    """The erasure job's batches (the relay's erasure handler calls `run_step`)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        cosmos_db: DatabaseProxy,
        batch_size: int,
        blob_service: BlobServiceClient | None = None,
    ) -> None:
        self._pool = pool
        self._cosmos = cosmos_db
        self._batch = batch_size
        self._blobs = blob_service

    async def run_step(self, user_id: UUID, event_version: int, outbox_id: int) -> None:
        """Handle the chain's event `event_version`: one batch, its progress and the next event, in one
        transaction. Nothing if that event was handled already."""
        async with unit_of_work(self._pool, ERASURE_ACTOR) as uow:
            progress = await fetch_one(
                uow.conn,
                _Progress,
                """SELECT step, version, rows_erased, outbox_after, completed_at FROM account_erasures
                   WHERE user_id = %s FOR UPDATE""",
                (user_id,),
            )
            if progress is None or progress.completed_at is not None or progress.version != event_version:
                return  # done already (a replay), or never asked for
            step, version = progress.step, progress.version
            rows_erased, outbox_after = progress.rows_erased, progress.outbox_after
            batch = await self._batch_of(uow, step, user_id, outbox_id, outbox_after)
            rows_erased += batch.changed
            outbox_after = batch.outbox_after
            if not batch.stay:
                step = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "done"
            next_version = version + 1
            if step == "done":
                cur = await uow.conn.execute(
                    """UPDATE account_erasures SET step = 'done', version = %s, rows_erased = %s,
                              updated_at = now(), completed_at = now()
                       WHERE user_id = %s RETURNING completed_at""",
                    (next_version, rows_erased, user_id),
                )
                done = await cur.fetchone()
                assert done is not None
                uow.record(
                    AccountErased(user_id=user_id, rows_erased=rows_erased, erased_at=done[0]),
                    user_id,
                    next_version,
                )
                log.info("account %s erased: %d rows in %d batches", user_id, rows_erased, version)
                return
            await uow.conn.execute(
                """UPDATE account_erasures SET step = %s, version = %s, rows_erased = %s, outbox_after = %s,
                          updated_at = now()
                   WHERE user_id = %s""",
                (step, next_version, rows_erased, outbox_after, user_id),
            )
            uow.record(
                AccountErasureProgressed(user_id=user_id, step=step, rows_erased=rows_erased),
                user_id,
                next_version,
                delay_seconds=batch.delay_seconds,
            )

    async def _batch_of(
        self, uow: UnitOfWork, step: str, user_id: UUID, outbox_id: int, outbox_after: int
    ) -> Batch:
        """One batch of `step`."""
        limit = self._batch
        if step == "projections":
            if await _projections_pending(uow, user_id, outbox_id):
                return Batch(0, stay=True, delay_seconds=PROJECTIONS_WAIT_SECONDS, outbox_after=outbox_after)
            return Batch.of(await self._delete_documents(user_id, limit), outbox_after)
        if step == "exports":
            return Batch.of(await self._delete_exports(uow, user_id, limit), outbox_after)
        if step == "outbox":
            return await _scrub_outbox(uow, user_id, outbox_after, outbox_id, limit * OUTBOX_IDS_PER_ROW)
        erase = _SQL_STEPS[step]
        return Batch.of(await erase(uow, user_id, limit), outbox_after)

    async def _delete_exports(self, uow: UnitOfWork, user_id: UUID, limit: int) -> int:
        """The account's exports: their blobs, then their rows."""
        cur = await uow.conn.execute(
            "SELECT id, blob_path FROM account_exports WHERE user_id = %s ORDER BY id LIMIT %s",
            (user_id, limit),
        )
        exports = await cur.fetchall()
        for export_id, blob_path in exports:
            if blob_path is not None and self._blobs is not None:
                blob = self._blobs.get_blob_client(EXPORT_CONTAINER, blob_path)
                with contextlib.suppress(ResourceNotFoundError):
                    await blob.delete_blob()
            await uow.conn.execute("DELETE FROM account_exports WHERE id = %s", (export_id,))
        return len(exports)

    async def _delete_documents(self, user_id: UUID, limit: int) -> int:
        """Delete up to `limit` Cosmos DB documents about the account: its notifications and the ones it
        caused, its home feed and its posts in others' feeds, its counters. What stays are tombstones
        (deleted: true, ids only) that expire within a day: they keep a late, older event from bringing
        a document back."""
        user = str(user_id)
        # (container, query, the partition it reads: None for a query across partitions)
        targets: list[tuple[str, str, str | None]] = [
            (NOTIFICATIONS, "SELECT c.id, c.recipientId AS pk FROM c WHERE c.recipientId = @u", user),
            (NOTIFICATIONS, "SELECT c.id, c.recipientId AS pk FROM c WHERE c.actorId = @u", None),
            (FEED, "SELECT c.id, c.recipientId AS pk FROM c WHERE c.recipientId = @u", user),
            (FEED, "SELECT c.id, c.recipientId AS pk FROM c WHERE c.authorId = @u", None),
            (AUTHOR_POSTS, "SELECT c.id, c.authorId AS pk FROM c WHERE c.authorId = @u", user),
            (COUNTERS, "SELECT c.id, c.subjectId AS pk FROM c WHERE c.subjectId = @u", user),
            # Others' reactions to its (deleted) posts: nothing reads them any more.
            (
                REACTIONS,
                "SELECT c.id, c.postId AS pk FROM c WHERE c.postAuthorId = @u AND c.userId <> @u",
                None,
            ),
        ]
        deleted = 0
        for container_name, query, partition in targets:
            if deleted >= limit:
                break
            container = self._cosmos.get_container_client(container_name)
            parameters: list[dict[str, Any]] = [{"name": "@u", "value": user}]
            items = (
                container.query_items(query, parameters=parameters, partition_key=partition)
                if partition is not None
                else container.query_items(query, parameters=parameters)
            )
            found = []
            async for item in items:
                found.append((item["id"], item["pk"]))
                if deleted + len(found) >= limit:
                    break
            for item_id, pk in found:
                with contextlib.suppress(exceptions.CosmosResourceNotFoundError):  # a replayed batch
                    await container.delete_item(item_id, partition_key=pk)
                deleted += 1
        return deleted


async def _erase_posts(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Delete up to `limit` live posts (each with post.deleted, the author's count lowered) and blank
    the text of deleted ones, in the posts and in the moderators' mirror."""
    cur = await uow.conn.execute(
        "SELECT id FROM posts WHERE author_id = %s AND deleted_at IS NULL ORDER BY id LIMIT %s FOR UPDATE",
        (user_id, limit),
    )
    live = [post_id for (post_id,) in await cur.fetchall()]
    for post_id in live:
        await soft_delete_post(uow, post_id, user_id)
    cur = await uow.conn.execute(
        """UPDATE posts SET content = %(erased)s WHERE id IN (
               SELECT id FROM posts WHERE author_id = %(u)s AND deleted_at IS NOT NULL AND content <> %(erased)s
               ORDER BY id LIMIT %(limit)s)""",
        {"erased": ERASED_TEXT, "u": user_id, "limit": limit},
    )
    return len(live) + cur.rowcount


async def _delete_bookmarks(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Up to `limit` of the account's bookmarks, live or not: what someone saved is theirs alone and
    nothing refers to it. Private, so no event: nothing projected them."""
    cur = await uow.conn.execute(
        """DELETE FROM bookmarks WHERE (user_id, post_id) IN (
               SELECT user_id, post_id FROM bookmarks WHERE user_id = %s LIMIT %s)""",
        (user_id, limit),
    )
    return cur.rowcount


async def _erase_reposts_and_bookmarks(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Reposts are undone as their owner would undo them (counts lowered, feeds retracted); bookmarks,
    private and referred to by nothing, are deleted."""
    undone = await erase_reposts_of(uow, user_id, limit)
    if undone:
        return undone
    return await _delete_bookmarks(uow, user_id, limit)


async def _erase_moderation_texts(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """The words of the account's flags and appeals, of its posts in the moderators' mirror and in others'
    flags of them. The flags and appeals stay (a moderator's decision refers to them) with their ids and states."""
    changed = 0
    for statement in (
        "UPDATE moderation_flags SET reason = %(erased)s WHERE id IN (SELECT id FROM moderation_flags "
        "WHERE reporter_id = %(u)s AND reason <> %(erased)s ORDER BY id LIMIT %(limit)s)",
        # Flags on its posts keep a copy of the text they flagged (what the reporter saw): that goes too.
        "UPDATE moderation_flags SET flagged_text = %(erased)s WHERE id IN (SELECT f.id FROM moderation_flags f "
        "JOIN posts p ON p.id = f.post_id WHERE p.author_id = %(u)s AND f.flagged_text <> %(erased)s "
        "ORDER BY f.id LIMIT %(limit)s)",
        "UPDATE appeals SET statement = %(erased)s WHERE id IN (SELECT id FROM appeals "
        "WHERE author_id = %(u)s AND statement <> %(erased)s ORDER BY id LIMIT %(limit)s)",
        "UPDATE posts_admin_mirror SET content = %(erased)s WHERE post_id IN (SELECT post_id FROM "
        "posts_admin_mirror WHERE author_id = %(u)s AND content <> %(erased)s ORDER BY post_id LIMIT %(limit)s)",
    ):
        cur = await uow.conn.execute(statement, {"erased": ERASED_TEXT, "u": user_id, "limit": limit})
        changed += cur.rowcount
    return changed


async def _release_media(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Mark the account's media deleted: the media sweep deletes their blobs (docs/privacy.md)."""
    cur = await uow.conn.execute(
        """UPDATE media_assets SET deleted_at = now() WHERE id IN (
               SELECT id FROM media_assets WHERE owner_id = %s AND deleted_at IS NULL ORDER BY id LIMIT %s)""",
        (user_id, limit),
    )
    return cur.rowcount


async def _delete_stored_responses(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Stored Idempotency-Key responses repeat what the account sent and got: deleted."""
    cur = await uow.conn.execute(
        """DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM idempotency_keys WHERE user_id = %s LIMIT %s))""",
        (user_id, limit),
    )
    return cur.rowcount


# Outbox events about the account: caused by it, of its account, or about its posts.
_ABOUT_ACCOUNT = """(metadata ->> 'actorUserId' = %(u)s OR (aggregate_type = 'user' AND aggregate_id = %(uid)s)
     OR payload ->> 'userId' = %(u)s OR payload ->> 'authorId' = %(u)s
     OR payload -> 'author' ->> 'userId' = %(u)s
     OR payload ->> 'followerId' = %(u)s OR payload ->> 'followeeId' = %(u)s
     OR payload ->> 'hostId' = %(u)s)"""


async def _projections_pending(uow: UnitOfWork, user_id: UUID, before_outbox_id: int) -> bool:
    """Whether an earlier event about the account is still waiting for its projections (pending, not
    dead): its documents must be written before this step deletes them."""
    cur = await uow.conn.execute(
        f"""SELECT 1 FROM outbox WHERE id < %(before)s AND status = 'pending' AND projected_at IS NULL
              AND {_ABOUT_ACCOUNT} LIMIT 1""",  # noqa: S608
        {"before": before_outbox_id, "u": str(user_id), "uid": user_id},
    )
    return await cur.fetchone() is not None


async def _scrub_outbox(uow: UnitOfWork, user_id: UUID, after: int, up_to: int, span: int) -> Batch:
    """Published events about the account keep their ids, types and counts but lose the words and names
    (and the token subject of whoever caused them). One range of outbox ids per batch, up to the
    chain's current event (events still to be published keep their payload: see docs/privacy.md)."""
    end = min(up_to, after + span)
    cur = await uow.conn.execute(
        f"""UPDATE outbox SET
                payload = CASE WHEN payload ? 'author'
                               THEN jsonb_set(payload - %(fields)s::text[], '{{author}}',
                                              jsonb_build_object('userId', payload -> 'author' -> 'userId'))
                               ELSE payload - %(fields)s::text[] END,
                metadata = metadata - 'actor'
            WHERE id > %(after)s AND id <= %(end)s AND status IN ('published', 'skipped') AND {_ABOUT_ACCOUNT}""",  # noqa: S608
        {"fields": PERSONAL_PAYLOAD_FIELDS, "after": after, "end": end, "u": str(user_id), "uid": user_id},
    )
    return Batch(cur.rowcount, stay=end < up_to, outbox_after=end)


async def _erase_account_row(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Last: the account's row keeps its id (others' rows refer to it) and nothing else of the person.
    The moderators' mirror is scrubbed once more: by now every post event has reached it."""
    cur = await uow.conn.execute(
        """UPDATE users SET email = NULL, username = %s, auth_subject = %s, auth_provider = 'email',
                  updated_at = now()
           WHERE id = %s AND auth_subject <> %s""",
        (f"erased_{user_id.hex[:20]}", f"erased:{user_id}", user_id, f"erased:{user_id}"),
    )
    changed = cur.rowcount
    # Whether its posts were pulled rather than fanned out (feeds no longer show them).
    cur = await uow.conn.execute("DELETE FROM fanout_pull_windows WHERE author_id = %s", (user_id,))
    changed += cur.rowcount
    cur = await uow.conn.execute(
        """UPDATE profiles SET display_name = %s, bio = '', avatar_url = NULL, updated_at = now()
           WHERE user_id = %s AND (display_name <> %s OR bio <> '' OR avatar_url IS NOT NULL)""",
        (ERASED_DISPLAY_NAME, user_id, ERASED_DISPLAY_NAME),
    )
    changed += cur.rowcount
    changed += await erase_notification_settings_of(uow, user_id, limit)
    return changed + await _erase_moderation_texts(uow, user_id, limit)


async def _erase_comments_and_mentions(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """The account's comments, then what is left of its mentions and tags: others' mentions of it
    and (should any remain) its own."""
    changed = await erase_comments_of(uow, user_id, limit)
    return changed or await erase_mentions_of(uow, user_id, limit)


async def _erase_graph(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Follows to and from the account, each with its event; then its follow requests both ways."""
    follows = await erase_follows_of(uow, user_id, limit)
    return follows + (await erase_follow_requests_of(uow, user_id, limit - follows) if follows < limit else 0)


async def _erase_events_and_rsvps(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """The account's answers go first (seats freed for those waiting), then its own events are
    cancelled (attendees notified) and their words blanked."""
    answers = await erase_rsvps_of(uow, user_id, limit)
    return answers or await erase_events_of(uow, user_id, limit)


_SQL_STEPS = {
    "posts": _erase_posts,
    "events": _erase_events_and_rsvps,
    "comments": _erase_comments_and_mentions,
    "reactions": erase_reactions_of,
    "reposts_and_bookmarks": _erase_reposts_and_bookmarks,
    "messages": erase_messages_of,
    "follows": _erase_graph,
    "blocks_and_mutes": erase_blocks_and_mutes_of,
    "moderation": _erase_moderation_texts,
    "media": _release_media,
    "idempotency": _delete_stored_responses,
    "account": _erase_account_row,
}


# The expiry timer deletes this many rows per transaction, and stops after this many seconds (a
# backlog shrinks over several runs).
EXPIRY_BATCH = 500
EXPIRY_BUDGET_SECONDS = 50.0


async def expire_keys_and_holds(pool: AsyncConnectionPool, key_ttl_hours: float) -> tuple[int, int]:
    """Delete Idempotency-Key responses older than `key_ttl_hours` and username holds that ran out, in
    small transactions; (keys deleted, holds deleted)."""
    deadline = time.monotonic() + EXPIRY_BUDGET_SECONDS
    keys = holds = 0
    while time.monotonic() < deadline:
        async with unit_of_work(pool, ERASURE_ACTOR) as uow:
            deleted_keys = await delete_expired_keys(uow, key_ttl_hours, EXPIRY_BATCH)
            cur = await uow.conn.execute(
                """DELETE FROM username_holds WHERE username_sha256 IN (
                       SELECT username_sha256 FROM username_holds WHERE held_until <= now() LIMIT %s)""",
                (EXPIRY_BATCH,),
            )
            deleted_holds = cur.rowcount
        keys, holds = keys + deleted_keys, holds + deleted_holds
        if deleted_keys < EXPIRY_BATCH and deleted_holds < EXPIRY_BATCH:
            break
    return keys, holds
