"""Posts seeded straight into PostgreSQL with their canonical rows and their `post.created` outbox rows
(payloads built with the app's own event model), as `POST /api/posts` would leave them: the relay then
publishes them like any other post. Run inside the caller's transaction, so nothing is claimable before
it commits."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from shared_code.domain.events import AuthorSnapshot, PostCreated, UserCounts
from shared_code.domain.stored_event import StoredEvent

CONTENT = "Seeded for the benchmark: an ordinary post of ordinary length, nothing more. "


async def seed_posts(
    conn: Any, authors: list[str], posts_per_author: int, spread_seconds: float = 0.0
) -> tuple[list[StoredEvent], int, int]:
    """`posts_per_author` posts by each author, their counts, the authors' post counts, and one
    `post.created` outbox row per post. With `spread_seconds`, the posts' creation times are spread over
    that many seconds before now, the authors interleaved (a feed that mixes them, as real ones do)."""
    author_column = [a for a in authors for _ in range(posts_per_author)]
    if spread_seconds:
        random.Random(len(author_column)).shuffle(author_column)
    step = spread_seconds / max(1, len(author_column))
    cur = await conn.execute(
        """INSERT INTO posts (author_id, content, created_at)
           SELECT a, %s || n, now() - make_interval(secs => n * %s::float8)
           FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(a, n)
           RETURNING id, author_id, created_at, status""",
        (CONTENT, step, author_column),
    )
    posts = await cur.fetchall()
    await conn.execute(
        "INSERT INTO post_counts (post_id) SELECT unnest(%s::uuid[])", ([p[0] for p in posts],)
    )
    cur = await conn.execute(
        """UPDATE user_counts SET posts = posts + %s, version = version + %s WHERE user_id = ANY(%s::uuid[])
           RETURNING user_id, followers, following, posts, version""",
        (posts_per_author, posts_per_author, authors),
    )
    counts = {row[0]: row for row in await cur.fetchall()}
    cur = await conn.execute(
        """SELECT u.id, u.username, p.display_name, p.avatar_url
           FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = ANY(%s::uuid[])""",
        (authors,),
    )
    snapshots = {
        row[0]: AuthorSnapshot(user_id=row[0], username=row[1], display_name=row[2], avatar_url=row[3])
        for row in await cur.fetchall()
    }
    seen: Counter[uuid.UUID] = Counter()
    rows = []
    for post_id, author_id, created_at, status in posts:
        seen[author_id] += 1
        user_id, followers, following, total, version = counts[author_id]
        back = posts_per_author - seen[author_id]
        event = PostCreated(
            post_id=post_id,
            author=snapshots[author_id],
            content=CONTENT,
            media=(),
            status=status,
            created_at=created_at,
            author_counts=UserCounts(
                user_id=user_id,
                followers=followers,
                following=following,
                posts=total - back,
                version=version - back,
            ),
        )
        metadata = {"correlationId": uuid.uuid4().hex, "actor": "bench-seed", "actorUserId": str(author_id)}
        rows.append((post_id, event.to_json(), metadata))
    async with (
        conn.cursor() as copy_cursor,
        copy_cursor.copy(
            """COPY outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload, metadata)
               FROM STDIN"""
        ) as copy,
    ):
        for post_id, payload, metadata in rows:
            await copy.write_row(("post", post_id, 1, "post.created", Jsonb(payload), Jsonb(metadata)))
    async with conn.cursor(row_factory=class_row(StoredEvent)) as events_cursor:
        await events_cursor.execute(
            """SELECT id, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload,
                      metadata, created_at, attempts FROM outbox
               WHERE aggregate_type = 'post' AND aggregate_id = ANY(%s) AND event_type = 'post.created'
               ORDER BY id""",
            ([p[0] for p in posts],),
        )
        events = await events_cursor.fetchall()
    return events, events[0].id, events[-1].id
