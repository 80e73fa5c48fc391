"""The runbook operations as use cases: who may run them, and what each returns.
The admin HTTP functions and `python -m shared_code.ops` both call these."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from shared_code.app_context import AppContext
from shared_code.bootstrap import change_feed_service
from shared_code.db.unit_of_work import Actor, system_connection
from shared_code.domain.errors import Forbidden, Invalid, NotFound
from shared_code.ops import outbox, schema_drift
from shared_code.ops.feeds import rebuild_feed
from shared_code.ops.reconcile import reconcile
from shared_code.outbox.store import skip_dead
from shared_code.projections.writes import FEED
from shared_code.schemas.ops import (
    ChangeFeedFailure,
    ChangeFeedFailures,
    DriftResult,
    FeedRebuildResult,
    ReconcileResult,
    ReplayResult,
    RequeueResult,
    SkipResult,
)


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("this operation needs the admin role")


async def requeue_dead_events(
    ctx: AppContext, actor: Actor, event_ids: Sequence[int] | None
) -> RequeueResult:
    require_admin(actor)
    return RequeueResult(requeued=await outbox.requeue(ctx.pg_pool, event_ids))


async def skip_dead_events(
    ctx: AppContext, actor: Actor, event_ids: Sequence[int], reason: str
) -> SkipResult:
    """Give up on dead events with a recorded reason; they stop blocking their aggregates."""
    require_admin(actor)
    if not reason.strip():
        raise Invalid("say why these events are skipped: the reason is recorded on each", field="reason")
    return SkipResult(skipped=await skip_dead(ctx.pg_pool, event_ids, reason.strip(), actor.subject))


async def list_change_feed_failures(ctx: AppContext, actor: Actor) -> ChangeFeedFailures:
    require_admin(actor)
    failures, truncated = await change_feed_service(ctx).open_failures()
    return ChangeFeedFailures(
        failures=[ChangeFeedFailure.model_validate(f, from_attributes=True) for f in failures],
        truncated=truncated,
    )


async def replay_change_feed_failure(ctx: AppContext, actor: Actor, failure_id: int) -> ReplayResult:
    """Replay one recorded failed batch, once (a second replay is refused with 409)."""
    require_admin(actor)
    documents = await change_feed_service(ctx).replay_failure(failure_id, actor.subject)
    return ReplayResult(id=failure_id, replayed=True, documents=documents)


async def rebuild_user_feed(ctx: AppContext, actor: Actor, user_id: UUID) -> FeedRebuildResult:
    require_admin(actor)
    async with system_connection(ctx.pg_pool) as conn:
        cur = await conn.execute("SELECT 1 FROM users WHERE id = %s AND deleted_at IS NULL", (user_id,))
        if await cur.fetchone() is None:
            raise NotFound("no such user")
    result = await rebuild_feed(
        ctx.pg_pool,
        ctx.cosmos_db.get_container_client(FEED),
        user_id,
        per_author=ctx.settings.feed_backfill_posts,
        concurrency=ctx.settings.fanout_concurrency,
    )
    return FeedRebuildResult(user_id=user_id, **result)


async def reconcile_projections(
    ctx: AppContext, actor: Actor, repair: bool, user_id: UUID | None, feed_sample: int
) -> ReconcileResult:
    require_admin(actor)
    report = await reconcile(
        ctx.pg_pool,
        ctx.cosmos_db,
        repair,
        feed_user=user_id,
        feed_sample=feed_sample,
        per_author=ctx.settings.feed_backfill_posts,
    )
    return ReconcileResult.model_validate(report.to_json())


async def schema_drift_report(ctx: AppContext, actor: Actor) -> DriftResult:
    require_admin(actor)
    url = ctx.settings.postgres_url.get_secret_value()
    # psycopg's sync catalog reads, off the event loop.
    report = await asyncio.to_thread(schema_drift.detect_drift, url)
    return DriftResult.model_validate(report.to_json())


async def delete_old_outbox_events(ctx: AppContext, budget_seconds: float) -> int:
    return await outbox.delete_published(ctx.pg_pool, ctx.settings.outbox_retention_days, budget_seconds)
