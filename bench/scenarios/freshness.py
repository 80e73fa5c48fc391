"""freshness: how soon a committed post is visible — in `posts_v2` (the relay's projection) and in the
home feed of each of its author's 100 followers (the posts_v2 change feed's fan-out into `userFeed`).

Posts are written through `POST /api/posts`, one at a time, spread evenly over more than a minute so that
they land anywhere in the relay timer's cycle. t0 is when the 201 arrives (the commit happened just
before it); visibility is when a change-feed reader of the harness's own first sees the document (polled
every 20 ms: up to ~20 ms of observation delay is included).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from bench import relay_runs
from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.observe import ChangeFeedWatcher
from bench.result import ScenarioResult, ms

NAME = "freshness"
FOLLOWERS = 100
TARGET_POSTS_MS = 200.0
TARGET_FEEDS_MS = 1000.0
AUTHOR_SUBJECT = "bench-author-100"


async def run(ctx: BenchContext) -> ScenarioResult:
    posts_total, spacing = (4, 0.5) if ctx.quick else (40, 1.5)
    result = ScenarioResult(NAME, "commit → visible in posts_v2 and in each follower's feed")
    result.parameters = {
        "posts": posts_total,
        "spacing_s": spacing,
        "followers": FOLLOWERS,
        "observer_poll_s": 0.02,
        "feed_poll_delay_ms": 200,
        "relay_schedule": ctx.stack.app_settings.get("OUTBOX_RELAY_SCHEDULE"),
    }
    followers = (await ctx.ensure_population(FOLLOWERS))[:FOLLOWERS]
    author = await ctx.ensure_user(AUTHOR_SUBJECT, "bench_author_100")
    await ctx.ensure_followers(author, followers)
    await ctx.wait_idle()
    s = ctx.stack
    posts_watch = ChangeFeedWatcher(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, "posts_v2")
    feed_watch = ChangeFeedWatcher(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, "userFeed")
    await posts_watch.start()
    await feed_watch.start()
    token = ctx.token(AUTHOR_SUBJECT)
    committed: dict[str, float] = {}
    committed_utc: dict[str, dt.datetime] = {}
    write_latency = LatencyHistogram()
    try:
        for n in range(posts_total):
            began = time.monotonic()
            post = await ctx.http.expect("POST", "/api/posts", token, {"content": f"freshness probe {n}"})
            answered = time.monotonic()
            write_latency.record_seconds(answered - began)
            committed[str(post["id"])] = answered
            committed_utc[str(post["id"])] = dt.datetime.now(dt.UTC)
            await asyncio.sleep(max(0.0, spacing - (time.monotonic() - began)))
        deadline = time.monotonic() + 90  # a post may wait out a relay pause (up to ~65 s)
        expected = {f"{r}:{p}" for p in committed for r in [*followers, author]}
        while time.monotonic() < deadline and not (  # noqa: ASYNC110 (polling two watchers)
            expected <= feed_watch.first_seen.keys() and committed.keys() <= posts_watch.first_seen.keys()
        ):
            await asyncio.sleep(0.1)
    finally:
        await posts_watch.stop()
        await feed_watch.stop()

    spans = relay_runs.pauses(ctx.host.log_path, min(committed_utc.values()))
    during_pause = {p for p, t in committed_utc.items() if relay_runs.paused_at(spans, t)}
    to_posts_outside = LatencyHistogram()
    to_posts = LatencyHistogram()
    to_each_feed = LatencyHistogram()
    to_last_feed = LatencyHistogram()
    missing_posts = missing_items = 0
    worst: list[tuple[float, str]] = []
    for post_id, t0 in committed.items():
        seen = posts_watch.first_seen.get(post_id)
        if seen is None:
            missing_posts += 1
        else:
            to_posts.record_seconds(seen - t0)
            if post_id not in during_pause:
                to_posts_outside.record_seconds(seen - t0)
            worst.append((seen - t0, post_id))
        last = 0.0
        for recipient in followers:
            item = feed_watch.first_seen.get(f"{recipient}:{post_id}")
            if item is None:
                missing_items += 1
                continue
            to_each_feed.record_seconds(item - t0)
            last = max(last, item - t0)
        to_last_feed.record_seconds(last)
    result.histograms = {
        "commit → posts_v2": to_posts,
        "commit → feed (each follower)": to_each_feed,
        "commit → feed (last of 100 followers)": to_last_feed,
        "POST /api/posts (the write itself)": write_latency,
    }
    result.figures = {
        "posts_v2": to_posts.summary(),
        "each_follower": to_each_feed.summary(),
        "last_follower": to_last_feed.summary(),
        "write": write_latency.summary(),
        "posts_never_seen": missing_posts,
        "feed_items_never_seen": missing_items,
        "slowest_posts_v2_s": [round(v, 3) for v, _ in sorted(worst, reverse=True)[:5]],
        "observer_requests": posts_watch.requests + feed_watch.requests,
        "observer_failed_reads": (posts_watch.errors + feed_watch.errors)[:10],
        "posts_committed_while_no_relay_ran": len(during_pause),
        "posts_v2_latency_s_of_those": sorted(
            round(posts_watch.first_seen[p] - committed[p], 2)
            for p in during_pause
            if p in posts_watch.first_seen
        ),
        "posts_v2_of_the_others": to_posts_outside.summary(),
    }
    p99_posts = to_posts.percentile_ms(99.0)
    p99_last = to_last_feed.percentile_ms(99.0)
    result.check(
        "commit → posts_v2, p99",
        f"≤ {ms(TARGET_POSTS_MS)}",
        ms(p99_posts),
        p99_posts <= TARGET_POSTS_MS and missing_posts == 0,
    )
    result.check(
        "commit → feed of each of 100 followers (last one), p99",
        f"≤ {ms(TARGET_FEEDS_MS)}",
        ms(p99_last),
        p99_last <= TARGET_FEEDS_MS and missing_items == 0,
    )
    result.check(
        "commit → posts_v2 / last feed, p50",
        "reported",
        f"{ms(to_posts.percentile_ms(50.0))} / {ms(to_last_feed.percentile_ms(50.0))}",
        None,
    )
    if during_pause:
        result.notes.append(
            f"{len(during_pause)} of {len(committed)} posts were committed while no relay run was active (between "
            f"a run's end and the next whole minute, from the host's log); their commit → posts_v2 took "
            f"{', '.join(str(v) for v in result.figures['posts_v2_latency_s_of_those'])} s. The other posts' "
            f"commit → posts_v2 p99 was {to_posts_outside.percentile_ms(99.0):.0f} ms."
            + "".join(
                f" Also {line}."
                for line in relay_runs.overruns(
                    ctx.host.log_path, min(committed_utc.values()), max(committed_utc.values())
                )
            )
        )
    return result
