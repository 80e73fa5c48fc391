"""The runbook operations as use cases: who may run them, and what each returns.
The admin HTTP functions and `python -m shared_code.ops` both call these, on a `Runbook` the
composition root (shared_code/bootstrap.py `runbook`) builds from the clients and settings it uses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

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
from shared_code.services.change_feed import ChangeFeedService


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("this operation needs the admin role")


@dataclass(frozen=True)
class Runbook:
    pool: AsyncConnectionPool
    cosmos_db: DatabaseProxy
    change_feed: ChangeFeedService
    postgres_url: SecretStr  # the drift check's own connection; a secret, so never in a repr
    feed_backfill_posts: int
    fanout_concurrency: int
    outbox_retention_days: float
    feed_item_ttl_days: float = 30.0

    async def requeue_dead_events(self, actor: Actor, event_ids: Sequence[int] | None) -> RequeueResult:
        require_admin(actor)
        return RequeueResult(requeued=await outbox.requeue(self.pool, event_ids))

    async def skip_dead_events(self, actor: Actor, event_ids: Sequence[int], reason: str) -> SkipResult:
        """Give up on dead events with a recorded reason; they stop blocking their aggregates."""
        require_admin(actor)
        if not reason.strip():
            raise Invalid("say why these events are skipped: the reason is recorded on each", field="reason")
        return SkipResult(skipped=await skip_dead(self.pool, event_ids, reason.strip(), actor.subject))

    async def list_change_feed_failures(self, actor: Actor) -> ChangeFeedFailures:
        require_admin(actor)
        failures, truncated = await self.change_feed.open_failures()
        return ChangeFeedFailures(
            failures=[ChangeFeedFailure.model_validate(f, from_attributes=True) for f in failures],
            truncated=truncated,
        )

    async def replay_change_feed_failure(self, actor: Actor, failure_id: int) -> ReplayResult:
        """Replay one recorded failed batch, once (a second replay is refused with 409)."""
        require_admin(actor)
        documents = await self.change_feed.replay_failure(failure_id, actor.subject)
        return ReplayResult(id=failure_id, replayed=True, documents=documents)

    async def rebuild_user_feed(self, actor: Actor, user_id: UUID) -> FeedRebuildResult:
        require_admin(actor)
        async with system_connection(self.pool) as conn:
            cur = await conn.execute("SELECT 1 FROM users WHERE id = %s AND deleted_at IS NULL", (user_id,))
            if await cur.fetchone() is None:
                raise NotFound("no such user")
        result = await rebuild_feed(
            self.pool,
            self.cosmos_db.get_container_client(FEED),
            user_id,
            per_author=self.feed_backfill_posts,
            concurrency=self.fanout_concurrency,
            item_ttl=timedelta(days=self.feed_item_ttl_days),
        )
        return FeedRebuildResult(user_id=user_id, **result)

    async def reconcile_projections(
        self, actor: Actor, repair: bool, user_id: UUID | None, feed_sample: int
    ) -> ReconcileResult:
        require_admin(actor)
        report = await reconcile(
            self.pool,
            self.cosmos_db,
            repair,
            feed_user=user_id,
            feed_sample=feed_sample,
            per_author=self.feed_backfill_posts,
            retention=timedelta(days=self.feed_item_ttl_days),
        )
        return ReconcileResult.model_validate(report.to_json())

    async def schema_drift_report(self, actor: Actor) -> DriftResult:
        require_admin(actor)
        # psycopg's sync catalog reads, off the event loop.
        report = await asyncio.to_thread(schema_drift.detect_drift, self.postgres_url.get_secret_value())
        return DriftResult.model_validate(report.to_json())

    async def delete_old_outbox_events(self, budget_seconds: float) -> int:
        return await outbox.delete_published(self.pool, self.outbox_retention_days, budget_seconds)
