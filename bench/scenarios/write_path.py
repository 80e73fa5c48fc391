"""write_path: `POST /api/posts` at concurrency 1, 8 and 32, each level against the same transaction
issued directly with psycopg at the same concurrency (bench.baselines.CreatePostSql).

Concurrency 8 carries the targets (issue 13): its app and baseline phases alternate in ROUNDS short rounds
(app, direct, app, direct, …) and the ratios are the median over rounds, with their range. Levels 1 and
32 are reported from one round each.

Every writer is its own onboarded user (POST /api/users), so writers never queue on one author's rows.
The host's relay and change feed keep running during both phases (its events and the baseline's are the
same `post.created` events), and the pipeline is drained before each phase.
"""

from __future__ import annotations

from bench.baselines import CreatePostSql
from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.loadgen import LoadResult, closed_loop
from bench.profiling import PySpy
from bench.result import ScenarioResult
from bench.rounds import ROUNDS, Spread, percent, ratios, times

NAME = "write_path"
LEVELS = (1, 8, 32)
TARGET_LEVEL = 8
TARGET_RATIO = 0.6
TARGET_P99_TIMES = 2.0
CONTENT = "A benchmark post of a typical length: a sentence or two about the day, with a link maybe. " * 2


async def run(ctx: BenchContext) -> ScenarioResult:
    seconds, warmup = (1.0, 0.2) if ctx.quick else (4.0, 0.5)
    result = ScenarioResult(NAME, "POST /api/posts vs the same SQL transaction over direct psycopg")
    result.parameters = {
        "levels": list(LEVELS),
        "rounds_at_target_level": ROUNDS,
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

    async def post(worker: int) -> str:
        status, _ = await ctx.http.call("POST", "/api/posts", tokens[worker], {"content": CONTENT})
        return ctx.http.outcome_of(status, (201,))

    try:
        for level in LEVELS:
            rounds = ROUNDS if level == TARGET_LEVEL else 1
            apis: list[LoadResult] = []
            directs: list[LoadResult] = []
            api_histogram, direct_histogram = LatencyHistogram(), LatencyHistogram()
            for index in range(rounds):
                await ctx.wait_idle()
                spy = _spy(ctx, level, index)
                t0 = ctx.sampler.now()
                api = await closed_loop(post, level, seconds, warmup_seconds=warmup)
                t1 = ctx.sampler.now()
                profile = spy.stop() if spy else None
                await ctx.wait_idle()
                t2 = ctx.sampler.now()
                direct = await baseline.run(level, seconds, warmup, CONTENT)
                t3 = ctx.sampler.now()
                apis.append(api)
                directs.append(direct)
                api_histogram.merge(api.histogram)
                direct_histogram.merge(direct.histogram)
                key = f"c{level}" if rounds == 1 else f"c{level}_round{index + 1}"
                result.figures[key] = {**api.summary(), "resources": ctx.sampler.window(t0, t1)}
                if profile:
                    result.figures[key]["profile"] = profile
                result.baselines[f"psycopg_{key}"] = {
                    **direct.summary(),
                    "resources": ctx.sampler.window(t2, t3),
                }
            rate = ratios([a.rate for a in apis], [d.rate for d in directs])
            result.ratios[f"rate_vs_psycopg_c{level}"] = rate.median
            result.figures.setdefault("rounds", {})[f"rate_vs_psycopg_c{level}"] = rate.as_dict()
            result.histograms[f"POST /api/posts c={level}"] = api_histogram
            result.histograms[f"psycopg create-post c={level}"] = direct_histogram
            rates = f"{_median_rate(apis):.0f} vs {_median_rate(directs):.0f} /s"
            if level != TARGET_LEVEL:
                result.check(
                    f"rate at concurrency {level} vs direct psycopg",
                    "reported",
                    f"{rate.text(percent)}; {rates}",
                    None,
                )
                continue
            p99 = ratios(
                [a.histogram.percentile_ms(99.0) for a in apis],
                [d.histogram.percentile_ms(99.0) for d in directs],
            )
            result.ratios[f"p99_vs_psycopg_c{level}"] = p99.median
            result.figures["rounds"][f"p99_vs_psycopg_c{level}"] = p99.as_dict()
            result.check(
                f"rate at concurrency {level} vs direct psycopg (median of rounds)",
                f"≥ {percent(TARGET_RATIO)}",
                f"{rate.text(percent)}; {rates}",
                rate.median >= TARGET_RATIO,
            )
            result.check(
                f"p99 at concurrency {level} vs direct psycopg p99 (median of rounds)",
                f"≤ {times(TARGET_P99_TIMES)}",
                f"{p99.text(times)}; {_p99s(apis)} vs {_p99s(directs)} ms",
                p99.median <= TARGET_P99_TIMES,
            )
    finally:
        await baseline.close()
    return result


def _median_rate(loads: list[LoadResult]) -> float:
    return Spread.of([load.rate for load in loads]).median


def _p99s(loads: list[LoadResult]) -> str:
    return "/".join(f"{load.histogram.percentile_ms(99.0):.0f}" for load in loads)


def _spy(ctx: BenchContext, level: int, index: int) -> PySpy | None:
    if not ctx.profile or level != TARGET_LEVEL or index != 0:
        return None
    spy = PySpy(ctx.host.pid, ctx.out_dir / "profiles" / f"{NAME}-c{level}.txt")
    spy.start()
    return spy
