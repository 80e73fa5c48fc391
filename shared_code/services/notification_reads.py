"""The caller's notifications, newest first (all, or only the unread), from the `notifications`
projection: one single-partition query per page, and one batched read of the actors' current profiles.
Marking them read is services/notifications.py."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.projections.writes import NOTIFICATIONS
from shared_code.schemas.common import Page
from shared_code.schemas.reads import Notification
from shared_code.services.audience import visible_authors
from shared_code.services.feed_hydration import current_authors
from shared_code.services.guards import blocked_either_way_ids
from shared_code.services.projection_queries import continuation_of, next_cursor, page


async def _caller_and_hidden(uow: UnitOfWork) -> tuple[str, list[str]]:
    """The caller, and everyone they blocked or are blocked by: their notifications are left out
    (those from before the block too), whatever the block's direction."""
    me = uow.require_user()
    return str(me), [str(user_id) for user_id in await blocked_either_way_ids(uow, me)]


async def list_notifications(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    unread_only: bool,
    limit: int,
    cursor: str | None,
) -> Page[Notification]:
    me, hidden = await run(_caller_and_hidden)
    scope = f"notifications:{me}:{'unread' if unread_only else 'all'}"
    query = (
        "SELECT * FROM c WHERE c.recipientId = @me AND c.read = false AND NOT ARRAY_CONTAINS(@hidden, c.actorId) "
        "ORDER BY c.recipientId, c.read, c.createdAt DESC"
        if unread_only
        else "SELECT * FROM c WHERE c.recipientId = @me AND NOT ARRAY_CONTAINS(@hidden, c.actorId) "
        "ORDER BY c.recipientId, c.createdAt DESC"
    )
    continuation = continuation_of(cursors, scope, cursor)
    async with budget.guard():
        items, continuation = await page(
            db.get_container_client(NOTIFICATIONS),
            query,
            [{"name": "@me", "value": me}, {"name": "@hidden", "value": hidden}],
            me,
            limit,
            continuation,
        )
    if items:
        unseen = await run(lambda uow: _subjects_not_to_show(uow, items))
        items = [n for n in items if n["subjectId"] not in unseen]
    # Notifications store the actor's id only: their current name and avatar are read for the page.
    actors = await current_authors(db, run, [str(n["actorId"]) for n in items], budget)
    return Page[Notification](
        items=[
            Notification(
                id=n["id"],
                type=n["type"],
                actor_id=n["actorId"],
                actor=actors[str(n["actorId"])],
                subject_id=n["subjectId"],
                created_at=n.get("createdAt"),
                read=bool(n.get("read")),
            )
            for n in items
        ],
        next_cursor=next_cursor(cursors, scope, continuation),
    )


async def _subjects_not_to_show(uow: UnitOfWork, items: list[dict[str, Any]]) -> set[str]:
    """Posts the notifications are about whose author's content the caller may not see (any more: the
    author turned private, or the caller unfollowed): those notifications are left out. One query for
    the posts' authors, one for the privacy rule (services/audience.py)."""
    subjects = []
    for n in items:
        try:
            subjects.append(UUID(str(n["subjectId"])))
        except ValueError:
            continue
    cur = await uow.conn.execute("SELECT id, author_id FROM posts WHERE id = ANY(%s)", (subjects,))
    authors = {row[0]: row[1] for row in await cur.fetchall()}
    shown = await visible_authors(uow, set(authors.values()))
    return {str(post) for post, author in authors.items() if author not in shown}
