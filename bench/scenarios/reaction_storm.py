"""reaction_storm: 500 users react to one post at once — some change their reaction, some remove it,
some remove and react again — all through the API. At the end the counts must be exact everywhere: in
PostgreSQL (`GET /api/posts/{id}`), and in the Cosmos counters document the reactions change feed keeps
(what feeds show). Reactions per second are reported, and how long the counters took to converge.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.result import ScenarioResult
from shared_code.domain.limits import REACTION_TYPES

NAME = "reaction_storm"
# A storm may exhaust the pool for a moment: the app answers 503 with Retry-After and writes nothing.
RETRIES_ON_503 = 5
RETRY_PAUSE_S = 1.0
AUTHOR_SUBJECT = "bench-author-storm"


def plans(users: int, seed: int = 42) -> list[list[str | None]]:
    """Each user's sequence of actions: a reaction type to set, or None to remove."""
    rng = random.Random(seed)
    types = list(REACTION_TYPES)
    result: list[list[str | None]] = []
    for _ in range(users):
        first = rng.choice(types)
        roll = rng.random()
        if roll < 0.5:
            steps: list[str | None] = [first]
        elif roll < 0.7:
            steps = [first, rng.choice([t for t in types if t != first])]  # a change
        elif roll < 0.85:
            steps = [first, None]  # a removal
        else:
            steps = [first, None, rng.choice(types)]  # removed, then reacted again
        result.append(steps)
    return result


async def run(ctx: BenchContext) -> ScenarioResult:
    users_total = 50 if ctx.quick else 500
    result = ScenarioResult(NAME, f"{users_total} users react to one post at once, with changes and removals")
    await ctx.ensure_population(users_total)
    await ctx.ensure_user(AUTHOR_SUBJECT, "bench_author_storm")
    post = await ctx.http.expect(
        "POST", "/api/posts", ctx.token(AUTHOR_SUBJECT), {"content": "react to this"}
    )
    post_id = str(post["id"])
    user_plans = plans(users_total)
    tokens = [ctx.population_token(i) for i in range(users_total)]
    expected: Counter[str] = Counter(steps[-1] for steps in user_plans if steps[-1] is not None)
    expected_full = {t: expected.get(t, 0) for t in REACTION_TYPES}
    result.parameters = {
        "users": users_total,
        "requests": sum(len(p) for p in user_plans),
        "changes": sum(1 for p in user_plans if len(p) == 2 and p[1] is not None),
        "removals": sum(1 for p in user_plans if None in p),
        "expected_counts": expected_full,
    }
    await ctx.wait_idle()
    histogram = LatencyHistogram()
    outcomes: Counter[str] = Counter()
    start = asyncio.Event()

    async def user(index: int) -> None:
        await start.wait()
        for step in user_plans[index]:
            began = time.perf_counter()
            for attempt in range(RETRIES_ON_503 + 1):
                if step is None:
                    status, _ = await ctx.http.call(
                        "DELETE", f"/api/posts/{post_id}/reactions", tokens[index]
                    )
                else:
                    status, _ = await ctx.http.call(
                        "PUT", f"/api/posts/{post_id}/reactions", tokens[index], {"type": step}
                    )
                if status != 503 or attempt == RETRIES_ON_503:
                    break
                # 503 + Retry-After: nothing was written (docs/api.md); a client sends it again, as here.
                outcomes["503, sent again"] += 1
                await asyncio.sleep(RETRY_PAUSE_S)
            outcome = ctx.http.outcome_of(status, (204,))
            outcomes[outcome] += 1
            if outcome == "ok":
                histogram.record_seconds(time.perf_counter() - began)

    tasks = [asyncio.create_task(user(i)) for i in range(users_total)]
    await asyncio.sleep(0.05)
    t0 = ctx.sampler.now()
    began = time.monotonic()
    start.set()
    await asyncio.gather(*tasks)
    storm_s = time.monotonic() - began
    t1 = ctx.sampler.now()
    resent = outcomes.pop("503, sent again", 0)
    requests_total = sum(outcomes.values())

    # Convergence: the Cosmos counters document (what feeds show) equals the expected counts.
    counters = ctx.db.get_container_client("counters")
    cosmos_counts: dict[str, Any] = {}
    converged_after = None
    deadline = time.monotonic() + 120  # may include a relay pause
    while time.monotonic() < deadline:
        try:
            doc = await counters.read_item(f"{post_id}:counts", post_id)
            cosmos_counts = {t: int(doc.get("reactions", {}).get(t, 0)) for t in REACTION_TYPES}
        except Exception:
            cosmos_counts = {}
        if cosmos_counts == expected_full:
            converged_after = time.monotonic() - began - storm_s
            break
        await asyncio.sleep(0.1)
    post_now = await ctx.http.expect("GET", f"/api/posts/{post_id}", ctx.token(AUTHOR_SUBJECT))
    pg_counts = {t: int(post_now["counts"].get(t, 0)) for t in REACTION_TYPES}
    result.histograms["reaction requests (PUT/DELETE)"] = histogram
    result.figures = {
        "requests": requests_total,
        "outcomes": dict(outcomes),
        "answered_503_and_sent_again": resent,
        "storm_seconds": round(storm_s, 3),
        "reactions_per_s": round(requests_total / storm_s, 1),
        "latency": histogram.summary(),
        "postgres_counts": pg_counts,
        "cosmos_counter_counts": cosmos_counts,
        "counters_converged_after_last_response_s": round(converged_after, 3)
        if converged_after is not None
        else None,
        "resources": ctx.sampler.window(t0, t1),
    }
    exact = (
        pg_counts == expected_full and cosmos_counts == expected_full and outcomes.get("ok") == requests_total
    )
    result.check(
        "counts exact at the end (PostgreSQL and Cosmos counters)",
        "exact",
        ("exact" if exact else f"PG {pg_counts}, Cosmos {cosmos_counts}, expected {expected_full}")
        + (f" ({resent} answers of 503 + Retry-After, each sent again)" if resent else ""),
        exact,
    )
    result.check(
        "reactions per second (all at once)",
        "reported",
        f"{requests_total / storm_s:.0f} /s ({requests_total} requests in {storm_s:.1f} s)",
        None,
    )
    result.check(
        "Cosmos counters converged after the last response",
        "reported",
        f"{converged_after:.2f} s" if converged_after is not None else "not within the time limit",
        None,
    )
    return result
