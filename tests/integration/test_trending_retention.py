"""Trending buckets older than the retention are deleted by the retention timer's step, in bounded
batches; the hours the trending window reads are kept (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from shared_code.app_context import AppContext
from shared_code.domain.discovery import TRENDING_RETENTION_HOURS, hour_bucket
from shared_code.services.discovery import prune_trending_buckets

NOW = datetime.now(UTC)


async def test_old_trending_buckets_are_pruned_in_bounded_batches_and_recent_ones_kept(
    app_context: AppContext, database_url: str
) -> None:
    this_hour = hour_bucket(NOW)
    old = [this_hour - timedelta(hours=TRENDING_RETENTION_HOURS + h) for h in (1, 2, 30, 400, 9000)]
    kept = [this_hour, this_hour - timedelta(hours=23), this_hour - timedelta(hours=TRENDING_RETENTION_HOURS)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for hour in old + kept:
            conn.execute("INSERT INTO hashtag_hourly_uses (hour, tag, uses) VALUES (%s, 'rust', 3)", (hour,))

    # Bounded per run: two batches of two rows at most.
    assert await prune_trending_buckets(app_context.system_pool, NOW, batch=2, batches=2) == 4
    assert await prune_trending_buckets(app_context.system_pool, NOW, batch=2, batches=2) == 1
    assert await prune_trending_buckets(app_context.system_pool, NOW, batch=2, batches=2) == 0
    with psycopg.connect(database_url) as conn:
        hours = {row[0] for row in conn.execute("SELECT hour FROM hashtag_hourly_uses")}
    assert hours == set(kept)
