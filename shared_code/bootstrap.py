"""The composition root: holds this process's app context (its long-lived clients), builds the relay,
the runbook and the services that need more than a unit of work (the feed service, the change-feed
service, the health checks) from its clients and settings, and hands the backlog gauges their reader.

The one place that may import every layer (docs/architecture.md "Layers"): the outbox gets its
handlers, feed maintenance included, from here instead of importing the services itself, and no
service or operation is handed the whole app context."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared_code import metrics
from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.adapters.postgres import connection_kwargs
from shared_code.app_context import AppContext
from shared_code.ops.runbook import Runbook
from shared_code.outbox.handlers import (
    AdminMirrorHandler,
    ErasureHandler,
    EventHubsPublisher,
    ExportHandler,
    FeedMaintenanceHandler,
    FollowRequestHandler,
    ProjectionHandler,
)
from shared_code.outbox.policy import RelayPolicy
from shared_code.outbox.relay import EventHandler, OutboxRelay
from shared_code.outbox.store import OutboxStore
from shared_code.projections.writes import COUNTERS, FEED, POSTS
from shared_code.services.change_feed import ChangeFeedService
from shared_code.services.erasure import ErasureService
from shared_code.services.export import ExportService
from shared_code.services.feeds import FeedService
from shared_code.services.health import HealthProbes, read_backlog
from shared_code.services.notification_settings import NotificationGate
from shared_code.services.social import PendingApprovals
from shared_code.settings import get_settings

_context: AppContext | None = None
_context_lock: asyncio.Lock | None = None


async def get_app_context() -> AppContext:
    """This process's context, created on first use (the worker has one event loop)."""
    global _context, _context_lock
    if _context is None:
        _context_lock = _context_lock or asyncio.Lock()
        async with _context_lock:
            if _context is None:
                _context = await AppContext.create(get_settings())
                watch_backlog(_context)  # the backlog gauges read through this process's pool
    return _context


def use_app_context(context: AppContext | None) -> None:
    """Install a context built elsewhere (tests, tools), or clear it with None."""
    global _context
    _context = context


def feed_service(ctx: AppContext) -> FeedService:
    s = ctx.settings
    return FeedService(
        ctx.system_pool,
        ctx.cosmos_db.get_container_client(FEED),
        page_size=s.fanout_page_size,
        concurrency=s.fanout_concurrency,
        backfill_posts=s.feed_backfill_posts,
        posts=ctx.cosmos_db.get_container_client(POSTS),
        max_followers=s.fanout_max_followers,
        item_ttl=timedelta(days=s.feed_item_ttl_days),
        max_items=s.feed_max_items,
        fanout_states=ctx.cosmos_db.get_container_client(COUNTERS),
    )


def change_feed_service(ctx: AppContext) -> ChangeFeedService:
    """The change-feed functions' work (cheap to build: no I/O until it is used)."""
    return ChangeFeedService(
        ctx.system_pool, feed_service(ctx), CosmosWriter(ctx.cosmos_db), NotificationGate(ctx.system_pool)
    )


def health_probes(ctx: AppContext) -> HealthProbes:
    return HealthProbes(
        pg_pool=ctx.system_pool,
        cosmos_db=ctx.cosmos_db,
        eventhubs=ctx.eventhubs,
        media_container=ctx.blob_service.get_container_client(ctx.settings.media_container),
        outbox_lag_threshold_seconds=ctx.settings.health_outbox_lag_seconds,
    )


def runbook(ctx: AppContext) -> Runbook:
    s = ctx.settings
    return Runbook(
        pool=ctx.system_pool,
        cosmos_db=ctx.cosmos_db,
        change_feed=change_feed_service(ctx),
        postgres_url=s.postgres_url,
        feed_backfill_posts=s.feed_backfill_posts,
        fanout_concurrency=s.fanout_concurrency,
        outbox_retention_days=s.outbox_retention_days,
        feed_item_ttl_days=s.feed_item_ttl_days,
    )


def watch_backlog(ctx: AppContext) -> metrics.BacklogCache:
    """The backlog gauges read through this process's pool (call on the worker's event loop)."""
    pool = ctx.system_pool
    return metrics.watch_backlog(lambda: read_backlog(pool))


def outbox_relay(ctx: AppContext) -> OutboxRelay:
    s = ctx.settings
    policy = RelayPolicy(
        batch_size=s.outbox_batch_size,
        claim_lease_seconds=s.outbox_claim_lease_seconds,
        max_attempts=s.outbox_max_attempts,
        backoff_base_seconds=s.outbox_backoff_base_seconds,
        projection_deadline_seconds=s.outbox_projection_deadline_seconds,
        sink_watch_seconds=s.outbox_sink_watch_seconds,
    )
    handlers: list[EventHandler] = [
        ProjectionHandler(
            CosmosWriter(ctx.cosmos_db), s.outbox_concurrency, NotificationGate(ctx.system_pool)
        ),
        FeedMaintenanceHandler(feed_service(ctx), s.outbox_concurrency),
        AdminMirrorHandler(ctx.system_pool),
        FollowRequestHandler(PendingApprovals(ctx.system_pool), s.outbox_concurrency),
        ErasureHandler(
            ErasureService(ctx.system_pool, ctx.cosmos_db, s.erasure_batch_size, ctx.blob_service),
            s.outbox_concurrency,
        ),
        ExportHandler(ExportService(ctx.system_pool, ctx.cosmos_db, ctx.blob_service), s.outbox_concurrency),
        EventHubsPublisher(ctx.eventhubs, s.outbox_concurrency),
    ]
    store = OutboxStore(
        ctx.system_pool, listen_url=s.postgres_url.get_secret_value(), listen_kwargs=connection_kwargs(s)
    )
    return OutboxRelay(store, handlers, policy)
