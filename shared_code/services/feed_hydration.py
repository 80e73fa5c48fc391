"""A feed entry (a reference: postId, authorId, createdAt) becomes a FeedItem at read time, from the
current post (`posts_v2`), the author's current profile (`publicProfiles`) and the post's counters.

Feed items are references, not copies (docs/cost-model.md "Authors and edits stay current"): an edit
rewrites one posts_v2 document and a profile change one publicProfiles document, and every feed shows
them at its next read. A page costs one batched `read_items` per container (posts, profiles,
counters), asked concurrently, never one request per item; what the projections miss (a counters
cache past its TTL, a projection not caught up yet) comes from PostgreSQL in one short transaction.

Entries may be of any shape a feed ever held: only `postId`, `authorId` and `createdAt` are read, so
feed items written before items became references (with author, content and media copies) hydrate
the same way, and their stale copies are never shown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.adapters.media_signing import MediaUrls
from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.events import MediaRef
from shared_code.projections.documents import post_counts_document
from shared_code.projections.writes import COUNTERS, POSTS, PROFILES, VersionedUpsert
from shared_code.schemas.posts import Author, Media
from shared_code.schemas.reads import FeedItem
from shared_code.services.projection_queries import refill
from shared_code.services.quotes import unavailable
from shared_code.services.reaction_counts import full_reaction_counts


@dataclass(frozen=True)
class Sources:
    """What hydration found for a page, keyed by post id (posts, counters) and user id (profiles)."""

    posts: dict[str, dict[str, Any]]
    profiles: dict[str, dict[str, Any]]
    counts: dict[str, dict[str, Any]]


def shows(post: dict[str, Any] | None, profile: dict[str, Any] | None) -> bool:
    """Whether a feed shows a post: it exists, is neither deleted nor hidden, and its author's account
    still exists."""
    if post is None or post.get("deleted") or post.get("status", "visible") != "visible":
        return False
    return not (profile is not None and profile.get("deleted"))


def author_of(user_id: str, profile: dict[str, Any] | None) -> Author:
    """The author as a reader sees them now (publicProfiles-shaped: userId, username, displayName,
    avatarUrl)."""
    profile = profile or {}
    return Author(
        user_id=UUID(user_id),
        username=profile.get("username") or "",
        display_name=profile.get("displayName") or "",
        avatar_url=profile.get("avatarUrl"),
    )


def media_of(media: Sequence[dict[str, Any]], media_urls: MediaUrls) -> list[Media]:
    refs = [MediaRef.model_validate(m) for m in media]
    return [Media(media_id=r.media_id, content_type=r.content_type, url=media_urls.url(r)) for r in refs]


def hydrated_item(
    entry: dict[str, Any],
    post: dict[str, Any] | None,
    profile: dict[str, Any] | None,
    counts: dict[str, Any] | None,
    media_urls: MediaUrls,
) -> FeedItem | None:
    """The FeedItem for one entry from the current post, profile and counts; None when the post is
    no longer shown. Pure (signing a media URL does no I/O)."""
    if post is None or not shows(post, profile):
        return None
    author_id = str(post.get("authorId") or entry["authorId"])
    if profile is None:  # not projected yet and not in PostgreSQL either: the post's own snapshot
        profile = post.get("author")
    return FeedItem(
        post_id=UUID(str(entry["postId"])),
        author_id=UUID(author_id),
        author=author_of(author_id, profile),
        content=post.get("content", ""),
        media=media_of(post.get("media") or [], media_urls),
        created_at=post.get("createdAt") or entry["createdAt"],
        edited_at=post.get("editedAt"),
        counts=full_reaction_counts((counts or {}).get("reactions")),
        comment_count=int((counts or {}).get("comments", 0)),
        # Reposts and quotes (services/reposts.py, services/quotes.py): who brought the entry, and the
        # quoted post's id (services/quotes.with_quotes shows it as the reader may see it).
        repost_count=int((counts or {}).get("reposts", 0)),
        reposted_by=entry.get("repostedBy"),
        reposted_at=entry.get("repostedAt"),
        quoted=unavailable(UUID(str(post["quotePostId"]))) if post.get("quotePostId") else None,
    )


def hydrate(entries: Sequence[dict[str, Any]], sources: Sources, media_urls: MediaUrls) -> list[FeedItem]:
    """Every entry whose post still shows, in the entries' order. Pure."""
    items = []
    for entry in entries:
        post = sources.posts.get(entry["postId"])
        author_id = str((post or {}).get("authorId") or entry["authorId"])
        item = hydrated_item(
            entry, post, sources.profiles.get(author_id), sources.counts.get(entry["postId"]), media_urls
        )
        if item is not None:
            items.append(item)
    return items


