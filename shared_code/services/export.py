"""GET /api/users/me/export: everything Chorus holds about the caller, as one JSON document
(docs/privacy.md "Exporting an account").

An export of at most EXPORT_INLINE_MAX_ITEMS items is answered at once. A larger one is a job: the
request records an `account_exports` row and account.export_requested; the relay's export handler
writes the document to a blob (container `exports`, `{userId}/{exportId}.json`) and marks the row
ready; the caller polls GET /api/users/me/exports/{exportId} and gets a read-only download link that
lives EXPORT_LINK_MINUTES.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from azure.core.exceptions import ResourceExistsError
from azure.cosmos.aio import DatabaseProxy
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient
from psycopg_pool import AsyncConnectionPool

from shared_code.db.unit_of_work import Actor, UnitOfWork, unit_of_work
from shared_code.domain.errors import NotFound
from shared_code.domain.events import AccountExportRequested
from shared_code.projections.writes import NOTIFICATIONS

EXPORT_CONTAINER = "exports"
EXPORT_ACTOR = Actor(subject="system:export", role="system")
FORMAT_VERSION = 1

# What the document lists, each as (key, query); every query takes the user's id as %(u)s.
_SECTIONS: tuple[tuple[str, str], ...] = (
    (
        "posts",
        """SELECT p.id, p.content, p.status, p.created_at, p.edited_at, p.quote_post_id FROM posts p
           WHERE p.author_id = %(u)s AND p.deleted_at IS NULL ORDER BY p.created_at, p.id""",
    ),
    (
        "comments",
        """SELECT id, post_id, parent_id, content, created_at FROM comments
           WHERE author_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, id""",
    ),
    (
        "reactions",
        """SELECT post_id, type, created_at FROM reactions
           WHERE user_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, post_id""",
    ),
    (
        "reposts",
        """SELECT post_id, created_at FROM reposts
           WHERE user_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, post_id""",
    ),
    (
        "bookmarks",
        """SELECT post_id, created_at FROM bookmarks
           WHERE user_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, post_id""",
    ),
    (
        "events",
        """SELECT id, title, description, place, category, starts_at, ends_at, capacity, visibility,
                  cancelled_at, created_at FROM events
           WHERE host_id = %(u)s ORDER BY created_at, id""",
    ),
    (
        "rsvps",
        """SELECT event_id, status, created_at, updated_at FROM event_rsvps
           WHERE user_id = %(u)s ORDER BY created_at, event_id""",
    ),
    (
        "messagesSent",
        """SELECT id, conversation_id, reply_to_id, text, encrypted, created_at, edited_at FROM messages
           WHERE sender_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, id""",
    ),
    (
        "conversations",
        """SELECT conversation_id, role, state, joined_at FROM conversation_members
           WHERE user_id = %(u)s ORDER BY joined_at, conversation_id""",
    ),
    (
        "devices",
        """SELECT device_id, identity_key, signed_prekey_id, signed_prekey, updated_at FROM device_keys
           WHERE user_id = %(u)s ORDER BY device_id""",
    ),
    (
        "following",
        """SELECT f.followee_id AS user_id, u.username, f.created_at FROM follows f
           JOIN users u ON u.id = f.followee_id
           WHERE f.follower_id = %(u)s AND f.deleted_at IS NULL ORDER BY f.created_at, f.followee_id""",
    ),
    (
        "followers",
        """SELECT f.follower_id AS user_id, u.username, f.created_at FROM follows f
           JOIN users u ON u.id = f.follower_id
           WHERE f.followee_id = %(u)s AND f.deleted_at IS NULL ORDER BY f.created_at, f.follower_id""",
    ),
    (
        "blocks",
        """SELECT b.blocked_id AS user_id, u.username, b.created_at FROM blocks b
           JOIN users u ON u.id = b.blocked_id
           WHERE b.blocker_id = %(u)s AND b.deleted_at IS NULL ORDER BY b.created_at, b.blocked_id""",
    ),
    (
        "mutes",
        """SELECT m.muted_id AS user_id, u.username, m.created_at FROM mutes m
           JOIN users u ON u.id = m.muted_id
           WHERE m.muter_id = %(u)s AND m.deleted_at IS NULL ORDER BY m.created_at, m.muted_id""",
    ),
    (
        "followRequestsMade",
        """SELECT r.target_id AS user_id, u.username, r.created_at FROM follow_requests r
           JOIN users u ON u.id = r.target_id
           WHERE r.requester_id = %(u)s AND r.resolved_at IS NULL ORDER BY r.created_at, r.target_id""",
    ),
    (
        "followRequestsReceived",
        """SELECT r.requester_id AS user_id, u.username, r.created_at FROM follow_requests r
           JOIN users u ON u.id = r.requester_id
           WHERE r.target_id = %(u)s AND r.resolved_at IS NULL ORDER BY r.created_at, r.requester_id""",
    ),
    (
        "flags",
        """SELECT id, post_id, reason, severity, status, created_at FROM moderation_flags
           WHERE reporter_id = %(u)s ORDER BY created_at, id""",
    ),
    (
        "appeals",
        """SELECT id, post_id, statement, status, created_at, decided_at FROM appeals
           WHERE author_id = %(u)s ORDER BY created_at, id""",
    ),
    (
        "media",
        """SELECT id, content_type, size_bytes, status, created_at FROM media_assets
           WHERE owner_id = %(u)s AND deleted_at IS NULL ORDER BY created_at, id""",
    ),
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


async def count_items(uow: UnitOfWork, user_id: UUID) -> int:
    """How many items an export of the account lists (notifications aside: they are bounded by the
    projection's own retention)."""
    total = 0
    for _, query in _SECTIONS:
        cur = await uow.conn.execute(f"SELECT count(*) FROM ({query}) AS section", {"u": user_id})  # noqa: S608
        row = await cur.fetchone()
        total += int(row[0]) if row else 0
    return total


async def build_document(uow: UnitOfWork, cosmos_db: DatabaseProxy, user_id: UUID) -> dict[str, Any]:
    """The export: the account and profile, then every section, then the notifications (Cosmos DB)."""
    cur = await uow.conn.execute(
        """SELECT u.id, u.username, u.email, u.auth_provider, u.created_at, p.display_name, p.bio, p.avatar_url,
                  CASE WHEN p.visibility = 'public' THEN 'public' ELSE 'private' END,
                  coalesce((SELECT n.turned_off FROM notification_settings n WHERE n.user_id = u.id), '{}')
           FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s""",
        (user_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("this account no longer exists")
    document: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "exportedAt": datetime.now(UTC).isoformat(),
        "account": {
            "id": str(row[0]),
            "username": row[1],
            "email": row[2],
            "authProvider": row[3],
            "createdAt": row[4].isoformat(),
        },
        "profile": {"displayName": row[5], "bio": row[6], "avatarUrl": row[7], "visibility": row[8]},
        "notificationTypesTurnedOff": list(row[9]),
    }
    for key, query in _SECTIONS:
        cur = await uow.conn.execute(query, {"u": user_id})
        assert cur.description is not None
        names = [_camel(column.name) for column in cur.description]
        document[key] = [
            {name: _json_value(value) for name, value in zip(names, item, strict=True)}
            for item in await cur.fetchall()
        ]
    for media in document["media"]:
        # Read through the media route, which checks visibility and signs a short-lived URL.
        media["url"] = f"/api/media/{media['id']}"
    me = str(user_id)
    notifications = cosmos_db.get_container_client(NOTIFICATIONS)
    document["notifications"] = [
        {name: item.get(name) for name in ("id", "type", "actorId", "subjectId", "createdAt", "read")}
        async for item in notifications.query_items(
            "SELECT * FROM c WHERE c.recipientId = @me",
            parameters=[{"name": "@me", "value": me}],
            partition_key=me,
        )
    ]
    return document


@dataclass(frozen=True)
class ExportAccepted:
    export_id: UUID


async def request_export(uow: UnitOfWork) -> ExportAccepted:
    """Record an export job of the caller's account for the relay's export handler."""
    me = uow.require_user()
    cur = await uow.conn.execute(
        "INSERT INTO account_exports (user_id) VALUES (%s) RETURNING id, requested_at", (me,)
    )
    row = await cur.fetchone()
    assert row is not None
    uow.record(AccountExportRequested(export_id=row[0], user_id=me), row[0], 1)
    return ExportAccepted(export_id=row[0])


@dataclass(frozen=True)
class ExportState:
    export_id: UUID
    status: str  # "pending" | "ready"
    blob_path: str | None
    items: int | None


async def export_state(uow: UnitOfWork, export_id: UUID) -> ExportState:
    """The caller's export job; 404 for anyone else's."""
    me = uow.require_user()
    cur = await uow.conn.execute(
        "SELECT status, blob_path, items FROM account_exports WHERE id = %s AND user_id = %s", (export_id, me)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such export")
    return ExportState(export_id, row[0], row[1], row[2])


class ExportService:
    """The export job (the relay's export handler calls `write`): idempotent, a second run writes the
    same blob again and finds the row ready."""

    def __init__(
        self, pool: AsyncConnectionPool, cosmos_db: DatabaseProxy, blob_service: BlobServiceClient
    ) -> None:
        self._pool = pool
        self._cosmos = cosmos_db
        self._blobs = blob_service

    async def write(self, export_id: UUID, user_id: UUID) -> None:
        async with unit_of_work(self._pool, EXPORT_ACTOR) as uow:
            cur = await uow.conn.execute("SELECT status FROM account_exports WHERE id = %s", (export_id,))
            row = await cur.fetchone()
            if row is None or row[0] == "ready":
                return
            document = await build_document(uow, self._cosmos, user_id)
        items = sum(len(value) for value in document.values() if isinstance(value, list))
        blob_path = f"{user_id}/{export_id}.json"
        container = self._blobs.get_container_client(EXPORT_CONTAINER)
        # In Azure the container is Bicep's and the app's role is on it alone, not on the account, so
        # only a local stack (Azurite) gets it created here.
        if not await container.exists():
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
        await container.upload_blob(
            blob_path,
            json.dumps(document, ensure_ascii=False).encode(),
            overwrite=True,
            content_settings=ContentSettings(
                content_type="application/json",
                content_disposition=f'attachment; filename="chorus-export-{export_id}.json"',
            ),
        )
        async with unit_of_work(self._pool, EXPORT_ACTOR) as uow:
            await uow.conn.execute(
                """UPDATE account_exports SET status = 'ready', blob_path = %s, items = %s, ready_at = now()
                   WHERE id = %s AND status = 'pending'""",
                (blob_path, items, export_id),
            )
