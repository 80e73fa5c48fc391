"""The physical limits each scenario is measured against, in the same run and at the same concurrency:

- `CreatePostSql`: the very SQL transaction `POST /api/posts` commits (unit_of_work + posts.create_post +
  the outbox insert), issued directly with psycopg, one connection per worker, no app code in between.
  Its events are valid `post.created` events, so the host's relay publishes them exactly like the API's
  (both sides leave the same work behind).
- `cosmos_upserts`: given documents upserted directly with the azure-cosmos SDK (aio, one client, the
  same process shape as the host), `concurrency` at a time, into `bench_baseline` (the same container
  definitions, no change-feed function behind it).

Keep `CreatePostSql` in step with shared_code/db/unit_of_work.py, shared_code/services/posts.py and
shared_code/services/authors.py (the author snapshot and post count it writes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from azure.cosmos.aio import DatabaseProxy
from psycopg.types.json import Jsonb

from bench.histogram import LatencyHistogram
from bench.loadgen import LoadResult, closed_loop

_ACT = """SELECT set_config('chorus.subject', %(subject)s, true),
                 set_config('chorus.role', %(role)s, true),
                 set_config('chorus.user_id', coalesce(
                     (SELECT id::text FROM users WHERE auth_subject = %(subject)s AND deleted_at IS NULL),
                     ''), true)"""
_INSERT_POST = "INSERT INTO posts (author_id, content) VALUES (%s, %s) RETURNING id, created_at, status"
_INSERT_COUNTS = "INSERT INTO post_counts (post_id) VALUES (%s)"
_COUNT_POST = """UPDATE user_counts SET posts = posts + %s, version = version + 1 WHERE user_id = %s
                 RETURNING user_id, followers, following, posts, version"""
_AUTHOR = """SELECT u.id, u.username, p.display_name, p.avatar_url
             FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = %s"""
_OUTBOX = """INSERT INTO outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload,
                                 metadata)
             VALUES (%s, %s, %s, %s, %s, %s)"""


class CreatePostSql:
    """`POST /api/posts`'s transaction over direct psycopg connections (one per worker)."""

    def __init__(self, url: str, subjects: Sequence[str]) -> None:
        self._url = url
        self._subjects = list(subjects)
        self._connections: list[psycopg.AsyncConnection[Any]] = []

    async def open(self) -> None:
        self._connections = [
            await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, application_name="bench-baseline"
            )
            for _ in self._subjects
        ]

    async def close(self) -> None:
        for conn in self._connections:
            await conn.close()

    async def run(self, concurrency: int, seconds: float, warmup: float, content: str) -> LoadResult:
        async def transaction(worker: int) -> str:
            await create_post_transaction(self._connections[worker], self._subjects[worker], content)
            return "ok"

        return await closed_loop(transaction, concurrency, seconds, warmup_seconds=warmup)


async def create_post_transaction(conn: psycopg.AsyncConnection[Any], subject: str, content: str) -> None:
    async with conn.transaction():
        cur = await conn.execute(_ACT, {"subject": subject, "role": "user"})
        acting = await cur.fetchone()
        assert acting is not None
        assert acting[2], f"{subject} is not a user"
        me = uuid.UUID(acting[2])
        cur = await conn.execute(_INSERT_POST, (me, content))
        row = await cur.fetchone()
        assert row is not None
        post_id, created_at, status = row
        await conn.execute(_INSERT_COUNTS, (post_id,))
        cur = await conn.execute(_COUNT_POST, (1, me))
        counts = await cur.fetchone()
        assert counts is not None
        cur = await conn.execute(_AUTHOR, (me,))
        author = await cur.fetchone()
        assert author is not None
        payload = {
            "postId": str(post_id),
            "author": {
                "userId": str(author[0]),
                "username": author[1],
                "displayName": author[2],
                "avatarUrl": author[3],
            },
            "content": content,
            "media": [],
            "status": status,
            "createdAt": created_at.isoformat(),
            "authorCounts": {
                "userId": str(counts[0]),
                "followers": counts[1],
                "following": counts[2],
                "posts": counts[3],
                "version": counts[4],
            },
        }
        metadata = {"correlationId": uuid.uuid4().hex, "actor": subject, "actorUserId": str(me)}
        async with conn.cursor() as outbox:
            await outbox.executemany(
                _OUTBOX, [("post", post_id, 1, "post.created", Jsonb(payload), Jsonb(metadata))]
            )


async def cosmos_upserts(
    db: DatabaseProxy, groups: Sequence[Sequence[tuple[str, dict[str, Any]]]], concurrency: int
) -> dict[str, Any]:
    """Upsert each group's documents (container, document) concurrently, `concurrency` groups in flight.
    A group is what one unit of the product's work writes (an event's documents, or one feed item)."""
    histogram = LatencyHistogram()
    queue = list(reversed(groups))
    documents = sum(len(g) for g in groups)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while queue:
            group = queue.pop()
            began = time.perf_counter()
            results = await asyncio.gather(
                *(db.get_container_client(name).upsert_item(doc) for name, doc in group),
                return_exceptions=True,
            )
            failures += sum(isinstance(r, BaseException) for r in results)
            histogram.record_seconds(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "groups": len(groups),
        "documents": documents,
        "failures": failures,
        "seconds": round(seconds, 3),
        "groups_per_s": round(len(groups) / seconds, 1),
        "documents_per_s": round(documents / seconds, 1),
        "latency": histogram.summary(),
        "_histogram": histogram,
    }
