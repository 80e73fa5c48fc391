"""`GET /api/feed`'s I/O without the app: the same PostgreSQL statements over psycopg and the same Cosmos
queries and batched reads over azure-cosmos, one connection per worker, kept open across rounds. The
baseline for feed_read and for celebrity's read of a feed that follows big (pulled) authors.

Keep it in step with shared_code/services/feed_reads.py and feed_hydration.py. Each step below is taken
only where the commit under test has what it needs (a table, a container, a module), so the baseline
stays the app's own I/O as the feeds work lands:
1. who the caller is and, with hybrid fan-out (table fanout_pull_windows), the pull windows of the big
   authors they follow (one short transaction);
2. the caller's `userFeed` page and, with hybrid fan-out, one single-partition `authorPosts` query per
   pull window and a point read of the feed's floor document (where Cosmos stops holding all), at once;
3. what the caller must not see: mutes, blocks either way, posts removed since (one transaction);
4. the page's counters (one `read_items`), or with hydration (shared_code/services/feed_hydration.py)
   posts_v2, publicProfiles and counters (three `read_items`, at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from typing import Any

import psycopg
from azure.cosmos import exceptions

from bench.baselines import _ACT
from bench.context import BenchContext
from bench.loadgen import LoadResult, closed_loop
from devhost.settings_file import PROJECT_DIR

PULLED_CONTAINER = "authorPosts"
_HIDDEN = """SELECT muted_id::text FROM mutes WHERE muter_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT blocked_id::text FROM blocks WHERE blocker_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT blocker_id::text FROM blocks WHERE blocked_id = %(me)s AND deleted_at IS NULL
             UNION ALL SELECT id::text FROM posts
                       WHERE id = ANY(%(posts)s) AND (deleted_at IS NOT NULL OR status <> 'visible')"""
# As services/feed_reads.py asks it: the pull windows of the authors the caller follows (less muted and
# blocked ones) that may hold posts inside the retention.
_PULL_WINDOWS = """SELECT w.author_id::text, w.pulled_since, w.pulled_last, w.pulling
   FROM follows f JOIN fanout_pull_windows w ON w.author_id = f.followee_id
   WHERE f.follower_id = %(me)s AND f.deleted_at IS NULL
     AND (w.pulling OR w.pulled_last > %(after)s)
     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(me)s
                       AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                       AND ((b.blocker_id = %(me)s AND b.blocked_id = f.followee_id)
                            OR (b.blocker_id = f.followee_id AND b.blocked_id = %(me)s)))"""
_ORDER = "ORDER BY c.createdAt DESC, c.postId DESC"
_FEED_QUERY = f"SELECT * FROM c WHERE c.recipientId = @me AND c.createdAt > @edge {_ORDER}"  # noqa: S608
_PULLED_QUERY = (
    "SELECT c.postId, c.authorId, c.createdAt, c.version FROM c "  # noqa: S608 (constants)
    "WHERE c.authorId = @a AND c.createdAt > @edge AND c.createdAt >= @since "
    f"AND c.deleted = false AND c.status = 'visible' {_ORDER}"
)
_OLD_FEED_QUERY = "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC"
# Feed items live FEED_ITEM_TTL_DAYS (30 by default): what is older comes from PostgreSQL, never here.
_RETENTION = dt.timedelta(days=30)


def pulls_big_authors() -> bool:
    """Whether this commit's app pulls big authors' posts at read time (their container is declared)."""
    return (PROJECT_DIR / "cosmos_indexes" / f"{PULLED_CONTAINER}.json").exists()


def hydrates_entries() -> bool:
    """Whether this commit's feed read hydrates thin entries from posts_v2, publicProfiles, counters."""
    return (PROJECT_DIR / "shared_code" / "services" / "feed_hydration.py").exists()


