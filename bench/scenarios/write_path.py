"""write_path: `POST /api/posts` at concurrency 1, 8 and 32, each level against the same transaction
issued directly with psycopg at the same concurrency (bench.baselines.CreatePostSql).

Every writer is its own onboarded user (POST /api/users), so writers never queue on one author's rows.
The host's relay and change feed keep running during both phases (its events and the baseline's are the
same `post.created` events), and the pipeline is drained before each phase.
"""

from __future__ import annotations

from bench.baselines import CreatePostSql
from bench.context import BenchContext
from bench.loadgen import closed_loop
from bench.profiling import PySpy
from bench.result import ScenarioResult, ms, pct

NAME = "write_path"
LEVELS = (1, 8, 32)
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
CONTENT = "A benchmark post of a typical length: a sentence or two about the day, with a link maybe. " * 2


async def run(ctx: BenchContext) -> ScenarioResult:
    seconds, warmup = (1.5, 0.3) if ctx.quick else (6.0, 1.0)
    result = ScenarioResult(NAME, "POST /api/posts vs the same SQL transaction over direct psycopg")
    result.parameters = {
        "levels": list(LEVELS),
        "seconds_per_phase": seconds,
        "warmup_seconds": warmup,
        "content_chars": len(CONTENT),
        "host_pg_pool_max": ctx.stack.app_settings.get("POSTGRES_POOL_MAX"),
    }
    subjects = [f"bench-writer-{i}" for i in range(max(LEVELS))]
    for i, subject in enumerate(subjects):
        await ctx.onboard(subject, f"bench_writer_{i}")
    tokens = [ctx.token(s) for s in subjects]
    baseline = CreatePostSql(ctx.stack.postgres_url, subjects)
    await baseline.open()
    try:
        for level in LEVELS:
            await ctx.wait_idle()

            async def post(worker: int) -> str:
                status, _ = await ctx.http.call("POST", "/api/posts", tokens[worker], {"content": CONTENT})
                return ctx.http.outcome_of(status, (201,))

            spy = _spy(ctx, level)
            t0 = ctx.sampler.now()
            api = await closed_loop(post, level, seconds, warmup_seconds=warmup)
            t1 = ctx.sampler.now()
            profile = spy.stop() if spy else None
            await ctx.wait_idle()
            t2 = ctx.sampler.now()
            direct = await baseline.run(level, seconds, warmup, CONTENT)
            t3 = ctx.sampler.now()
            ratio = api.rate / direct.rate if direct.rate else 0.0
            result.figures[f"c{level}"] = {**api.summary(), "resources": ctx.sampler.window(t0, t1)}
            if profile:
                result.figures[f"c{level}"]["profile"] = profile
            result.baselines[f"psycopg_c{level}"] = {
                **direct.summary(),
                "resources": ctx.sampler.window(t2, t3),
            }
            result.ratios[f"rate_vs_psycopg_c{level}"] = ratio
            result.histograms[f"POST /api/posts c={level}"] = api.histogram
            result.histograms[f"psycopg create-post c={level}"] = direct.histogram
            if level == 8:
                result.check(
                    "rate at concurrency 8 vs direct psycopg",
                    f"≥ {pct(TARGET_RATIO)}",
                    f"{pct(ratio)} ({api.rate:.0f} vs {direct.rate:.0f} /s)",
                    ratio >= TARGET_RATIO,
                )
                p99 = api.histogram.percentile_ms(99.0)
                result.check("p99 at concurrency 8", f"≤ {ms(TARGET_P99_MS)}", ms(p99), p99 <= TARGET_P99_MS)
            else:
                result.check(
                    f"rate at concurrency {level} vs direct psycopg",
                    "reported",
                    f"{pct(ratio)} ({api.rate:.0f} vs {direct.rate:.0f} /s)",
                    None,
                )
    finally:
        await baseline.close()
    return result


def _spy(ctx: BenchContext, level: int) -> PySpy | None:
    if not ctx.profile or level != 8:
        return None
    spy = PySpy(ctx.host.pid, ctx.out_dir / "profiles" / f"{NAME}-c{level}.txt")
    spy.start()
    return spy
