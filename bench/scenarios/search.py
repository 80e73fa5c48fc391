"""search: user search and post search on a million rows each (issue 15).

Set-up straight into PostgreSQL, in bulk (ids in index order, as celebrity's): N users with profiles
(usernames `u` + hex, display names that start with an accented first name) and one post each (an md5 word and one of five
common words). Measured over HTTP at concurrency 8, against the same statements over psycopg
(services/discovery.py's `user_search_sql` and the post search's statement, with the acting user set),
alternating in ROUNDS rounds per kind of query:

- users by a prefix of 2 to 4 characters (common `u0`, accented `Émi`/`emi`, `zoë`/`zoe`, and narrow
  prefixes of generated usernames);
- posts by a rare word (an md5 fragment: one match) and by a common one (`kestrels`: a fifth of the
  posts; ranking reads at most SEARCH_POSTS_CANDIDATES of them, the newest, so it costs about what
  a rare word does).

Checks: every answer 200; the user-search plan (EXPLAIN ANALYZE, in figures.user_search_plan) uses
both search-key indexes and no sequential scan.
Before the search routes are on the commit under test, the scenario reports that and measures nothing.
"""

from __future__ import annotations

import importlib
import random
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import psycopg

from bench.baselines import _ACT
from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.loadgen import LoadResult, closed_loop
from bench.result import ScenarioResult, ms
from bench.rounds import ROUNDS, percent, ratios, times
from devhost.settings_file import PROJECT_DIR

NAME = "search"
CONCURRENCY = 8
LIMIT = 20
SUBJECT = "bench-srch-{:07d}"
COMMON_WORD = "kestrels"
# Ids in index order (valid version-4 layout; prefixes of the bench's own).
_USER_ID = "('b2000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid"
_POST_ID = "('b3000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid"


# The app's own search statements (imported by name: the discovery work may not be on the commit yet).
_APP_NAMES = {
    "prefix_upper_bound": "shared_code.domain.discovery",
    "user_search_sql": "shared_code.services.discovery",
    "user_search_params": "shared_code.services.discovery",
    "post_search_sql": "shared_code.services.discovery",
    "SEARCH_POSTS_CANDIDATES": "shared_code.domain.discovery",
}


def _app(name: str) -> Any:
    return getattr(importlib.import_module(_APP_NAMES[name]), name)


def available() -> bool:
    return (PROJECT_DIR / "shared_code" / "services" / "discovery.py").exists()


async def run(ctx: BenchContext) -> ScenarioResult:
    rows, seconds = (5_000, 1.0) if ctx.quick else (1_000_000, 3.0)
    result = ScenarioResult(NAME, f"user and post search on {rows:,} rows each")
    result.parameters = {"rows": rows, "concurrency": CONCURRENCY, "limit": LIMIT, "rounds": ROUNDS}
    if not available():
        result.check(
            "search on a million rows", "reported", "not measured: no search routes on this commit", None
        )
        return result
    began = time.monotonic()
    await _load(ctx, rows)
    load_s = time.monotonic() - began
    result.figures["bulk_load"] = {"rows": rows, "seconds": round(load_s, 1)}
    result.check(
        f"{rows:,} users (with profiles) and {rows:,} posts created in bulk",
        "minutes, not hours",
        f"{load_s:.0f} s",
        None,
    )
    await ctx.wait_idle()
    searcher = await ctx.onboard("bench-searcher", "bench_searcher")
    token = ctx.token("bench-searcher")
    rng = random.Random(15)
    rare = await _rare_word(ctx, rng.randrange(rows))
    # Common (`u0`: every username), accented (`Émi`, `zoë` as typed; `emi`, `zoe` as compared) and
    # narrow ones (2 to 4 characters of a generated username): each has matches.
    narrow = [f"u{rng.randrange(1, rows + 1):06x}"[: rng.randrange(3, 5)] for _ in range(8)]
    prefixes = ["u0", "emi", "zoe", "Émi", "zoë", "jos", *narrow]
    kinds: dict[str, tuple[str, Callable[[], str]]] = {
        "users by prefix": ("users", lambda: rng.choice(prefixes)),
        "posts by a rare word": ("posts", lambda: rare),
        f"posts by a common word ({COMMON_WORD})": ("posts", lambda: COMMON_WORD),
    }
    plan = await _user_plan(ctx, searcher, "emi")
    uses_indexes = "users_live_by_search_key" in plan and "profiles_live_by_search_key" in plan
    # On a few thousand rows a sequential scan of the final join is the planner's right choice; on a
    # million it would be the bug this check is for.
    scans_all = "Seq Scan" in plan and not ctx.quick
    result.figures["user_search_plan"] = plan
    result.check(
        "user search plan: both search-key indexes, no sequential scan",
        "index range scans",
        ("yes" if uses_indexes and not scans_all else "no (see figures.user_search_plan)")
        + (" (quick: a small table's sequential scan allowed)" if ctx.quick and "Seq Scan" in plan else ""),
        uses_indexes and not scans_all,
    )
    direct = _DirectSearch(ctx, searcher)
    await direct.open()
    try:
        for label, (what, query) in kinds.items():
            await _measure(ctx, result, label, what, query, token, direct, seconds)
    finally:
        await direct.close()
    return result


