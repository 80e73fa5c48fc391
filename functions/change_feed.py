"""Cosmos DB change-feed functions. Each has its own lease prefix and a retry policy; after
the last retry a batch is recorded for replay instead of being lost (the host would move on)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func

from shared_code.bootstrap import change_feed_service, get_app_context
from shared_code.metrics import record_change_feed_lag
from shared_code.observability import bounded_correlation_id, span_from
from shared_code.services.change_feed import ChangeFeedService

bp = func.Blueprint()

# How long a change waits, at most, before the function looks again (ms). Freshness: a post
# should reach followers' feeds within a second.
FEED_POLL_DELAY_MS = 200


async def _handle(
    function: str,
    container: str,
    documents: func.DocumentList,
    context: func.Context,
    handler: Callable[[ChangeFeedService, list[dict[str, Any]]], Awaitable[int]],
) -> None:
    service = change_feed_service(await get_app_context())
    items = [json.loads(document.to_json()) for document in documents]
    record_change_feed_lag(function, items)
    correlation_ids = sorted(filter(None, {bounded_correlation_id(i.get("correlationId")) for i in items}))
    try:
        with span_from(
            f"change feed {function}",
            None,
            {
                "chorus.container": container,
                "chorus.documents": len(items),
                "chorus.correlation_ids": ",".join(correlation_ids),
            },
        ):
            await handler(service, items)
    except Exception as exc:
        retry = context.retry_context
        if retry is not None and retry.retry_count < retry.max_retry_count:
            raise  # the host retries the batch
        await service.record_failure(function, container, items, exc)


@bp.cosmos_db_trigger(
    arg_name="documents",
    connection="CosmosDB",
    database_name="%COSMOS_DATABASE%",
    container_name="posts_v2",
    lease_container_name="leases",
    lease_container_prefix="fan-out-posts-",
    create_lease_container_if_not_exists=False,
    start_from_beginning=True,  # type: ignore[arg-type]  # the SDK's hint says time; the host reads a bool
    feed_poll_delay=FEED_POLL_DELAY_MS,
    max_items_per_invocation=100,
)
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="4",
    minimum_interval="00:00:01",
    maximum_interval="00:00:15",
)
async def fan_out_posts(documents: func.DocumentList, context: func.Context) -> None:
    await _handle("fan_out_posts", "posts_v2", documents, context, ChangeFeedService.fan_out_posts)


@bp.cosmos_db_trigger(
    arg_name="documents",
    connection="CosmosDB",
    database_name="%COSMOS_DATABASE%",
    container_name="reactions",
    lease_container_name="leases",
    lease_container_prefix="reaction-counters-",
    create_lease_container_if_not_exists=False,
    start_from_beginning=True,  # type: ignore[arg-type]  # the SDK's hint says time; the host reads a bool
    feed_poll_delay=FEED_POLL_DELAY_MS,
    max_items_per_invocation=100,
)
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="4",
    minimum_interval="00:00:01",
    maximum_interval="00:00:15",
)
async def count_reactions(documents: func.DocumentList, context: func.Context) -> None:
    await _handle("count_reactions", "reactions", documents, context, ChangeFeedService.apply_reactions)