# --- reading the sources ---------------------------------------------------------------------------


async def _by_key(db: DatabaseProxy, container: str, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if not keys:
        return []
    found: list[dict[str, Any]] = await db.get_container_client(container).read_items(keys)
    return found


@contextlib.asynccontextmanager
async def _guarded(budget: RequestBudget | None) -> AsyncIterator[None]:
    if budget is None:
        yield
    else:
        async with budget.guard():
            yield


async def projected_sources(
    db: DatabaseProxy, post_ids: Sequence[str], author_ids: Sequence[str], budget: RequestBudget | None = None
) -> Sources:
    """posts_v2, publicProfiles and counters for a page: three batched reads, at once."""
    async with _guarded(budget):
        posts, profiles, counts = await asyncio.gather(
            _by_key(db, POSTS, [(p, p) for p in post_ids]),
            _by_key(db, PROFILES, [(a, a) for a in author_ids]),
            _by_key(db, COUNTERS, [(f"{p}:counts", p) for p in post_ids]),
        )
    return Sources(
        posts={str(d["postId"]): d for d in posts},
        profiles={str(d["userId"]): d for d in profiles},
        counts={str(d["subjectId"]): d for d in counts},
    )


@dataclass
class ReadAhead:
    """The projections' sources of a page read ahead, while the page is still being screened against
    PostgreSQL (services/feed_reads.py): the two wait for different stores, so a page waits for the
    slower of them instead of both in turn. Keeps what was asked (found or not), so the hydration then
    reads only what the read-ahead did not ask."""

    found: Sources = field(default_factory=lambda: Sources({}, {}, {}))
    asked_posts: set[str] = field(default_factory=set)
    asked_authors: set[str] = field(default_factory=set)

    async def fetch(
        self, db: DatabaseProxy, entries: Sequence[dict[str, Any]], budget: RequestBudget | None = None
    ) -> None:
        posts = [p for p in dict.fromkeys(e["postId"] for e in entries) if p not in self.asked_posts]
        authors = [
            a for a in dict.fromkeys(str(e["authorId"]) for e in entries) if a not in self.asked_authors
        ]
        if not posts and not authors:
            return
        found = await projected_sources(db, posts, authors, budget)
        self.asked_posts.update(posts)
        self.asked_authors.update(authors)
        self.found.posts.update(found.posts)
        self.found.profiles.update(found.profiles)
        self.found.counts.update(found.counts)


@dataclass(frozen=True)
class _PostRow:
    post_id: UUID
    author_id: UUID
    content: str
    status: str
    deleted: bool
    created_at: datetime
    edited_at: datetime | None
    version: int
    media: list[dict[str, Any]]
    quote_post_id: UUID | None


@dataclass(frozen=True)
class _ProfileRow:
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    deleted: bool


@dataclass(frozen=True)
class _CountsRow:
    post_id: UUID
    reactions: dict[str, int] | None
    comments: int
    reposts: int
    version: int


async def canonical_sources(
    uow: UnitOfWork, post_ids: Sequence[str], author_ids: Sequence[str], count_ids: Sequence[str]
) -> Sources:
    """What the projections missed, from PostgreSQL, in the projections' shapes: three statements in
    the caller's one short transaction."""
    posts = (
        await fetch_all(
            uow.conn,
            _PostRow,
            """SELECT p.id AS post_id, p.author_id, p.content, p.status, p.deleted_at IS NOT NULL AS deleted,
                      p.created_at, p.edited_at, p.version,
                      coalesce((SELECT json_agg(json_build_object('mediaId', m.id, 'contentType', m.content_type,
                                                                  'blobPath', m.blob_path) ORDER BY pm.position)
                                FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
                                WHERE pm.post_id = p.id AND m.purged_at IS NULL), '[]'::json) AS media,
                      p.quote_post_id
               FROM posts p WHERE p.id = ANY(%s)""",
            ([UUID(p) for p in post_ids],),
        )
        if post_ids
        else []
    )
    profiles = (
        await fetch_all(
            uow.conn,
            _ProfileRow,
            """SELECT u.id AS user_id, u.username, pr.display_name, pr.avatar_url,
                      u.deleted_at IS NOT NULL AS deleted
               FROM users u JOIN profiles pr ON pr.user_id = u.id WHERE u.id = ANY(%s)""",
            ([UUID(a) for a in author_ids],),
        )
        if author_ids
        else []
    )
    counts = (
        await fetch_all(
            uow.conn,
            _CountsRow,
            "SELECT post_id, reactions, comments, reposts, version FROM post_counts WHERE post_id = ANY(%s)",
            ([UUID(p) for p in count_ids],),
        )
        if count_ids
        else []
    )
    return Sources(
        posts={
            str(r.post_id): {
                "postId": str(r.post_id),
                "authorId": str(r.author_id),
                "content": "" if r.deleted else r.content,
                "media": [] if r.deleted else r.media,
                "status": r.status,
                "deleted": r.deleted,
                "createdAt": r.created_at.isoformat(),
                "editedAt": r.edited_at.isoformat() if r.edited_at else None,
                "version": r.version,
                "quotePostId": str(r.quote_post_id) if r.quote_post_id else None,
            }
            for r in posts
        },
        profiles={
            str(r.user_id): {
                "userId": str(r.user_id),
                "username": r.username,
                "displayName": r.display_name,
                "avatarUrl": r.avatar_url,
                "deleted": r.deleted,
            }
            for r in profiles
        },
        counts={
            str(r.post_id): post_counts_document(
                {
                    "postId": r.post_id,
                    "reactions": full_reaction_counts(r.reactions),
                    "comments": r.comments,
                    "reposts": r.reposts,
                    "version": r.version,
                },
                None,
            )
            for r in counts
        },
    )


def _missing(entries: Sequence[dict[str, Any]], found: Sources) -> tuple[list[str], list[str], list[str]]:
    """The posts, authors and counters the projections did not have (each once)."""
    posts = [e["postId"] for e in entries if e["postId"] not in found.posts]
    authors = {
        str((found.posts.get(e["postId"]) or {}).get("authorId") or e["authorId"]) for e in entries
    } - set(found.profiles)
    counts = [e["postId"] for e in entries if e["postId"] not in found.counts]
    return list(dict.fromkeys(posts)), sorted(authors), list(dict.fromkeys(counts))


async def hydrate_feed_entries(
    db: DatabaseProxy,
    run: Transactions,
    entries: list[dict[str, Any]],
    media_urls: MediaUrls,
    budget: RequestBudget | None = None,
    read_ahead: ReadAhead | None = None,
) -> list[FeedItem]:
    """The FeedItems of a page of feed entries (dicts with at least postId, authorId, createdAt), in
    their order, less posts no longer shown. With a `budget`, the Cosmos reads run under it (a
    CosmosUnavailable then means: serve the page another way) and rebuilt counters are written back.
    With a `read_ahead`, only what it did not ask is read from the projections."""
    if not entries:
        return []
    if read_ahead is not None:
        await read_ahead.fetch(db, entries, budget)
        found = Sources(
            dict(read_ahead.found.posts), dict(read_ahead.found.profiles), dict(read_ahead.found.counts)
        )
    else:
        post_ids = list(dict.fromkeys(e["postId"] for e in entries))
        author_ids = list(dict.fromkeys(str(e["authorId"]) for e in entries))
        found = await projected_sources(db, post_ids, author_ids, budget)
    posts, authors, counts = _missing(entries, found)
    if posts or authors or counts:
        canonical = await run(lambda uow: canonical_sources(uow, posts, authors, counts))
        found.posts.update(canonical.posts)
        found.profiles.update(canonical.profiles)
        found.counts.update(canonical.counts)
        if budget is not None and canonical.counts:
            await refill(db, budget, [VersionedUpsert(COUNTERS, doc) for doc in canonical.counts.values()])
    return hydrate(entries, found, media_urls)


async def current_authors(
    db: DatabaseProxy, run: Transactions, user_ids: Sequence[str], budget: RequestBudget | None = None
) -> dict[str, Author]:
    """Each user as readers see them now (for a notification's actor, say): one batched read of
    publicProfiles, and PostgreSQL for those it does not have yet."""
    wanted = list(dict.fromkeys(user_ids))
    if not wanted:
        return {}
    found = await projected_sources(db, [], wanted, budget)
    missing = [u for u in wanted if u not in found.profiles]
    if missing:
        found.profiles.update((await run(lambda uow: canonical_sources(uow, [], missing, []))).profiles)
    return {u: author_of(u, found.profiles.get(u)) for u in wanted}
