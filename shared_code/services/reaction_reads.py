"""Who reacted to a post (optionally with one reaction type), newest first, from the `reactions`
projection: one single-partition query per page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import Invalid
from shared_code.domain.limits import REACTION_TYPES
from shared_code.projections.writes import REACTIONS
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Reaction
from shared_code.services.guards import blocked_either_way_ids, visible_post
from shared_code.services.projection_queries import continuation_of, next_cursor, page


async def list_reactions(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    post_id: UUID,
    reaction_type: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Reaction]:
    async def may_see(uow: UnitOfWork) -> list[UUID]:
        me = uow.require_user()
        await visible_post(uow, post_id)
        # Reactions by anyone the caller blocked or is blocked by are left out (moderators see all).
        return [] if uow.actor.is_moderator else await blocked_either_way_ids(uow, me)

    hidden = [str(user_id) for user_id in await run(may_see)]
    if reaction_type is not None and reaction_type not in REACTION_TYPES:
        raise Invalid(f"type must be one of {', '.join(REACTION_TYPES)}", field="type")
    key = str(post_id)
    scope = f"reactions:{key}:{reaction_type or '*'}"
    parameters: list[dict[str, Any]] = [{"name": "@post", "value": key}, {"name": "@hidden", "value": hidden}]
    if reaction_type:
        query = (
            "SELECT c.userId, c.type, c.createdAt FROM c WHERE c.postId = @post AND c.type = @type "
            "AND c.deleted = false AND NOT ARRAY_CONTAINS(@hidden, c.userId) "
            "ORDER BY c.postId, c.type, c.createdAt DESC"
        )
        parameters.append({"name": "@type", "value": reaction_type})
    else:
        query = (
            "SELECT c.userId, c.type, c.createdAt FROM c WHERE c.postId = @post AND c.deleted = false "
            "AND NOT ARRAY_CONTAINS(@hidden, c.userId) ORDER BY c.postId, c.createdAt DESC"
        )
    continuation = continuation_of(cursors, scope, cursor)
    async with budget.guard():
        items, continuation = await page(
            db.get_container_client(REACTIONS), query, parameters, key, limit, continuation
        )
    return Page[Reaction](
        items=[Reaction(user_id=r["userId"], type=r["type"], created_at=r["createdAt"]) for r in items],
        next_cursor=next_cursor(cursors, scope, continuation),
    )
