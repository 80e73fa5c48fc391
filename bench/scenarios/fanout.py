"""fanout: one post by an author with 1,000 and one by an author with 10,000 followers, through the real
path (POST /api/posts → relay → posts_v2 → the fan_out_posts change-feed function → userFeed), against
the same feed items upserted directly at the fan-out's concurrency (FANOUT_CONCURRENCY).

The fan-out's own rate is items written / the fan_out_posts invocation's duration, both read from the
host's log (the function logs the items it wrote; the host logs each invocation's duration). Commit →
fan-out finished is also reported, as the harness saw it (the log line's arrival).

Each size runs ROUNDS rounds, each a new post fanned out and then its feed items upserted directly; the
ratio is the median of the rounds' ratios, with their range (issue 13). 10,000 followers is the default
FANOUT_MAX_FOLLOWERS: at the threshold, still fanned out (only authors above it are pulled at read time).
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.baselines import cosmos_upserts
from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.profiling import PySpy
from bench.result import ScenarioResult, pct
from bench.rounds import ROUNDS, Spread, ratios
from shared_code.services.feeds import feed_item

NAME = "fanout"
TARGET_RATIO = 1.0
INVOCATION = re.compile(
    r"fan_out_posts trigger=cosmosDBTrigger posts_v2 docs=(\d+) duration=([\d.]+)ms outcome=(\w+)"
)


async def run(ctx: BenchContext) -> ScenarioResult:
    sizes = (50, 200) if ctx.quick else (1_000, 10_000)
    concurrency = int(ctx.stack.app_settings.get("FANOUT_CONCURRENCY", "64"))
    result = ScenarioResult(NAME, "one post fanned out to F followers' feeds")
    result.parameters = {
        "followers": list(sizes),
        "rounds": ROUNDS,
        "fanout_concurrency": concurrency,
        "fanout_page_size": int(ctx.stack.app_settings.get("FANOUT_PAGE_SIZE", "1000")),
        "fanout_max_followers": ctx.stack.app_settings.get("FANOUT_MAX_FOLLOWERS"),
    }
    population = await ctx.ensure_population(max(sizes))
    for size in sizes:
        subject = f"bench-author-f{size}"
        author = await ctx.ensure_user(subject, f"bench_author_f{size}")
        await ctx.ensure_followers(author, population[:size])
        recipients = [author, *population[:size]]
        app_rates: list[float] = []
        base_rates: list[float] = []
        histogram = LatencyHistogram()
        all_items_written = True
        rounds: list[dict[str, Any]] = []
        for index in range(ROUNDS):
            await ctx.wait_idle()
            ctx.host.tail.mark()
            spy = None
            if ctx.profile and size == max(sizes) and index == 0:
                spy = PySpy(ctx.host.pid, ctx.out_dir / "profiles" / f"{NAME}-{size}.txt")
                spy.start()
            t0 = ctx.sampler.now()
            post = await ctx.http.expect(
                "POST",
                "/api/posts",
                ctx.token(subject),
                {"content": f"to {size} followers, round {index + 1}"},
            )
            committed = time.monotonic()
            fanned = re.compile(rf"fan-out of post {post['id']} \(v1, visible\): (\d+) feed item")
            items_match, _ = ctx.host.tail.wait_for(fanned, 120 if ctx.quick else 300)
            invocation, done = ctx.host.tail.wait_for(INVOCATION, 30)
            t1 = ctx.sampler.now()
            profile = spy.stop() if spy else None
            items = int(items_match[1])
            all_items_written = all_items_written and items == size + 1
            duration_s = float(invocation[2]) / 1000.0
            rate = items / duration_s if duration_s else 0.0
            posts_doc = await ctx.db.get_container_client("posts_v2").read_item(
                str(post["id"]), str(post["id"])
            )
            groups = [[("userFeed", feed_item(r, posts_doc))] for r in recipients]
            baseline = await cosmos_upserts(ctx.baseline_db(), groups, concurrency)
            histogram.merge(baseline.pop("_histogram"))
            app_rates.append(rate)
            base_rates.append(float(baseline["documents_per_s"]))
            rounds.append(
                {
                    "items_written": items,
                    "posts_in_invocation": int(invocation[1]),
                    "invocation_outcome": invocation[3],
                    "fanout_seconds": round(duration_s, 3),
                    "items_per_s": round(rate, 1),
                    "commit_to_fanout_done_s": round(done - committed, 3),
                    "resources": ctx.sampler.window(t0, t1),
                    "direct": baseline,
                    **({"profile": profile} if profile else {}),
                }
            )
        ratio = ratios(app_rates, base_rates)
        done_s = Spread.of([r["commit_to_fanout_done_s"] for r in rounds])
        result.figures[f"f{size}"] = {
            "rounds": rounds,
            "items_in_userFeed_last_post": await _count_feed_items(ctx, str(post["id"])),
            "items_per_s_median": round(Spread.of(app_rates).median, 1),
            "ratio": ratio.as_dict(),
            "commit_to_fanout_done_s": done_s.as_dict(),
        }
        result.baselines[f"cosmos_direct_f{size}"] = {"documents_per_s": Spread.of(base_rates).as_dict()}
        result.ratios[f"items_per_s_vs_direct_f{size}"] = ratio.median
        result.histograms[f"direct feed-item upserts F={size}"] = histogram
        result.check(
            f"F={size:,}: feed items/s vs direct Cosmos upserts (median of rounds)",
            f"≥ {pct(TARGET_RATIO)}",
            f"{ratio.text(pct)}; {Spread.of(app_rates).median:.0f} vs {Spread.of(base_rates).median:.0f} items/s",
            ratio.median >= TARGET_RATIO and all_items_written,
        )
        result.check(
            f"F={size:,}: commit → last feed item written",
            "reported",
            done_s.text(lambda v: f"{v:.2f} s"),
            None,
        )
    return result


async def _count_feed_items(ctx: BenchContext, post_id: str) -> int | None:
    """How many feed items hold the post (a cross-partition count: fine once, never on a hot path)."""
    try:
        query = ctx.db.get_container_client("userFeed").query_items(
            "SELECT VALUE COUNT(1) FROM c WHERE c.postId = @p", parameters=[{"name": "@p", "value": post_id}]
        )
        counts: list[Any] = [n async for n in query]
        return int(sum(int(n) for n in counts))
    except Exception:  # the emulator's cross-partition aggregate support is partial: report, don't fail
        return None
