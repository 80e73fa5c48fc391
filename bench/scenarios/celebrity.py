"""celebrity: an author with 100,000 and then 1,000,000 followers (issue 12, "Measure it").

1. Followers are created straight in PostgreSQL, in bulk (one transaction of INSERT … SELECT from
   generate_series per size: users, profiles, user counts, follows, and the celebrity's follower count), so
   the schema's derived rows stay consistent; nothing is written to Cosmos for them (a follower's Cosmos
   side is its public profile, which nothing here reads). The 1,000,000 case grows the 100,000 one.
2. The celebrity (onboarded through the API) posts through `POST /api/posts`: commit (the 201) → the post
   visible in a random sample of followers' feeds. Each post is watched by POLLERS sampled followers, each
   follower's own `GET /api/feed` read back to back by a poller of its own (so one post per POLLERS
   followers); a follower's time is the arrival of its first page that holds the post. Beside
   it, split out: commit → the post in authorPosts (a direct point read) and → the author's pull window
   covering it (PostgreSQL), polled every 20 ms: from the later of the two any feed read pulls the post;
   the polling reads' own latency; and one follower's read → its next (the resolution of its time).
3. Cosmos writes per post: the relay's projection of the post's `post.created` event (pure: its documents,
   shared_code.projections.documents.project) plus the posts_v2 change-feed step run once more in this
   process (`fan_out_posts`) with every Cosmos request counted (bench/counting.py), on the same
   PostgreSQL (the real audience) and a Cosmos database of its own that holds only this post (the host
   already fanned it out, and a fan-out that finds its post done skips it). Above FANOUT_MAX_FOLLOWERS
   it must not grow with the audience.
4. `GET /api/feed?limit=50` for readers who follow 20 big authors (each above the threshold) and 200 small
   ones, at concurrency 8, against the same reads done directly (bench/feed_baseline.py), alternating in
   ROUNDS rounds; the target is the median of the rounds' p99 ratios.

Before the hybrid fan-out is on the commit being measured (no FANOUT_MAX_FOLLOWERS setting), a post is
fanned out on write to every follower: the scenario then stays at 100,000 followers (1,000,000 feed items
would take the emulator's memory and many minutes) and says so.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from azure.cosmos import CosmosClient as SyncCosmosClient
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from bench.context import BenchContext
from bench.counting import summarise
from bench.feed_baseline import DirectFeedRead
from bench.histogram import LatencyHistogram
from bench.inprocess import app_in_process
from bench.loadgen import LoadResult, closed_loop
from bench.profiling import PySpy
from bench.result import ScenarioResult, ms
from bench.rounds import ROUNDS, percent, ratios, times
from bench.seeding import seed_posts
from devhost.cosmos_provisioning import provision

NAME = "celebrity"
CELEBRITY_SUBJECT = "bench-celebrity"
FAN_SUBJECT = "bench-fan-{:07d}"
TARGET_VISIBLE_P99_MS = 1000.0
TARGET_READ_P99_TIMES = 1.25
# "O(1) above the threshold": the same handful of writes at every audience above it.
MAX_WRITES_ABOVE_THRESHOLD = 10
WRITE_OPERATIONS = ("create", "upsert", "replace", "patch", "delete", "batch")
FEED_LIMIT = 50
READ_CONCURRENCY = 8
POLLERS = 4
DEFAULT_FANOUT_MAX_FOLLOWERS = 10_000
# Where the counted fan-out writes (same container definitions; nothing else reads it).
COUNT_DATABASE = "bench_celebrity_count"


def hybrid_threshold(ctx: BenchContext) -> int | None:
    """FANOUT_MAX_FOLLOWERS as the host runs with it; None when the app has no such setting (every post
    is fanned out on write)."""
    from shared_code.settings import Settings

    field = Settings.model_fields.get("fanout_max_followers")
    if field is None:
        return None
    configured = ctx.stack.app_settings.get("FANOUT_MAX_FOLLOWERS")
    return int(configured) if configured else int(field.default or DEFAULT_FANOUT_MAX_FOLLOWERS)


async def run(ctx: BenchContext) -> ScenarioResult:
    threshold = hybrid_threshold(ctx)
    if ctx.quick:
        # Just above the threshold, where the O(1) claim starts; without a threshold, small (every
        # follower gets a feed item, so a large audience only makes the quick run slow).
        sizes: tuple[int, ...] = (threshold + 2_000,) if threshold is not None else (2_000,)
        sample_size, big_total, small_total, readers_total, seconds = 8, 2, 20, 5, 1.0
    else:
        sizes = (100_000, 1_000_000) if threshold is not None else (100_000,)
        sample_size, big_total, small_total, readers_total, seconds = 52, 20, 200, 20, 4.0
    result = ScenarioResult(NAME, "an author with a very large audience: bulk followers, one post, feeds")
    result.parameters = {
        "followers": list(sizes),
        "fanout_max_followers": threshold,
        "sampled_followers": sample_size,
        "posts_per_size": -(-sample_size // POLLERS),  # each post watched by POLLERS followers
        "pollers": POLLERS,
        "big_authors": big_total,
        "small_authors": small_total,
        "readers": readers_total,
        "feed_limit": FEED_LIMIT,
        "read_concurrency": READ_CONCURRENCY,
        "read_rounds": ROUNDS,
        "read_seconds_per_phase": seconds,
    }
    if threshold is None and not ctx.quick:
        result.notes.append(
            "This commit has no hybrid fan-out (no FANOUT_MAX_FOLLOWERS setting): every post is fanned out "
            "on write to every follower, so the scenario ran at 100,000 followers only."
        )
    celebrity = await ctx.onboard(CELEBRITY_SUBJECT, "bench_celebrity")
    await ctx.wait_idle()
    loaded = 0
    rng = random.Random(12)
    for size in sizes:
        began = time.monotonic()
        await bulk_fans(ctx, celebrity, loaded, size)
        load_s = time.monotonic() - began
        result.figures[f"f{size}_bulk_load"] = {
            "followers_added": size - loaded,
            "seconds": round(load_s, 1),
            "rows_per_s": round(4 * (size - loaded) / load_s),
        }
        result.check(
            f"F={size:,}: followers created in bulk in PostgreSQL",
            "minutes, not hours",
            f"{load_s:.0f} s for {size - loaded:,} (users, profiles, counts, follows)",
            None,
        )
        loaded = size
        await ctx.wait_idle()
        sample = sorted(rng.sample(range(size), sample_size))
        spy = None
        if ctx.profile and size == max(sizes):  # where the host's time goes while followers poll
            spy = PySpy(ctx.host.pid, ctx.out_dir / "profiles" / f"{NAME}-{size}.txt")
            spy.start()
        t0 = ctx.sampler.now()
        await _visibility(ctx, result, celebrity, size, sample, threshold)
        visibility = result.figures[f"f{size}_visibility"]
        visibility["resources"] = ctx.sampler.window(t0, ctx.sampler.now())
        if spy:
            visibility["profile"] = spy.stop()
        await _writes_per_post(ctx, result, size, threshold)
    await _feed_read(ctx, result, threshold, big_total, small_total, readers_total, seconds)
    return result


# --- 1. bulk followers --------------------------------------------------------------------------------


async def bulk_fans(ctx: BenchContext, celebrity: str, start: int, end: int) -> None:
    """Users `bench-fan-{start}` … `bench-fan-{end-1}` (zero-padded) following `celebrity`, with their
    profiles and counts, and the celebrity's follower count, in one transaction (set-up data: no
    events). Their ids (and their follows' ids) are made from the index, so every index on these tables
    takes them in order: appends, not random page splits (a 1,000,000-row load on 2 cores in minutes)."""
    fans = {"start": start, "end": end}
    series = "generate_series(%(start)s::int, %(end)s::int - 1) i"
    async with await ctx.admin() as conn:
        async with conn.transaction():
            # Set-up data the run can always recreate: no need to wait for each commit's flush.
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"""INSERT INTO users (id, auth_subject, auth_provider, username)
                    SELECT {_FAN_ID}, 'bench-fan-' || lpad(i::text, 7, '0'), 'email',
                           'bench_fan' || lpad(i::text, 7, '0')
                    FROM {series}""",  # noqa: S608 (constants; values are parameters)
                fans,
            )
            await conn.execute(
                f"""INSERT INTO profiles (user_id, display_name) SELECT {_FAN_ID}, 'Fan ' || i
                    FROM {series}""",  # noqa: S608
                fans,
            )
            await conn.execute(
                f"INSERT INTO user_counts (user_id, following) SELECT {_FAN_ID}, 1 FROM {series}",  # noqa: S608
                fans,
            )
            await conn.execute(
                f"""INSERT INTO follows (id, follower_id, followee_id)
                    SELECT {_FOLLOW_ID}, {_FAN_ID}, %(celebrity)s::uuid FROM {series}""",  # noqa: S608
                {**fans, "celebrity": celebrity},
            )
            await conn.execute(
                """UPDATE user_counts SET followers = followers + %s, version = version + 1
                   WHERE user_id = %s::uuid""",
                (end - start, celebrity),
            )
        # Fresh statistics, as autovacuum would give them a little later: plans for 10^6 rows, not 10^3.
        await conn.execute("ANALYZE users, profiles, user_counts, follows")


# Ids that sort as the fan's index does (valid version-4 layout; the prefixes are the bench's own).
_FAN_ID = "('b0000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid"
_FOLLOW_ID = "('b1000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid"


async def fan_ids(ctx: BenchContext, indexes: list[int]) -> list[str]:
    async with await ctx.admin() as conn:
        cur = await conn.execute(
            "SELECT id::text FROM users WHERE auth_subject = ANY(%s) AND deleted_at IS NULL",
            ([FAN_SUBJECT.format(i) for i in indexes],),
        )
        return [str(row[0]) for row in await cur.fetchall()]


# --- 2. commit → visible in the sampled followers' feeds -------------------------------------------------


async def _visibility(
    ctx: BenchContext,
    result: ScenarioResult,
    celebrity: str,
    size: int,
    sample: list[int],
    threshold: int | None,
) -> None:
    """One post per POLLERS sampled followers, each of them read back to back by a poller of its own from
    the commit on, so a follower's time is when the post became visible to it (to within one read), not
    how long a shared poller took to come round to it."""
    timeout = 60.0 if threshold is not None else 300.0
    tokens = {i: ctx.token(FAN_SUBJECT.format(i)) for i in sample}
    for token in tokens.values():  # each sampled reader's first read, before the clock starts
        await ctx.http.expect("GET", "/api/feed?limit=5", token)
    to_each = LatencyHistogram()
    sent_each = LatencyHistogram()
    missed_each = LatencyHistogram()
    first_read_showed = 0
    to_last = LatencyHistogram()
    to_author_posts = LatencyHistogram()
    to_window = LatencyHistogram()
    revisits = LatencyHistogram()
    missing = 0
    reads = LatencyHistogram()
    watching_s = 0.0
    # opened before the clock starts: the watcher then measures the window, not a connection's set-up
    async with await ctx.admin() as conn:
        groups = [sample[i : i + POLLERS] for i in range(0, len(sample), POLLERS)]
        posts = len(groups)
        for n, group in enumerate(groups):
            await ctx.wait_idle()
            post = await ctx.http.expect(
                "POST",
                "/api/posts",
                ctx.token(CELEBRITY_SUBJECT),
                {"content": f"to {size:,} followers, #{n}"},
            )
            committed = time.monotonic()
            watched = Watched()
            pullable = Pullable()
            feeds, _ = await asyncio.gather(
                _watch(ctx, {i: tokens[i] for i in group}, str(post["id"]), committed, timeout, watched),
                _watch_pullable(
                    ctx, conn, celebrity, post, committed, timeout, pullable, threshold is not None
                ),
            )
            missing += feeds
            watching_s += time.monotonic() - committed
            reads.merge(watched.reads)
            revisits.merge(watched.revisits)
            for follower, (sent, arrived) in watched.seen.items():
                sent_each.record_seconds(max(0.0, sent))
                to_each.record_seconds(arrived)
                if follower in watched.last_missed:
                    missed_each.record_seconds(max(0.0, watched.last_missed[follower]))
                else:  # the follower's first read after the commit already showed it
                    first_read_showed += 1
            if watched.seen:
                to_last.record_seconds(max(arrived for _, arrived in watched.seen.values()))
            if pullable.author_posts is not None:
                to_author_posts.record_seconds(pullable.author_posts)
            if pullable.window is not None:
                to_window.record_seconds(pullable.window)
    result.histograms[f"F={size:,}: commit → feed (each sampled follower)"] = to_each
    result.histograms[f"F={size:,}: commit → feed (last sampled follower)"] = to_last
    result.histograms[f"F={size:,}: the polling feed reads themselves"] = reads
    result.histograms[f"F={size:,}: commit → in authorPosts (direct point read)"] = to_author_posts
    result.histograms[f"F={size:,}: commit → pull window covers the post (PostgreSQL)"] = to_window
    result.histograms[f"F={size:,}: one follower's read → its next read (the pollers' revisit)"] = revisits
    result.figures[f"f{size}_visibility"] = {
        "each_follower": to_each.summary(),
        "each_follower_lower_bound": sent_each.summary(),
        "each_follower_last_read_without_it_sent": missed_each.summary(),
        "first_read_after_commit_showed_it": first_read_showed,
        "last_follower": to_last.summary(),
        "never_seen": missing,
        "feed_reads": reads.summary(),
        "in_author_posts": to_author_posts.summary(),
        "pull_window_covers_it": to_window.summary(),
        "revisit_interval": revisits.summary(),
        "rate_per_s": round(reads.count / watching_s, 1) if watching_s else 0.0,  # feed reads while polling
    }
    result.check(
        f"F={size:,}: commit → pullable (in authorPosts, direct point read; and its pull window open), p99",
        "reported",
        f"in authorPosts p99 {ms(to_author_posts.percentile_ms(99.0))} (p50 "
        f"{ms(to_author_posts.percentile_ms(50.0))}); window covers it p99 {ms(to_window.percentile_ms(99.0))}",
        None,
    )
    p99 = to_each.percentile_ms(99.0)
    result.check(
        f"F={size:,}: commit → visible in {len(sample)} sampled followers' feeds (GET /api/feed), p99",
        f"≤ {ms(TARGET_VISIBLE_P99_MS)}",
        f"{ms(p99)} (p50 {ms(to_each.percentile_ms(50.0))}; the reads that showed it were sent by p99 "
        f"{ms(sent_each.percentile_ms(99.0))}; "
        + (
            f"the last read without it by p99 {ms(missed_each.percentile_ms(99.0))}; "
            if missed_each.count
            else ""
        )
        + f"{first_read_showed} of {to_each.count} shown by the first read after the commit; "
        f"a feed read itself p50 {ms(reads.percentile_ms(50.0))}, "
        f"p99 {ms(reads.percentile_ms(99.0))}; one follower read again after p50 "
        f"{ms(revisits.percentile_ms(50.0)) if revisits.count else '—'}; {posts} posts, {missing} never seen)",
        p99 <= TARGET_VISIBLE_P99_MS and missing == 0,
    )


@dataclass
class Watched:
    """Per follower: (commit → the read that first showed the post was sent, commit → its page arrived).
    The first is a lower bound of when the post became visible, the second an upper bound."""

    seen: dict[int, tuple[float, float]] = field(default_factory=dict)
    reads: LatencyHistogram = field(default_factory=LatencyHistogram)
    # commit → when the follower's last read that did not show the post was sent: not visible to it
    # before then (or only just); with `seen`, the span the post became visible in.
    last_missed: dict[int, float] = field(default_factory=dict)
    # one follower's read sent → the same follower's next read sent: the resolution of `seen`
    revisits: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass
class Pullable:
    """commit → the post in its author's authorPosts partition (a direct point read), and → the
    author's pull window covering it (PostgreSQL): from the later of the two a feed read pulls it."""

    author_posts: float | None = None
    window: float | None = None


# The direct watchers poll this often: fine against the feed pollers' revisit, light on the emulator.
PULLABLE_POLL_S = 0.02


async def _watch_pullable(
    ctx: BenchContext,
    conn: psycopg.AsyncConnection[Any],
    celebrity: str,
    post: dict[str, Any],
    committed: float,
    within_s: float,
    into: Pullable,
    hybrid: bool,
) -> None:
    deadline = committed + within_s
    container = ctx.db.get_container_client("authorPosts")

    async def in_author_posts() -> None:
        while time.monotonic() < deadline:
            try:
                await container.read_item(str(post["id"]), partition_key=celebrity)
            except CosmosResourceNotFoundError:
                await asyncio.sleep(PULLABLE_POLL_S)
                continue
            into.author_posts = time.monotonic() - committed
            return

    async def window_covers() -> None:
        while time.monotonic() < deadline:
            cur = await conn.execute(
                """SELECT EXISTS (SELECT 1 FROM fanout_pull_windows WHERE author_id = %s
                     AND pulled_since <= %s AND (pulling OR pulled_last >= %s))""",
                (celebrity, post["createdAt"], post["createdAt"]),
            )
            row = await cur.fetchone()
            if row and row[0]:
                into.window = time.monotonic() - committed
                return
            await asyncio.sleep(PULLABLE_POLL_S)

    await asyncio.gather(in_author_posts(), *([window_covers()] if hybrid else []))


async def _watch(
    ctx: BenchContext, tokens: dict[int, str], post_id: str, committed: float, within_s: float, into: Watched
) -> int:
    """Each follower's feed read back to back by a poller of its own until it holds the post; returns how
    many followers never saw it."""
    deadline = committed + within_s
    missing = 0

    async def poller(follower: int) -> None:
        nonlocal missing
        last_sent: float | None = None
        while time.monotonic() < deadline:
            sent = time.monotonic()
            if last_sent is not None:
                into.revisits.record_seconds(sent - last_sent)
            last_sent = sent
            status, page = await ctx.http.call("GET", "/api/feed?limit=5", tokens[follower])
            arrived = time.monotonic()
            into.reads.record_seconds(arrived - sent)
            if status == 200 and any(item.get("postId") == post_id for item in page.get("items", [])):
                into.seen[follower] = (sent - committed, arrived - committed)
                return
            into.last_missed[follower] = sent - committed
        missing += 1

    await asyncio.gather(*(poller(follower) for follower in tokens))
    return missing


# --- 3. Cosmos writes per post ------------------------------------------------------------------------


async def _writes_per_post(
    ctx: BenchContext, result: ScenarioResult, size: int, threshold: int | None
) -> None:
    if threshold is None and size > 20_000:
        result.check(
            f"F={size:,}: Cosmos writes per post",
            "O(1) above FANOUT_MAX_FOLLOWERS",
            "not counted: without the hybrid fan-out it is one feed item per follower (F + 1)",
            False,
        )
        return
    from shared_code.bootstrap import change_feed_service
    from shared_code.domain.stored_event import StoredEvent
    from shared_code.projections.documents import project

    post = await ctx.http.expect(
        "POST", "/api/posts", ctx.token(CELEBRITY_SUBJECT), {"content": f"counted, {size:,} followers"}
    )
    post_id = str(post["id"])
    await ctx.wait_idle()
    async with await ctx.admin() as conn:
        cur = await conn.execute(
            """SELECT id, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload,
                      metadata, created_at, attempts FROM outbox
               WHERE aggregate_type = 'post' AND aggregate_id = %s AND event_type = 'post.created'""",
            (post_id,),
        )
        cur.row_factory = psycopg.rows.class_row(StoredEvent)
        event = await cur.fetchone()
    assert event is not None, f"no post.created event for {post_id}"
    relay_writes = len(project(event))
    doc = await ctx.db.get_container_client("posts_v2").read_item(post_id, post_id)
    # The host's own change feed has fanned this post out already, and a fan-out that finds its post
    # done skips it: the counted run gets a Cosmos database of its own holding only this post, and the
    # same PostgreSQL (the real audience, its counts and its pull window).
    await asyncio.to_thread(_count_database, ctx)
    counted_db = ctx.cosmos.get_database_client(COUNT_DATABASE)
    await counted_db.get_container_client("posts_v2").upsert_item(
        {k: v for k, v in doc.items() if not k.startswith("_")}
    )
    async with app_in_process(ctx, ctx.stack.postgres_url, COUNT_DATABASE) as app:
        app.counter.take()
        await change_feed_service(app.app_ctx).fan_out_posts([doc])
        requests = app.counter.take()
    counted = summarise(requests)
    fan_out_writes = sum(
        n
        for kind, n in counted["by_container_operation"].items()
        if kind.split(" (")[0].split()[-1] in WRITE_OPERATIONS
    )
    writes = relay_writes + fan_out_writes
    result.figures[f"f{size}_cosmos_per_post"] = {
        "relay_projection_writes": relay_writes,
        "fan_out": counted,
        "writes": writes,
    }
    above = threshold is not None and size > threshold
    result.check(
        f"F={size:,}: Cosmos writes per post (relay projection + change-feed step, counted)",
        f"O(1) above FANOUT_MAX_FOLLOWERS (≤ {MAX_WRITES_ABOVE_THRESHOLD})" if above else "reported",
        f"{writes} ({relay_writes} by the relay, {fan_out_writes} by the fan-out; "
        f"{counted['requests']} fan-out requests: "
        + ", ".join(f"{k} ×{v}" for k, v in counted["by_container_operation"].items())
        + ")",
        writes <= MAX_WRITES_ABOVE_THRESHOLD if above else None,
    )


def _count_database(ctx: BenchContext) -> None:
    with SyncCosmosClient(ctx.stack.cosmos_endpoint, credential=ctx.stack.cosmos_key) as client:
        provision(client, COUNT_DATABASE)


# --- 4. the feed of someone who follows 20 big and 200 small authors -----------------------------------


async def _feed_read(
    ctx: BenchContext,
    result: ScenarioResult,
    threshold: int | None,
    big_total: int,
    small_total: int,
    readers_total: int,
    seconds: float,
) -> None:
    big = [await ctx.onboard(f"bench-big-{i}", f"bench_big_{i}") for i in range(big_total)]
    small = [await ctx.onboard(f"bench-small-{i}", f"bench_small_{i}") for i in range(small_total)]
    # Big authors: above the threshold (the first fans follow each); without the hybrid fan-out they
    # would be fanned out on write to every one of them, so then only the readers follow them.
    big_audience = (threshold + 1) if threshold is not None else readers_total
    readers = await fan_ids(ctx, list(range(readers_total)))
    audience = await fan_ids(ctx, list(range(big_audience)))
    began = time.monotonic()
    async with await ctx.admin() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(
            """INSERT INTO follows (follower_id, followee_id)
               SELECT f::uuid, a::uuid FROM unnest(%s::text[]) f, unnest(%s::text[]) a ON CONFLICT DO NOTHING""",
            (audience, big),
        )
        await conn.execute(
            """INSERT INTO follows (follower_id, followee_id)
               SELECT f::uuid, a::uuid FROM unnest(%s::text[]) f, unnest(%s::text[]) a ON CONFLICT DO NOTHING""",
            (readers, small),
        )
        await conn.execute(
            """UPDATE user_counts c SET followers = s.n, version = c.version + 1
               FROM (SELECT followee_id, count(*) n FROM follows
                     WHERE deleted_at IS NULL AND followee_id = ANY(%s::uuid[]) GROUP BY followee_id) s
               WHERE c.user_id = s.followee_id""",
            (big + small,),
        )
        await conn.execute(
            """UPDATE user_counts c SET following = s.n, version = c.version + 1
               FROM (SELECT follower_id, count(*) n FROM follows
                     WHERE deleted_at IS NULL AND follower_id = ANY(%s::uuid[]) GROUP BY follower_id) s
               WHERE c.user_id = s.follower_id""",
            (audience,),
        )
    # Their posts, committed with their post.created events in one transaction (as relay_drain seeds):
    # the relay publishes them and the change feed fans out the small authors' (pulled for big ones).
    async with await ctx.admin() as conn:
        await seed_posts(conn, big, posts_per_author=5, spread_seconds=3600)
        await seed_posts(conn, small, posts_per_author=2, spread_seconds=3600)
    setup_s = time.monotonic() - began
    await ctx.wait_idle(timeout=600)
    tokens = [ctx.token(FAN_SUBJECT.format(i)) for i in range(readers_total)]
    sizes = []
    for token in tokens:  # the warm-up read (counters cache), and a check that every feed is full
        page = await ctx.http.expect("GET", f"/api/feed?limit={FEED_LIMIT}", token)
        sizes.append(len(page["items"]))
    await ctx.wait_idle()
    result.figures["feed_read_setup"] = {
        "follows_and_posts_seconds": round(setup_s, 1),
        "big_author_followers": big_audience,
        "feed_page_sizes_min_max": [min(sizes), max(sizes)],
    }
    rng = random.Random(13)

    async def read(worker: int) -> str:
        status, _ = await ctx.http.call("GET", f"/api/feed?limit={FEED_LIMIT}", rng.choice(tokens))
        return ctx.http.outcome_of(status, (200,))

    direct = DirectFeedRead(ctx, readers, [FAN_SUBJECT.format(i) for i in range(readers_total)], FEED_LIMIT)
    apis: list[LoadResult] = []
    directs: list[LoadResult] = []
    api_histogram, direct_histogram = LatencyHistogram(), LatencyHistogram()
    await direct.open(READ_CONCURRENCY)
    try:
        for _ in range(ROUNDS):
            api = await closed_loop(read, READ_CONCURRENCY, seconds, warmup_seconds=min(1.0, seconds / 4))
            base = await direct.run(READ_CONCURRENCY, seconds)
            apis.append(api)
            directs.append(base)
            api_histogram.merge(api.histogram)
            direct_histogram.merge(base.histogram)
    finally:
        await direct.close()
    result.histograms[f"GET /api/feed (20 big + 200 small followed) c={READ_CONCURRENCY}"] = api_histogram
    result.histograms[f"the same reads done directly c={READ_CONCURRENCY}"] = direct_histogram
    p99 = ratios(
        [a.histogram.percentile_ms(99.0) for a in apis], [d.histogram.percentile_ms(99.0) for d in directs]
    )
    rate = ratios([a.rate for a in apis], [d.rate for d in directs])
    errors = {k: v for a in apis for k, v in a.outcomes.items() if k != "ok"}
    result.figures["feed_read"] = {
        "api": [a.summary() for a in apis],
        "direct": [d.summary() for d in directs],
        "p99_vs_direct": p99.as_dict(),
        "rate_vs_direct": rate.as_dict(),
        "direct_reads": direct.describe(),
    }
    result.ratios["feed_p99_vs_direct"] = p99.median
    p99s = "/".join(f"{a.histogram.percentile_ms(99.0):.0f}" for a in apis)
    base_p99s = "/".join(f"{d.histogram.percentile_ms(99.0):.0f}" for d in directs)
    result.check(
        f"GET /api/feed, {len(big)} big + {len(small)} small authors followed: p99 vs the same reads done "
        "directly (median of rounds)",
        f"≤ {times(TARGET_READ_P99_TIMES)}",
        f"{p99.text(times)}; {p99s} vs {base_p99s} ms" + (f"; errors {errors}" if errors else ""),
        p99.median <= TARGET_READ_P99_TIMES and not errors,
    )
    result.check("that read's rate vs the same reads done directly", "reported", rate.text(percent), None)
