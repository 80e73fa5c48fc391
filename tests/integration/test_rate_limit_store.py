"""The rate-limit store in PostgreSQL: the one upsert applies the GCRA step of the pure model
(shared_code/domain/rate_limits.py), concurrent requests cannot overspend a bucket, and full
buckets are pruned."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from shared_code.app_context import AppContext
from shared_code.domain.errors import RateLimited
from shared_code.domain.rate_limits import Rate
from shared_code.services.rate_limits import Bucket, RateLimiter, key_hash, prune_full_buckets


async def test_the_upsert_allows_the_limit_then_refuses_with_the_models_retry_after(
    app_context: AppContext,
) -> None:
    limiter = RateLimiter(app_context.pg_pool, 5.0)
    bucket = Bucket("test", Rate(3, 60.0))  # one unit every 20 s
    for _ in range(3):
        await limiter.charge(bucket, "user:a")
    with pytest.raises(RateLimited) as refused:
        await limiter.charge(bucket, "user:a")
    assert refused.value.retry_after_seconds == 20  # 20 s minus the few ms this test took, rounded up
    await limiter.charge(bucket, "user:b")  # another key, another bucket
    with pytest.raises(RateLimited):
        await limiter.charge(Bucket("test", Rate(3, 60.0)), "user:b", cost=3)  # 1 + 3 > 3


async def test_concurrent_requests_cannot_overspend_a_bucket(app_context: AppContext) -> None:
    limiter = RateLimiter(app_context.pg_pool, 10.0)
    bucket = Bucket("race", Rate(5, 3600.0))

    async def attempt() -> bool:
        try:
            await limiter.charge(bucket, "user:racer")
        except RateLimited:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(20)))
    assert outcomes.count(True) == 5


async def test_full_buckets_are_pruned_and_live_ones_kept(app_context: AppContext, database_url: str) -> None:
    limiter = RateLimiter(app_context.pg_pool, 5.0)
    await limiter.charge(Bucket("live", Rate(10, 3600.0)), "user:kept")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO rate_limit_buckets (bucket, key_hash, tat, allowed) "
            "VALUES ('old', %s, now() - interval '1 minute', true)",
            (key_hash("user:gone"),),
        )
    assert await prune_full_buckets(app_context.pg_pool) == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT bucket FROM rate_limit_buckets").fetchall()
    assert rows == [("live",)]
