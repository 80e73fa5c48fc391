"""Reconcile: compare PostgreSQL (the truth) with the Cosmos DB projections, report each
difference and, on request, write the truth.

The expected documents are built by the same projection functions the relay uses,
from the events the current rows imply (domain.stored_event.ImpliedEvent), so the two cannot
disagree on shape.
Checked: posts_v2, publicProfiles, reactions, counters; and the feed of one user
(given) or of a sample of users. Rows are read in keyset pages and documents in
batched point reads (`read_items`), so the cost grows linearly with the data.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from azure.cosmos import exceptions
from azure.cosmos.aio import DatabaseProxy
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.db.unit_of_work import system_connection
from shared_code.domain.feed_merge import horizon, parse_time
from shared_code.domain.limits import REACTION_TYPES
from shared_code.domain.stored_event import ImpliedEvent
from shared_code.ops.feeds import DEFAULT_FEED_RETENTION, expected_feed_posts, rebuild_feed
from shared_code.projections.documents import (
    post_counts_document,
    post_document,
    profile_document,
    reaction_document,
    user_counts_document,
)
from shared_code.projections.writes import COUNTERS, FEED, POSTS, PROFILES, REACTIONS, VersionedUpsert

PAGE = 500
REPORT_LIMIT = 1000  # differences listed in full; the counts are always complete


@dataclass
class ReconcileReport:
    checked: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)
    repaired: int = 0

    def add(
        self, container: str, item_id: str, problem: str, expected: int | None, found: int | None
    ) -> None:
        key = f"{container}:{problem}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.differences) < REPORT_LIMIT:
            self.differences.append(
                {
                    "container": container,
                    "id": item_id,
                    "problem": problem,
                    "expectedVersion": expected,
                    "foundVersion": found,
                }
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "differenceCounts": self.counts,
            "differences": self.differences,
            "truncated": sum(self.counts.values()) > len(self.differences),
            "repaired": self.repaired,
        }


async def _pages(pool: AsyncConnectionPool, query: str) -> AsyncIterator[list[DictRow]]:
    """Rows of `query` by column name (which orders by its `id` column and takes %(after)s, %(limit)s),
    in keyset pages. Each query's columns are its own (a shape read once), so rows are dicts."""
    after: Any = None
    while True:
        async with system_connection(pool) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, {"after": after, "limit": PAGE})
            rows = await cur.fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