class DirectFeedRead:
    def __init__(self, ctx: BenchContext, readers: list[str], subjects: list[str], limit: int) -> None:
        """`readers[i]` is the user id whose token subject is `subjects[i]`."""
        self._ctx = ctx
        self._readers = readers
        self._subjects = subjects
        self._limit = limit
        self._pulls = False
        self._hydrates = hydrates_entries()
        self._connections: list[psycopg.AsyncConnection[Any]] = []
        self._rng = random.Random(11)

    def describe(self) -> list[str]:
        steps = [
            "PostgreSQL: acting user" + (" + pull windows of big authors followed" if self._pulls else "")
        ]
        steps.append(
            "Cosmos: userFeed page query"
            + (
                f" + one {PULLED_CONTAINER} query per pull window + the floor's point read, at once"
                if self._pulls
                else ""
            )
        )
        steps.append("PostgreSQL: acting user + hidden authors and posts")
        steps.append(
            "Cosmos: posts_v2, publicProfiles and counters read_items, at once"
            if self._hydrates
            else "Cosmos: counters read_items"
        )
        return steps

    async def open(self, concurrency: int) -> None:
        self._connections = [
            await psycopg.AsyncConnection.connect(self._ctx.stack.postgres_url, autocommit=True)
            for _ in range(concurrency)
        ]
        cur = await self._connections[0].execute("SELECT to_regclass('fanout_pull_windows') IS NOT NULL")
        row = await cur.fetchone()
        self._pulls = bool(row and row[0]) and pulls_big_authors()

    async def close(self) -> None:
        for conn in self._connections:
            await conn.close()
        self._connections = []

    async def run(self, concurrency: int, seconds: float) -> LoadResult:
        db = self._ctx.db
        feed = db.get_container_client("userFeed")
        pulled = db.get_container_client(PULLED_CONTAINER) if self._pulls else None

        async def read(worker: int) -> str:
            index = self._rng.randrange(len(self._readers))
            me, subject = self._readers[index], self._subjects[index]
            conn = self._connections[worker]
            windows: list[tuple[str, dt.datetime]] = []
            now = dt.datetime.now(dt.UTC)
            async with conn.transaction():
                await conn.execute(_ACT, {"subject": subject, "role": "user"})
                if pulled is not None:
                    cur = await conn.execute(_PULL_WINDOWS, {"me": uuid.UUID(me), "after": now - _RETENTION})
                    windows = [(str(r[0]), r[1]) for r in await cur.fetchall()]
            if pulled is None:  # before hybrid feeds: the feed's newest page, nothing more
                fetches = [
                    _first_page(feed, _OLD_FEED_QUERY, [{"name": "@me", "value": me}], me, self._limit)
                ]
            else:
                edge = {"name": "@edge", "value": _cosmos_time(now - _RETENTION)}
                fetches = [
                    _first_page(feed, _FEED_QUERY, [{"name": "@me", "value": me}, edge], me, self._limit)
                ]
                fetches += [
                    _first_page(
                        pulled,
                        _PULLED_QUERY,
                        [
                            {"name": "@a", "value": author},
                            edge,
                            {"name": "@since", "value": _cosmos_time(since)},
                        ],
                        author,
                        self._limit,
                    )
                    for author, since in windows
                ]
                fetches.append(_floor(feed, me))
            pages = await asyncio.gather(*fetches)
            items = [item for page in pages for item in page if item.get("postId")]
            items.sort(key=lambda i: (str(i.get("createdAt")), str(i["postId"])), reverse=True)
            items = items[: self._limit]
            async with conn.transaction():
                await conn.execute(_ACT, {"subject": subject, "role": "user"})
                cur = await conn.execute(
                    _HIDDEN, {"me": uuid.UUID(me), "posts": [uuid.UUID(i["postId"]) for i in items]}
                )
                await cur.fetchall()
            posts = [str(i["postId"]) for i in items]
            counters = [(f"{p}:counts", p) for p in posts]
            if self._hydrates:
                authors = sorted({str(i["authorId"]) for i in items})
                await asyncio.gather(
                    db.get_container_client("posts_v2").read_items([(p, p) for p in posts]),
                    db.get_container_client("publicProfiles").read_items([(a, a) for a in authors]),
                    db.get_container_client("counters").read_items(counters),
                )
            else:
                await db.get_container_client("counters").read_items(counters)
            return "ok"

        return await closed_loop(read, concurrency, seconds, warmup_seconds=min(1.0, seconds / 4))


async def _first_page(
    container: Any, query: str, parameters: list[dict[str, Any]], key: str, limit: int
) -> list[dict[str, Any]]:
    pages = container.query_items(
        query, parameters=parameters, partition_key=key, max_item_count=limit
    ).by_page()
    try:
        first = await pages.__anext__()
    except StopAsyncIteration:
        return []
    return [item async for item in first]


def _cosmos_time(value: dt.datetime) -> str:
    """As shared_code.domain.feed_merge.cosmos_time stores times (UTC, 'Z'): string order is time order."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def _floor(feed: Any, me: str) -> list[dict[str, Any]]:
    """The feed's floor document, if it was ever trimmed (as a page of no entries: it is not one)."""
    with contextlib.suppress(exceptions.CosmosResourceNotFoundError):
        await feed.read_item(f"{me}:floor", partition_key=me)
    return []
