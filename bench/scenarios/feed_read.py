"""feed_read: `GET /api/feed?limit=50` at concurrency 8, readers chosen at random among users whose feeds
hold more than 50 posts (filled through the real fan-out), against the same reads done directly: the same
PostgreSQL transaction over psycopg and the same Cosmos query and `read_items` over the SDK.

Every reader reads once before the measurement: a post's counters document is a cache that the first
read of the post fills from PostgreSQL (docs/read-costs.md); the measurement is the steady state.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg

from bench.baselines import _ACT
from bench.context import BenchContext
from bench.loadgen import closed_loop
from bench.profiling import PySpy
from bench.result import ScenarioResult, ms

NAME = "feed_read"
CONCURRENCY = 8
LIMIT = 50
TARGET_P99_MS = 25.0
AUTHOR_SUBJECT = "bench-author-feed"
_HIDDEN = """SELECT muted_id::text FROM mutes WHERE muter_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT blocked_id::text FROM blocks WHERE blocker_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT blocker_id::text FROM blocks WHERE blocked_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT id::text FROM posts
                       WHERE id = ANY(%(posts)s) AND (deleted_at IS NOT NULL OR status <> 'visible')"""


async def run(ctx: BenchContext) -> ScenarioResult:
    readers_total, posts_total, seconds = (20, 55, 2.0) if ctx.quick else (100, 60, 10.0)
    result = ScenarioResult(NAME, f"GET /api/feed?limit={LIMIT} at concurrency {CONCURRENCY}")
    result.parameters = {
        "readers": readers_total,
        "posts_per_feed_at_least": posts_total,
        "limit": LIMIT,
        "concurrency": CONCURRENCY,
        "seconds": seconds,
    }
    readers = (await ctx.ensure_population(readers_total))[:readers_total]
    author = await ctx.ensure_user(AUTHOR_SUBJECT, "bench_author_feed")
    await ctx.ensure_followers(author, readers)
    author_token = ctx.token(AUTHOR_SUBJECT)
    for n in range(posts_total):
        await ctx.http.expect(
            "POST", "/api/posts", author_token, {"content": f"feed filler {n}: " + "x" * 120}
        )
    await ctx.wait_idle(timeout=300)
    tokens = [ctx.token(f"bench-pop-{i}") for i in range(readers_total)]
    sizes = []
    for token in tokens:  # the warm-up read, and a check that every feed is full
        page = await ctx.http.expect("GET", f"/api/feed?limit={LIMIT}", token)
        sizes.append(len(page["items"]))
    result.figures["feed_page_sizes_min_max"] = [min(sizes), max(sizes)]
    await ctx.wait_idle()

    rng = random.Random(7)

    async def read(worker: int) -> str:
        status, _ = await ctx.http.call("GET", f"/api/feed?limit={LIMIT}", rng.choice(tokens))
        return ctx.http.outcome_of(status, (200,))

    spy = None
    if ctx.profile:
        spy = PySpy(ctx.host.pid, ctx.out_dir / "profiles" / f"{NAME}.txt")
        spy.start()
    t0 = ctx.sampler.now()
    api = await closed_loop(read, CONCURRENCY, seconds, warmup_seconds=min(1.0, seconds / 4))
    t1 = ctx.sampler.now()
    if spy:
        result.figures["profile"] = spy.stop()
    result.figures["api"] = {**api.summary(), "resources": ctx.sampler.window(t0, t1)}
    result.histograms[f"GET /api/feed c={CONCURRENCY}"] = api.histogram

    direct = await _direct_baseline(ctx, readers, seconds)
    result.baselines["direct_psycopg_and_cosmos"] = {
        **direct.summary(),
        "resources": ctx.sampler.window(t1, ctx.sampler.now()),
    }
    result.histograms[f"direct PG + Cosmos feed read c={CONCURRENCY}"] = direct.histogram
    ratio = api.rate / direct.rate if direct.rate else 0.0
    result.ratios["rate_vs_direct"] = ratio
    p99 = api.histogram.percentile_ms(99.0)
    result.check(f"p99 at concurrency {CONCURRENCY}", f"≤ {ms(TARGET_P99_MS)}", ms(p99), p99 <= TARGET_P99_MS)
    result.check(
        "rate vs the same reads done directly",
        "reported",
        f"{ratio * 100:.0f} % ({api.rate:.0f} vs {direct.rate:.0f} /s)",
        None,
    )
    return result


async def _direct_baseline(ctx: BenchContext, readers: list[str], seconds: float) -> Any:
    """The feed read's I/O without the app: BEGIN + acting user, the userFeed page query, the hidden
    authors/posts query, `read_items` of the page's counters, COMMIT."""
    connections = [
        await psycopg.AsyncConnection.connect(ctx.stack.postgres_url, autocommit=True)
        for _ in range(CONCURRENCY)
    ]
    feed = ctx.db.get_container_client("userFeed")
    counters = ctx.db.get_container_client("counters")
    rng = random.Random(11)

    async def read(worker: int) -> str:
        index = rng.randrange(len(readers))
        me = readers[index]
        conn = connections[worker]
        async with conn.transaction():
            await conn.execute(_ACT, {"subject": f"bench-pop-{index}", "role": "user"})
            pages = feed.query_items(
                "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC",
                parameters=[{"name": "@me", "value": me}],
                partition_key=me,
                max_item_count=LIMIT,
            ).by_page()
            page = await pages.__anext__()
            items = [item async for item in page]
            cur = await conn.execute(
                _HIDDEN, {"me": uuid.UUID(me), "posts": [uuid.UUID(i["postId"]) for i in items]}
            )
            await cur.fetchall()
            await counters.read_items([(f"{i['postId']}:counts", i["postId"]) for i in items])
        return "ok"

    try:
        return await closed_loop(read, CONCURRENCY, seconds, warmup_seconds=min(1.0, seconds / 4))
    finally:
        for conn in connections:
            await conn.close()