class Reconciler:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        database: DatabaseProxy,
        repair: bool,
        retention: timedelta = DEFAULT_FEED_RETENTION,
    ) -> None:
        self._retention = retention
        self._pool = pool
        self._db = database
        self._repair = repair
        self._writer = CosmosWriter(database)
        self.report = ReconcileReport()

    async def _compare(self, container: str, expected: Sequence[tuple[dict[str, Any], bool]]) -> None:
        """`expected`: (document, live) pairs. A live document must be there at its version;
        one that is gone in PostgreSQL must be absent or marked deleted."""
        if not expected:
            return
        key_field = {POSTS: "postId", PROFILES: "userId", REACTIONS: "postId", COUNTERS: "subjectId"}[
            container
        ]
        found = await self._db.get_container_client(container).read_items(
            [(doc["id"], doc[key_field]) for doc, _ in expected]
        )
        stored = {doc["id"]: doc for doc in found}
        self.report.checked[container] = self.report.checked.get(container, 0) + len(expected)
        repairs = []
        for doc, live in expected:
            current = stored.get(doc["id"])
            found_version = int(current["version"]) if current and "version" in current else None
            if live:
                if current is None and container == COUNTERS:
                    continue  # counters are a cache: a miss is rebuilt from PostgreSQL when read
                if current is None:
                    problem = "missing"
                elif found_version is not None and found_version < doc["version"]:
                    problem = "stale"
                elif current.get("deleted"):
                    problem = "deleted-but-live"
                else:
                    continue
            else:
                if current is None or current.get("deleted"):
                    continue
                problem = "live-but-deleted"
            self.report.add(container, doc["id"], problem, doc["version"], found_version)
            repairs.append(VersionedUpsert(container, doc))
        if self._repair and repairs:
            await self._writer.apply_all(repairs)
            self.report.repaired += len(repairs)

    async def posts(self) -> None:
        query = """
            SELECT p.id, p.author_id, u.username, pr.display_name, pr.avatar_url, p.content, p.status, p.created_at,
                   p.edited_at, p.version, p.deleted_at IS NULL AS live,
                   coalesce((SELECT json_agg(json_build_object('mediaId', m.id, 'contentType', m.content_type,
                                                               'blobPath', m.blob_path) ORDER BY pm.position)
                             FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
                             WHERE pm.post_id = p.id AND m.purged_at IS NULL), '[]'::json) AS media,
                   pc.reactions, pc.comments, pc.reposts, pc.version AS counts_version, p.quote_post_id
            FROM posts p JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
            JOIN post_counts pc ON pc.post_id = p.id
            WHERE (%(after)s::uuid IS NULL OR p.id > %(after)s) ORDER BY p.id LIMIT %(limit)s"""
        async for rows in _pages(self._pool, query):
            docs, counters = [], []
            for r in rows:
                live = bool(r["live"])
                author = {
                    "userId": str(r["author_id"]),
                    "username": r["username"],
                    "displayName": r["display_name"],
                    "avatarUrl": r["avatar_url"],
                }
                payload = {
                    "postId": str(r["id"]),
                    "authorId": str(r["author_id"]),
                    "author": author,
                    "content": r["content"],
                    "status": r["status"],
                    "createdAt": r["created_at"].isoformat(),
                    "editedAt": r["edited_at"].isoformat() if r["edited_at"] else None,
                    "media": r["media"],
                    "quotePostId": str(r["quote_post_id"]) if r["quote_post_id"] else None,
                }
                event_type = "post.updated" if live else "post.deleted"
                docs.append((post_document(ImpliedEvent(event_type, r["version"], payload)), live))
                if live:
                    counts = {
                        "postId": str(r["id"]),
                        "reactions": {t: int((r["reactions"] or {}).get(t, 0)) for t in REACTION_TYPES},
                        "comments": r["comments"],
                        "reposts": r["reposts"],
                        "version": r["counts_version"],
                    }
                    counters.append((post_counts_document(counts, None), True))
            await self._compare(POSTS, docs)
            await self._compare(COUNTERS, counters)

    async def profiles(self) -> None:
        query = """
            SELECT u.id, u.username, p.display_name, p.bio, p.avatar_url, u.version, u.deleted_at IS NULL AS live,
                   c.followers, c.following, c.posts, c.version AS counts_version
            FROM users u JOIN profiles p ON p.user_id = u.id JOIN user_counts c ON c.user_id = u.id
            WHERE (%(after)s::uuid IS NULL OR u.id > %(after)s) ORDER BY u.id LIMIT %(limit)s"""
        async for rows in _pages(self._pool, query):
            docs, counters = [], []
            for r in rows:
                live = bool(r["live"])
                payload = {
                    "userId": str(r["id"]),
                    "username": r["username"],
                    "displayName": r["display_name"],
                    "bio": r["bio"],
                    "avatarUrl": r["avatar_url"],
                }
                event = ImpliedEvent("profile.updated" if live else "user.deleted", r["version"], payload)
                docs.append((profile_document(event, deleted=not live), live))
                if live:
                    counts = {
                        "userId": str(r["id"]),
                        "followers": r["followers"],
                        "following": r["following"],
                        "posts": r["posts"],
                        "version": r["counts_version"],
                    }
                    counters.append((user_counts_document(counts, None), True))
            await self._compare(PROFILES, docs)
            await self._compare(COUNTERS, counters)

    async def reactions(self) -> None:
        query = """
            SELECT r.id, r.post_id, r.user_id, p.author_id, r.type, r.created_at, r.version,
                   r.deleted_at IS NULL AS live, pc.reactions, pc.comments, pc.reposts, pc.version AS counts_version
            FROM reactions r JOIN posts p ON p.id = r.post_id JOIN post_counts pc ON pc.post_id = r.post_id
            WHERE (%(after)s::uuid IS NULL OR r.id > %(after)s) ORDER BY r.id LIMIT %(limit)s"""
        async for rows in _pages(self._pool, query):
            docs = []
            for r in rows:
                live = bool(r["live"])
                counts = {
                    "postId": str(r["post_id"]),
                    "reactions": {t: int((r["reactions"] or {}).get(t, 0)) for t in REACTION_TYPES},
                    "comments": r["comments"],
                    "reposts": r["reposts"],
                    "version": r["counts_version"],
                }
                payload = {
                    "reactionId": str(r["id"]),
                    "postId": str(r["post_id"]),
                    "userId": str(r["user_id"]),
                    "postAuthorId": str(r["author_id"]),
                    "type": r["type"],
                    "previousType": r["type"] if not live else None,
                    "createdAt": r["created_at"].isoformat(),
                    "postCounts": counts,
                }
                event = ImpliedEvent("reaction.set" if live else "reaction.removed", r["version"], payload)
                docs.append((reaction_document(event), live))
            await self._compare(REACTIONS, docs)

    async def feed(self, user_id: UUID, per_author: int) -> None:
        """Each author's recent posts must be in the feed; nothing may be there whose post is gone or
        hidden or whose author the user does not follow (or has muted, or is blocked with). Older posts
        beyond the back-fill window may legitimately stay. A repair rebuilds the feed."""
        recipient = str(user_id)
        container = self._db.get_container_client(FEED)
        try:
            floor = await container.read_item(f"{recipient}:floor", partition_key=recipient)
        except exceptions.CosmosResourceNotFoundError:
            floor = None
        # Only what feeds keep: newer than the retention and the feed's trim floor (reads take the rest
        # from PostgreSQL), and not pulled authors' posts (reads pull those).
        edge = horizon(datetime.now(UTC), self._retention, parse_time(floor["floorAt"]) if floor else None)
        expected_posts = await expected_feed_posts(self._pool, user_id, per_author, edge)
        expected = {p["postId"] for p in expected_posts}
        present = {
            item["postId"]: item["authorId"]
            async for item in container.query_items(
                "SELECT c.postId, c.authorId FROM c WHERE c.recipientId = @r AND IS_DEFINED(c.postId)",
                parameters=[{"name": "@r", "value": recipient}],
                partition_key=recipient,
            )
        }
        allowed_authors = (
            {recipient} | {p["authorId"] for p in expected_posts} | await self._followed(user_id)
        )
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT id::text FROM posts WHERE id = ANY(%s) AND deleted_at IS NULL AND status = 'visible'",
                ([UUID(post_id) for post_id in present],),
            )
            showable = {row[0] for row in await cur.fetchall()}
        self.report.checked[FEED] = self.report.checked.get(FEED, 0) + 1
        problems = [(post_id, "missing") for post_id in sorted(expected - set(present))]
        problems += [
            (post_id, "extra")
            for post_id, author in sorted(present.items())
            if post_id not in showable or author not in allowed_authors
        ]
        for post_id, problem in problems:
            self.report.add(FEED, f"{recipient}:{post_id}", problem, None, None)
        if self._repair and problems:
            await rebuild_feed(self._pool, container, user_id, per_author, item_ttl=self._retention)
            self.report.repaired += len(problems)

    async def _followed(self, user_id: UUID) -> set[str]:
        """Authors whose posts may be in the user's feed: followed, not muted, no block either way."""
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                """SELECT f.followee_id::text FROM follows f
                   WHERE f.follower_id = %(u)s AND f.deleted_at IS NULL
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(u)s AND m.muted_id = f.followee_id
                                       AND m.deleted_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                       AND ((b.blocker_id = %(u)s AND b.blocked_id = f.followee_id)
                                         OR (b.blocker_id = f.followee_id AND b.blocked_id = %(u)s)))""",
                {"u": user_id},
            )
            return {row[0] for row in await cur.fetchall()}

    async def sample_users(self, size: int) -> list[UUID]:
        async with system_connection(self._pool) as conn:
            cur = await conn.execute("SELECT id FROM users WHERE deleted_at IS NULL")
            ids = [row[0] for row in await cur.fetchall()]
        return random.sample(ids, min(size, len(ids)))


async def reconcile(
    pool: AsyncConnectionPool,
    database: DatabaseProxy,
    repair: bool,
    feed_user: UUID | None = None,
    feed_sample: int = 10,
    per_author: int = 50,
    retention: timedelta = DEFAULT_FEED_RETENTION,
) -> ReconcileReport:
    reconciler = Reconciler(pool, database, repair, retention)
    await reconciler.profiles()
    await reconciler.posts()
    await reconciler.reactions()
    users = [feed_user] if feed_user else await reconciler.sample_users(feed_sample)
    for user in users:
        await reconciler.feed(user, per_author)
    return reconciler.report
