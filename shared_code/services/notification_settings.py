"""Notification settings: which types a user turned off, and the gate every notification passes
before it is written (the relay's projections and the reactions change feed): a type its recipient
turned off is not written at all, and neither is a notification about a post (or an event) whose
author's (host's) content the recipient may not see (the privacy rule, services/audience.py)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from shared_code.db.unit_of_work import UnitOfWork, system_connection
from shared_code.domain.notifications import NOTIFICATION_TYPES, is_turned_off
from shared_code.domain.privacy import shows_in_listings
from shared_code.projections.writes import NOTIFICATIONS, CosmosWrite, CreateOnce
from shared_code.schemas.notification_settings import NotificationSettings, UpdateNotificationSettings
from shared_code.services.audience import audience_of


async def _turned_off(uow: UnitOfWork, user_id: UUID) -> frozenset[str]:
    cur = await uow.conn.execute(
        "SELECT turned_off FROM notification_settings WHERE user_id = %s", (user_id,)
    )
    row = await cur.fetchone()
    return frozenset(row[0]) if row else frozenset()


def _settings(turned_off: frozenset[str]) -> NotificationSettings:
    return NotificationSettings.model_validate({kind: kind not in turned_off for kind in NOTIFICATION_TYPES})


async def get_notification_settings(uow: UnitOfWork) -> NotificationSettings:
    return _settings(await _turned_off(uow, uow.require_user()))


async def update_notification_settings(
    uow: UnitOfWork, body: UpdateNotificationSettings
) -> NotificationSettings:
    """Turn the given types on or off; the others stay. One row per user, written only once something
    is turned off (an account that never changed a setting has none)."""
    me = uow.require_user()
    changes = body.changes()
    off = sorted({kind for kind, on in changes.items() if not on})
    on = sorted({kind for kind, on in changes.items() if on})
    cur = await uow.conn.execute(
        """INSERT INTO notification_settings (user_id, turned_off) VALUES (%(me)s, %(off)s)
           ON CONFLICT (user_id) DO UPDATE
               SET turned_off = ARRAY(SELECT DISTINCT t FROM unnest(notification_settings.turned_off || %(off)s) t
                                      WHERE t <> ALL(%(on)s) ORDER BY t),
                   updated_at = now()
           RETURNING turned_off""",
        {"me": me, "off": off, "on": on},
    )
    row = await cur.fetchone()
    assert row is not None
    return _settings(frozenset(row[0]))


async def erase_notification_settings_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: the account's settings row (at most one)."""
    cur = await uow.conn.execute("DELETE FROM notification_settings WHERE user_id = %s", (user_id,))
    return cur.rowcount


class NotificationGate:
    """Filters the Cosmos writes of a projection or the change feed: every notification whose type its
    recipient turned off, or about a post its recipient may not see, is dropped before it is written.
    At most three short queries per call, whatever the number of notifications."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def admit(self, writes: Sequence[CosmosWrite]) -> list[CosmosWrite]:
        notes = [w for w in writes if isinstance(w, CreateOnce) and w.container == NOTIFICATIONS]
        if not notes:
            return list(writes)
        recipients = sorted({UUID(str(n.document["recipientId"])) for n in notes})
        subjects = sorted({UUID(str(n.document["subjectId"])) for n in notes})
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT user_id, turned_off FROM notification_settings WHERE user_id = ANY(%s)", (recipients,)
            )
            turned_off = {row[0]: frozenset(row[1]) for row in await cur.fetchall()}
            # Subjects that are posts or events (follow notifications name a user): whose content they
            # are (an event's is its host's).
            cur = await conn.execute(
                """SELECT id, author_id FROM posts WHERE id = ANY(%(s)s)
                   UNION ALL SELECT id, host_id FROM events WHERE id = ANY(%(s)s)""",
                {"s": subjects},
            )
            post_author = {row[0]: row[1] for row in await cur.fetchall()}
            hidden: set[tuple[UUID, UUID]] = set()
            for recipient in recipients:
                authors = {
                    post_author[UUID(str(n.document["subjectId"]))]
                    for n in notes
                    if UUID(str(n.document["recipientId"])) == recipient
                    and UUID(str(n.document["subjectId"])) in post_author
                } - {recipient}
                if authors:
                    facts = await audience_of(conn, recipient, authors)
                    hidden |= {
                        (recipient, a)
                        for a in authors
                        if not shows_in_listings(recipient, False, facts.get(a))
                    }

        def admitted(note: CreateOnce) -> bool:
            recipient = UUID(str(note.document["recipientId"]))
            author = post_author.get(UUID(str(note.document["subjectId"])))
            if is_turned_off(str(note.document["type"]), turned_off.get(recipient, frozenset())):
                return False
            return author is None or (recipient, author) not in hidden

        return [
            w
            for w in writes
            if not (isinstance(w, CreateOnce) and w.container == NOTIFICATIONS) or admitted(w)
        ]
