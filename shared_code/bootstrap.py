"""The composition root: builds the relay and the feed service from the app's clients and settings.

The one place that may import every layer (docs/architecture.md "Layers"): the outbox gets its
handlers, feed maintenance included, from here instead of importing the services itself."""

from __future__ import annotations

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.app_context import AppContext
from shared_code.outbox.handlers import (
    AdminMirrorHandler,
    EventHubsPublisher,
    FeedMaintenanceHandler,
    ProjectionHandler,
)
from shared_code.outbox.relay import EventHandler, OutboxRelay, RelayPolicy
from shared_code.projections.writes import FEED, POSTS
from shared_code.services.feeds import FeedService


def feed_service(ctx: AppContext) -> FeedService:
    s = ctx.settings
    return FeedService(
        ctx.pg_pool,
        ctx.cosmos_db.get_container_client(FEED),
        page_size=s.fanout_page_size,
        concurrency=s.fanout_concurrency,
        backfill_posts=s.feed_backfill_posts,
        posts=ctx.cosmos_db.get_container_client(POSTS),
    )


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
        ProjectionHandler(CosmosWriter(ctx.cosmos_db), s.outbox_concurrency),
        FeedMaintenanceHandler(feed_service(ctx), s.outbox_concurrency),
        AdminMirrorHandler(ctx.pg_pool),
        EventHubsPublisher(ctx.eventhubs, s.outbox_concurrency),
    ]
    return OutboxRelay(ctx.pg_pool, handlers, policy, listen_url=s.postgres_url.get_secret_value())
