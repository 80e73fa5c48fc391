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
from shared_code.services.rate_limits import Bucket, FanOut, RateLimiter, key_hash, prune_full_buckets


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


@pytest.mark.parametrize(("followers", "weight"), [(0, 1), (999, 1), (1000, 2), (10_000, 4), (2_000_000, 16)])
async def test_a_fan_out_is_weighed_in_the_charge_itself_by_the_accounts_followers(
    app_context: AppContext, database_url: str, followers: int, weight: int
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            """INSERT INTO users (auth_subject, auth_provider, username)
               VALUES ('subject-big', 'email', 'big_account') RETURNING id"""
        )
        row = cur.fetchone()
        assert row is not None
        user_id = row[0]
        conn.execute("INSERT INTO user_counts (user_id, followers) VALUES (%s, %s)", (user_id, followers))
    limiter = RateLimiter(app_context.pg_pool, 5.0)
    limit = 32

    async def charges_allowed(fanout: FanOut, key: str) -> int:
        """How many charges of this fan-out fit in a full bucket of `limit` units."""
        for allowed in range(limit + 1):
            try:
                await limiter.charge(Bucket("fanout", Rate(limit, 3600.0)), key, fanout=fanout)
            except RateLimited:
                return allowed
        return limit + 1

    # The same weight whether the account is named by id (a follow) or is the caller (a post).
    assert await charges_allowed(FanOut(user_id=user_id), "user:by-id") == limit // weight
    assert await charges_allowed(FanOut(subject="subject-big"), "user:by-subject") == limit // weight
    # An unknown account has no followers: weight 1.
    assert await charges_allowed(FanOut(subject="nobody"), "user:nobody") == limit