async def _measure(
    ctx: BenchContext,
    result: ScenarioResult,
    label: str,
    what: str,
    query: Callable[[], str],
    token: str,
    direct: _DirectSearch,
    seconds: float,
) -> None:
    async def api(worker: int) -> str:
        status, page = await ctx.http.call(
            "GET", f"/api/search/{what}?q={quote(query())}&limit={LIMIT}", token
        )
        if status == 200 and not page.get("items"):
            return "empty page"
        return ctx.http.outcome_of(status, (200,))

    async def base(worker: int) -> str:
        await direct.search(worker, what, query())
        return "ok"

    apis: list[LoadResult] = []
    directs: list[LoadResult] = []
    api_h, direct_h = LatencyHistogram(), LatencyHistogram()
    for _ in range(ROUNDS):
        apis.append(await closed_loop(api, CONCURRENCY, seconds, warmup_seconds=min(1.0, seconds / 4)))
        directs.append(await closed_loop(base, CONCURRENCY, seconds, warmup_seconds=min(1.0, seconds / 4)))
        api_h.merge(apis[-1].histogram)
        direct_h.merge(directs[-1].histogram)
    result.histograms[f"GET /api/search/{what}: {label} c={CONCURRENCY}"] = api_h
    result.histograms[f"the same SQL over psycopg: {label} c={CONCURRENCY}"] = direct_h
    p99 = ratios(
        [a.histogram.percentile_ms(99.0) for a in apis], [d.histogram.percentile_ms(99.0) for d in directs]
    )
    rate = ratios([a.rate for a in apis], [d.rate for d in directs])
    errors = {k: v for a in apis for k, v in a.outcomes.items() if k != "ok"}
    result.figures[label] = {
        "api": [a.summary() for a in apis],
        "direct": [d.summary() for d in directs],
        "p99_vs_direct": p99.as_dict(),
        "rate_vs_direct": rate.as_dict(),
    }
    result.check(
        f"{label}: p50 / p95 / p99 over HTTP, rate",
        "reported",
        f"{ms(api_h.percentile_ms(50.0))} / {ms(api_h.percentile_ms(95.0))} / {ms(api_h.percentile_ms(99.0))}, "
        f"{sum(a.ok for a in apis) / sum(a.seconds for a in apis):.0f} /s"
        + (f"; errors {errors}" if errors else ""),
        None if not errors else False,
    )
    result.check(
        f"{label}: p99 and rate vs the same SQL over psycopg (median of rounds)",
        "reported",
        f"p99 {p99.text(times)}; rate {rate.text(percent)}",
        None,
    )


