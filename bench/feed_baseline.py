"""`GET /api/feed`'s I/O without the app: the same PostgreSQL statements over psycopg and the same Cosmos
queries and batched reads over azure-cosmos, one connection per worker, kept open across rounds. The
baseline for feed_read and for celebrity's read of a feed that follows big (pulled) authors.

Keep it in step with shared_code/services/feed_reads.py (and the hydration it calls, when there is one):
1. who the caller is (its own short transaction);
2. the caller's `userFeed` page (one single-partition query);
3. where the app pulls big authors' posts at read time (the `authorPosts` container, partitioned by
   /authorId, declared in cosmos_indexes/): the big authors the caller follows (one PostgreSQL query) and
   one single-partition query per big author for its newest posts;
4. the page's counters (one `read_items`);
5. what the caller must not see: mutes, blocks either way, posts removed since (one transaction).
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg

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
_BIG_FOLLOWED = """SELECT f.followee_id::text FROM follows f JOIN user_counts c ON c.user_id = f.followee_id
                   WHERE f.follower_id = %(me)s AND f.deleted_at IS NULL AND c.followers > %(threshold)s"""


def pulls_big_authors() -> bool:
    """Whether this commit's app pulls big authors' posts at read time (their container is declared)."""
    return (PROJECT_DIR / "cosmos_indexes" / f"{PULLED_CONTAINER}.json").exists()


class DirectFeedRead:
    def __init__(
        self,
        ctx: BenchContext,
        readers: list[str],
        subjects: list[str],
        limit: int,
        threshold: int | None = None,
    ) -> None:
        """`readers[i]` is the user id whose token subject is `subjects[i]`."""
        self._ctx = ctx
        self._readers = readers
        self._subjects = subjects
        self._limit = limit
        self._threshold = threshold if threshold is not None and pulls_big_authors() else None
        self._connections: list[psycopg.AsyncConnection[Any]] = []
        self._rng = random.Random(11)

    def describe(self) -> list[str]:
        steps = ["PostgreSQL: acting user", "Cosmos: userFeed page query"]
        if self._threshold is not None:
            steps += [
                "PostgreSQL: big authors followed",
                f"Cosmos: one {PULLED_CONTAINER} query per big author followed",
            ]
        steps += ["Cosmos: counters read_items", "PostgreSQL: acting user + hidden authors and posts"]
        return steps

    async def open(self, concurrency: int) -> None:
        self._connections = [
            await psycopg.AsyncConnection.connect(self._ctx.stack.postgres_url, autocommit=True)
            for _ in range(concurrency)
        ]

    async def close(self) -> None:
        for conn in self._connections:
            await conn.close()
        self._connections = []

    async def run(self, concurrency: int, seconds: float) -> LoadResult:
        db = self._ctx.db
        feed = db.get_container_client("userFeed")
        counters = db.get_container_client("counters")
        pulled = db.get_container_client(PULLED_CONTAINER) if self._threshold is not None else None

        async def read(worker: int) -> str:
            index = self._rng.randrange(len(self._readers))
            me, subject = self._readers[index], self._subjects[index]
            conn = self._connections[worker]
            big: list[str] = []
            async with conn.transaction():
                await conn.execute(_ACT, {"subject": subject, "role": "user"})
                if pulled is not None:
                    cur = await conn.execute(
                        _BIG_FOLLOWED, {"me": uuid.UUID(me), "threshold": self._threshold}
                    )
                    big = [str(row[0]) for row in await cur.fetchall()]
            items = await _first_page(
                feed,
                "SELECT * FROM c WHERE c.recipientId = @me ORDER BY c.createdAt DESC",
                [{"name": "@me", "value": me}],
                me,
                self._limit,
            )
            for author in big:
                assert pulled is not None
                items += await _first_page(
                    pulled,
                    "SELECT * FROM c WHERE c.authorId = @a ORDER BY c.createdAt DESC",
                    [{"name": "@a", "value": author}],
                    author,
                    self._limit,
                )
            items.sort(key=lambda i: (i.get("createdAt") or "", i.get("postId") or ""), reverse=True)
            items = items[: self._limit]
            await counters.read_items([(f"{i['postId']}:counts", i["postId"]) for i in items])
            async with conn.transaction():
                await conn.execute(_ACT, {"subject": subject, "role": "user"})
                cur = await conn.execute(
                    _HIDDEN, {"me": uuid.UUID(me), "posts": [uuid.UUID(i["postId"]) for i in items]}
                )
                await cur.fetchall()
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