async def _load(ctx: BenchContext, rows: int) -> None:
    series = {"n": rows}
    async with await ctx.admin() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"""INSERT INTO users (id, auth_subject, auth_provider, username)
                    SELECT {_USER_ID}, 'bench-srch-' || lpad(i::text, 7, '0'), 'email', 'u' || lpad(to_hex(i), 6, '0')
                    FROM generate_series(1, %(n)s::int) i""",  # noqa: S608 (constants; values are parameters)
                series,
            )
            await conn.execute(
                f"""INSERT INTO profiles (user_id, display_name)
                    SELECT {_USER_ID}, (ARRAY['Émile', 'Zoë', 'José', 'Anna'])[1 + (i & 3)] || ' '
                           || initcap(substr(md5(i::text), 1, 6))
                    FROM generate_series(1, %(n)s::int) i""",  # noqa: S608
                series,
            )
            await conn.execute(
                f"INSERT INTO user_counts (user_id, posts) SELECT {_USER_ID}, 1 FROM generate_series(1, %(n)s::int) i",  # noqa: S608
                series,
            )
            await conn.execute(
                f"""INSERT INTO posts (id, author_id, content)
                    SELECT {_POST_ID}, {_USER_ID}, 'post ' || md5(i::text) || ' about '
                           || (ARRAY['kestrels', 'rivers', 'bread', 'chess', 'jazz'])[1 + (i %% 5)]
                    FROM generate_series(1, %(n)s::int) i""",  # noqa: S608
                series,
            )
            await conn.execute(
                f"INSERT INTO post_counts (post_id) SELECT {_POST_ID} FROM generate_series(1, %(n)s::int) i",  # noqa: S608
                series,
            )
        await conn.execute("ANALYZE users, profiles, user_counts, posts, post_counts")


async def _rare_word(ctx: BenchContext, index: int) -> str:
    async with await ctx.admin() as conn:
        cur = await conn.execute("SELECT md5(%s::text)", (str(index + 1),))
        row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _user_plan(ctx: BenchContext, searcher: str, q: str) -> str:
    prefix_upper_bound, user_search_sql = _app("prefix_upper_bound"), _app("user_search_sql")
    async with await ctx.admin() as conn:
        cur = await conn.execute("SELECT chorus_search_key(%s)", (q,))
        row = await cur.fetchone()
        assert row is not None
        low = str(row[0])
        high = prefix_upper_bound(low)
        params = _user_params(low, high)
        plan = await (
            await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + user_search_sql(high is not None), params)
        ).fetchall()
    return "\n".join(str(r[0]) for r in plan)


def _user_params(low: str, high: str | None) -> dict[str, Any]:
    params: dict[str, Any] = _app("user_search_params")(low, high, None, LIMIT + 1)
    return params


class _DirectSearch:
    """The searches' statements over psycopg, as the searcher (acting user set), one connection each."""

    def __init__(self, ctx: BenchContext, searcher: str) -> None:
        self._ctx = ctx
        self._searcher = searcher
        self._connections: list[psycopg.AsyncConnection[Any]] = []

    async def open(self) -> None:
        self._connections = [
            await psycopg.AsyncConnection.connect(self._ctx.stack.postgres_url, autocommit=True)
            for _ in range(CONCURRENCY)
        ]

    async def close(self) -> None:
        for conn in self._connections:
            await conn.close()

    async def search(self, worker: int, what: str, q: str) -> None:
        prefix_upper_bound, user_search_sql = _app("prefix_upper_bound"), _app("user_search_sql")
        conn = self._connections[worker]
        async with conn.transaction():
            await conn.execute(_ACT, {"subject": "bench-searcher", "role": "user"})
            if what == "users":
                cur = await conn.execute("SELECT chorus_search_key(%s)", (q,))
                row = await cur.fetchone()
                assert row is not None
                high = prefix_upper_bound(str(row[0]))
                cur = await conn.execute(user_search_sql(high is not None), _user_params(str(row[0]), high))
            else:
                # The app's statement, unprepared as the app runs it (a plan for the query's values).
                cur = await conn.execute(
                    _app("post_search_sql")(True),
                    {
                        "viewer": uuid.UUID(self._searcher),
                        "moderator": False,
                        "config": self._ctx.stack.app_settings.get("SEARCH_TEXT_CONFIG") or "simple",
                        "q": q,
                        "candidates": _app("SEARCH_POSTS_CANDIDATES"),
                        "until": None,
                        "limit": LIMIT + 1,
                    },
                    prepare=False,
                )
            await cur.fetchall()
