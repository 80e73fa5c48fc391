"""Home feeds in Cosmos DB (`userFeed`, one item per recipient per post).

Hybrid fan-out: an author with more followers than FANOUT_MAX_FOLLOWERS is not fanned out (only the
author's own item is written); `audience` decides it, for posts and for anything else fanned out by
the same rule, and records the author's pull window (table fanout_pull_windows) before a post is
skipped, so a feed read pulls it from authorPosts (services/feed_reads.py). Feeds are bounded: an
item expires FEED_ITEM_TTL_DAYS after its post was created (a Cosmos ttl), and a feed is trimmed to
about FEED_MAX_ITEMS, leaving a floor document that tells reads where Cosmos stops holding all.

Fan-out reads followers from PostgreSQL in pages (keyset on follower id) and
writes feed items with bounded concurrency. Follows back-fill; unfollows,
blocks and mutes remove. Every operation is idempotent: an item's id is
`${recipientId}:${postId}`, and removing what is not there is not an error.

Fan-out never goes backwards. The change feed is at least once, a wiped lease
container replays it from the beginning, and an operator may replay a recorded
failed batch long after: so a posts_v2 document handed to fan-out may be older
than the post is now. Three checks keep an old version from undoing a newer one:
1. before: the post's current posts_v2 version is read; a document older than it
   is skipped (the newer version's own change does the feeds);
2. each feed item is written only over an older `postVersion` (a conditional
   patch; a create when absent), so an edit is never undone item by item;
3. after: posts_v2 is read again; if a newer version arrived meanwhile (its
   removal may have run before our writes), that version is fanned out again.

Feed items are references (recipient, post, author, createdAt, postVersion): what a feed shows of a
post, its author and its counts is read at read time (services/feed_hydration.py). So an edit changes
no feed item: once a visible version's fan-out has completed, a later visible version (an edit) finds
that recorded in the post's fan-out state (`${postId}:fanout` in `counters`) and writes nothing. The
state is marked incomplete before a removal starts and complete after any fan-out ends, so a fan-out
that failed half-way, or versions the change feed coalesced (it delivers the latest version only),
still get a full fan-out.

A repost by an account above FANOUT_MAX_FOLLOWERS is not fanned out: readers pull it from the
reposter's authorPosts partition (services/pulled_reposts.py), as they pull big authors' posts.
Reposts put the original post into the reposter's followers' feeds as the same item
(`${recipientId}:${postId}`, so once per feed), carrying `repostedBy`/`repostedAt`: the newest
repost by someone the recipient follows. An item's `createdAt` is its feed position, set once
when the item is created (the post's time, or the repost's time when a repost brought it) and
never moved: a keyset cursor on (createdAt, postId) must find every item where it was. A later
repost only changes `repostedBy`; undoing one recomputes what keeps the item (`FeedEntryKeeper`),
and the item goes when nothing does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from azure.core import MatchConditions
from azure.cosmos import exceptions
from azure.cosmos.aio import ContainerProxy
from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import system_connection
from shared_code.domain.feed_merge import (
    cosmos_time,
    is_pulled,
    item_ttl_seconds,
    parse_time,
    trim_split,
    trims_after,
)
from shared_code.projections.writes import NO_EXPIRY
from shared_code.services.author_access import author_visible_sql

log = logging.getLogger("chorus.feeds")

T = TypeVar("T")


@dataclass(frozen=True)
class RepostRef:
    """Who reposted, and when (`feed_time`: the form feed items hold)."""

    user_id: str
    at: str


def feed_time(value: datetime | str) -> str:
    """A repost's time as feed items hold every time (the projections' form, `cosmos_time`), so that it
    orders among the posts' createdAt values and other reposts' times as Cosmos DB compares strings."""
    return cosmos_time(parse_time(value))


def feed_item(recipient_id: str, post: dict[str, Any], repost: RepostRef | None = None) -> dict[str, Any]:
    """The feed item for one recipient, from a `posts_v2` document: a reference to the post, not a copy
    of it (readers hydrate it with the current post and author: services/feed_hydration.py). Brought by
    `repost` if given: its feed position is then the repost's time, and it names the reposter."""
    item = {
        "id": f"{recipient_id}:{post['postId']}",
        "recipientId": recipient_id,
        "postId": post["postId"],
        "authorId": post["authorId"],
        "createdAt": feed_time(repost.at if repost else post["createdAt"])
        if repost or post.get("createdAt")
        else None,
        "postVersion": post.get("version"),
        "correlationId": post.get("correlationId"),
    }
    if repost is not None:  # only then: a post's own item keeps its small fixed shape
        item.update(repostedBy=repost.user_id, repostedAt=repost.at)
    return item


@dataclass(frozen=True)
class FeedEntryKeeper:
    """What may keep a post in one recipient's feed, as PostgreSQL says now."""

    recipient: str
    # The post is visible and the recipient may see its author (no block, no mute, within reach).
    may_see: bool
    # The recipient is the author or follows them.
    follows_author: bool
    # The newest live repost of the post by the recipient or someone they follow (and have not muted).
    reposted_by: str | None
    reposted_at: datetime | None

    def decision(self) -> tuple[str, RepostRef | None]:
        """("delete", None): nothing keeps the item; ("keep", repost or None): it stays, shown as
        reposted by `repost` (None: by nobody, the recipient follows the author)."""
        if not self.may_see or not (self.follows_author or self.reposted_by):
            return "delete", None
        if self.reposted_by and self.reposted_at:
            return "keep", RepostRef(self.reposted_by, feed_time(self.reposted_at))
        return "keep", None


def fanout_state_document(post: dict[str, Any], visible: bool, complete: bool) -> dict[str, Any]:
    """The post's fan-out state: which version's fan-out last ran, whether it put the post in feeds
    (visible) or took it out, and whether it completed. It never expires while the post lives (a
    removal of a deleted post deletes it)."""
    post_id = str(post["postId"])
    return {
        "id": f"{post_id}:fanout",
        "subjectId": post_id,
        "kind": "fanout",
        "version": _version(post),
        "visible": visible,
        "complete": complete,
        "ttl": NO_EXPIRY,
    }


def already_in_feeds(state: dict[str, Any] | None, post: dict[str, Any]) -> bool:
    """Whether a visible version needs no feed writes: a fan-out that put the post in feeds completed,
    and no removal started since. Edits then cost O(1), not O(followers). Pure."""
    return (
        state is not None
        and bool(state.get("visible"))
        and bool(state.get("complete"))
        and int(state.get("version") or 0) <= _version(post)
        and shows_in_feeds(post)
    )


# A post as feeds need it, in one query: the author's snapshot and the media in order. Read by
# back-fill and by feed rebuilds into a `FeedPostRow`; `feed_post_from_row` makes it posts_v2-shaped.
FEED_POST_COLUMNS = """p.id AS post_id, p.author_id, u.username, pr.display_name, pr.avatar_url, p.content,
    p.created_at, p.edited_at, p.version, p.quote_post_id,
    coalesce((SELECT json_agg(json_build_object('mediaId', m.id, 'contentType', m.content_type,
                                                'blobPath', m.blob_path) ORDER BY pm.position)
              FROM post_media pm JOIN media_assets m ON m.id = pm.media_id
              WHERE pm.post_id = p.id AND m.purged_at IS NULL), '[]'::json) AS media"""


@dataclass(frozen=True)
class FeedPostRow:
    """A post as FEED_POST_COLUMNS reads it."""

    post_id: UUID
    author_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    content: str
    created_at: datetime
    edited_at: datetime | None
    version: int
    quote_post_id: UUID | None
    media: list[dict[str, Any]]


@dataclass(frozen=True)
class _RepostedPostRow(FeedPostRow):
    reposted_at: datetime


def feed_post_from_row(row: FeedPostRow) -> dict[str, Any]:
    return {
        "postId": str(row.post_id),
        "authorId": str(row.author_id),
        "author": {
            "userId": str(row.author_id),
            "username": row.username,
            "displayName": row.display_name,
            "avatarUrl": row.avatar_url,
        },
        "content": row.content,
        "createdAt": cosmos_time(row.created_at),
        "editedAt": cosmos_time(row.edited_at) if row.edited_at else None,
        "version": row.version,
        "media": row.media,
        "quotePostId": str(row.quote_post_id) if row.quote_post_id else None,
    }


# What a newer version changes in a feed item (the rest is fixed; content and author are read at read time).
_EDITABLE_ITEM_FIELDS = ("postVersion", "correlationId")


def _version(post: dict[str, Any]) -> int:
    return int(post.get("version") or 0)


def shows_in_feeds(post: dict[str, Any]) -> bool:
    return not post.get("deleted") and post.get("status", "visible") == "visible"


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[object]], concurrency: int) -> int:
    """`work(item)` for every item, at most `concurrency` at once; returns how many ran. Fails on the
    first error (the rest are cancelled): callers are idempotent and retried as a whole."""
    semaphore = asyncio.Semaphore(concurrency)

    async def run(item: T) -> None:
        async with semaphore:
            await work(item)

    tasks = [asyncio.create_task(run(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return len(tasks)


class FeedService:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        feed: ContainerProxy,
        page_size: int = 1000,
        concurrency: int = 64,
        backfill_posts: int = 50,
        posts: ContainerProxy | None = None,
        max_followers: int = 10_000,
        item_ttl: timedelta = timedelta(days=30),
        max_items: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fanout_states: ContainerProxy | None = None,
    ) -> None:
        self._pool = pool
        self._feed = feed
        self._max_followers = max_followers
        self._item_ttl = item_ttl
        self._max_items = max_items
        self._clock = clock
        # posts_v2, where the current version of a post is read (None: no version gate, e.g. a rebuild)
        self._posts = posts
        # counters, where each post's fan-out state is kept (None: every version fans out in full)
        self._states = fanout_states
        self._page_size = page_size
        self._concurrency = concurrency
        self._backfill_posts = backfill_posts

    # --- reading the graph from PostgreSQL ------------------------------------------------------

    async def recipients(self, author_id: str, include_muters: bool) -> AsyncIterator[list[str]]:
        """The author's followers in pages, the author first (authors see their own posts).
        Followers who muted the author are left out unless `include_muters` (for removals)."""
        yield [author_id]
        after = UUID(int=0)
        while True:
            async with system_connection(self._pool) as conn:
                cur = await conn.execute(
                    """SELECT f.follower_id FROM follows f
                       WHERE f.followee_id = %(author)s AND f.deleted_at IS NULL AND f.follower_id > %(after)s
                         AND (%(all)s OR NOT EXISTS (
                               SELECT 1 FROM mutes m WHERE m.muter_id = f.follower_id
                                 AND m.muted_id = %(author)s AND m.deleted_at IS NULL))
                       ORDER BY f.follower_id LIMIT %(limit)s""",
                    {"author": author_id, "after": after, "all": include_muters, "limit": self._page_size},
                )
                page = [row[0] for row in await cur.fetchall()]
            if not page:
                return
            yield [str(follower) for follower in page]
            after = page[-1]

    async def sees(self, recipient_id: str, author_id: str) -> bool:
        """Whether `recipient_id`'s feed should hold `author_id`'s posts now: a live follow, no mute, no block
        either way. Removals check it, so a late or replayed unfollow/mute/block cannot undo a newer state."""
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                """SELECT EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = %(r)s
                                    AND f.followee_id = %(a)s AND f.deleted_at IS NULL)
                      AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(r)s
                                        AND m.muted_id = %(a)s AND m.deleted_at IS NULL)
                      AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                        AND ((b.blocker_id = %(r)s AND b.blocked_id = %(a)s)
                                             OR (b.blocker_id = %(a)s AND b.blocked_id = %(r)s)))""",
                {"r": recipient_id, "a": author_id},
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    # --- the threshold ----------------------------------------------------------------------------

    async def audience(self, author_id: str, created_at: datetime, record: bool = True) -> bool:
        """Whether what `author_id` publishes at `created_at` is pulled by readers (True) rather than
        fanned out to followers: more followers than FANOUT_MAX_FOLLOWERS. With `record`, the author's
        pull window is widened to cover `created_at` before True is returned (so a reader pulls it), or
        closed when the author is fanned out again. One statement for an author below the threshold
        with no open window; two otherwise."""
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                """SELECT c.followers, w.pulling FROM user_counts c
                   LEFT JOIN fanout_pull_windows w ON w.author_id = c.user_id
                   WHERE c.user_id = %(a)s""",
                {"a": author_id},
            )
            row = await cur.fetchone()
            pulled = is_pulled(int(row[0]) if row else 0, self._max_followers)
            pulling = bool(row and row[1])
            if record and pulled:
                await conn.execute(
                    """INSERT INTO fanout_pull_windows (author_id, pulled_since, pulled_last, pulling)
                       VALUES (%(a)s, %(t)s, %(t)s, true)
                       ON CONFLICT (author_id) DO UPDATE SET
                           pulled_since = LEAST(fanout_pull_windows.pulled_since, EXCLUDED.pulled_since),
                           pulled_last = GREATEST(fanout_pull_windows.pulled_last, EXCLUDED.pulled_last),
                           pulling = true, updated_at = now()""",
                    {"a": author_id, "t": created_at},
                )
            elif record and pulling:
                # Fanned out again: posts after pulled_last are in feeds; the window keeps the pulled ones.
                await conn.execute(
                    """UPDATE fanout_pull_windows SET pulling = false, updated_at = now()
                       WHERE author_id = %(a)s AND pulling""",
                    {"a": author_id},
                )
        return pulled

    # --- fan-out ----------------------------------------------------------------------------------

    async def fan_out_post(self, post: dict[str, Any], _depth: int = 0) -> int:
        """Put a visible post in every recipient's feed, or take a deleted/hidden one out of them, unless
        a newer version of the post exists. Returns the number of recipients handled."""
        current = await self.current_version(post)
        if current is not None and current > _version(post):
            log.info(
                "fan-out of post %s v%s skipped: posts_v2 holds v%s (its own change updates the feeds)",
                post.get("postId"),
                post.get("version"),
                current,
                extra={"correlationId": post.get("correlationId")},
            )
            return 0
        visible = shows_in_feeds(post)
        if visible and already_in_feeds(await self._state(post), post):
            log.info(
                "fan-out of post %s v%s: no feed item to write (a completed fan-out put it in feeds; "
                "readers show the current version)",
                post.get("postId"),
                post.get("version"),
                extra={"correlationId": post.get("correlationId")},
            )
            return 0
        if not visible:  # until this removal completes, a later visible version must fan out in full
            await self._set_state(post, visible=False, complete=False)
        author_id = str(post["authorId"])
        created_at = parse_time(post["createdAt"]) if post.get("createdAt") else self._clock()
        # A pulled post reaches followers through their reads; a removal of one leaves only copies
        # written before the author crossed the threshold, which reads screen out (and which expire).
        if await self.audience(author_id, created_at, record=visible):
            total = await self._fan_out_to_author_only(post, visible)
            if _version(post) > 1:
                total += await self._fan_out_to_reposters_audiences(post, visible)
            await self._set_state(post, visible=visible, complete=True)
            return total
        total = 0
        async for page in self.recipients(author_id, include_muters=not visible):
            if visible:
                total += await bounded(
                    page, lambda recipient: self.write_item(recipient, post), self._concurrency
                )
            else:
                total += await bounded(
                    page,
                    lambda recipient: self._delete(f"{recipient}:{post['postId']}", recipient),
                    self._concurrency,
                )
        if _version(post) > 1:
            # An edit, a deletion or a moderation decision reaches the feeds reposts brought it to
            # (a new post has no reposts yet: a repost made before its fan-out writes its own items).
            total += await self._fan_out_to_reposters_audiences(post, visible)
        await self._set_state(post, visible=visible, complete=True)
        if visible and _depth < 3:
            newer = await self._current_document(post)
            if newer is not None and _version(newer) > _version(post):
                # A newer version landed while we wrote: its fan-out may have run before our writes
                # (a removal, say), so fan it out again; it wins every item by its version.
                await self.fan_out_post(newer, _depth + 1)
        return total

    async def _fan_out_to_author_only(self, post: dict[str, Any], visible: bool) -> int:
        author_id = str(post["authorId"])
        if visible:
            await self.write_item(author_id, post)
        else:
            await self._delete(f"{author_id}:{post['postId']}", author_id)
        return 1

    async def _state(self, post: dict[str, Any]) -> dict[str, Any] | None:
        if self._states is None:
            return None
        post_id = str(post["postId"])
        try:
            state: dict[str, Any] = await self._states.read_item(f"{post_id}:fanout", partition_key=post_id)
        except exceptions.CosmosResourceNotFoundError:
            return None
        return state

    async def _set_state(self, post: dict[str, Any], visible: bool, complete: bool) -> None:
        if self._states is None:
            return
        if post.get("deleted") and complete:  # gone for good: nothing more to remember
            post_id = str(post["postId"])
            with contextlib.suppress(exceptions.CosmosResourceNotFoundError):
                await self._states.delete_item(f"{post_id}:fanout", partition_key=post_id)
            return
        await self._states.upsert_item(fanout_state_document(post, visible, complete))

    async def current_version(self, post: dict[str, Any]) -> int | None:
        """The version posts_v2 holds for this post now; None when there is no gate or no document
        (a deleted post's tombstone expired: only a removal can be current then)."""
        if self._posts is None:
            return None
        document = await self._current_document(post)
        if document is None:
            return _version(post) + 1 if shows_in_feeds(post) else None
        return _version(document)

    async def _current_document(self, post: dict[str, Any]) -> dict[str, Any] | None:
        if self._posts is None:
            return None
        post_id = str(post["postId"])
        try:
            document: dict[str, Any] = await self._posts.read_item(post_id, partition_key=post_id)
        except exceptions.CosmosResourceNotFoundError:
            return None
        return document

    async def write_item(
        self, recipient_id: str, post: dict[str, Any], repost: RepostRef | None = None
    ) -> None:
        """The recipient's feed item for `post`, unless the item already holds this or a newer version:
        one request in the common case (a create for a new post, a conditional patch for an edit).
        With `repost`, an item made now takes the repost's time as its position (and its ttl runs from
        then), and an item already there shows `repost` as its reposter if it is the newest (its
        position stays)."""
        item = feed_item(recipient_id, post, repost)
        created_at = parse_time(item["createdAt"]) if item.get("createdAt") else self._clock()
        ttl = item_ttl_seconds(created_at, self._clock(), self._item_ttl)
        if ttl is None:
            return  # older than feeds keep: reads take it from PostgreSQL
        item["ttl"] = ttl
        version = _version(post)
        changes = [{"op": "set", "path": f"/{name}", "value": item[name]} for name in _EDITABLE_ITEM_FIELDS]
        changes.append({"op": "set", "path": "/ttl", "value": ttl})  # a write restarts Cosmos' ttl clock
        create_first = version <= 1 or repost is not None
        for _ in range(3):
            if create_first:
                try:
                    await self._feed.create_item(item)
                    if trims_after(recipient_id, str(item["postId"]), self._max_items):
                        await self.trim(recipient_id)
                    return
                except exceptions.CosmosResourceExistsError:
                    if repost is not None:
                        await self._show_reposter(item["id"], recipient_id, repost)
            try:
                await self._feed.patch_item(
                    item["id"],
                    recipient_id,
                    changes,
                    # an int of our own making: safe to inline (predicates take no parameters)
                    filter_predicate=f"FROM c WHERE c.postVersion < {version}",
                )
                return
            except exceptions.CosmosAccessConditionFailedError:
                return  # the item holds this version or a newer one
            except exceptions.CosmosResourceNotFoundError:
                create_first = True  # removed meanwhile, or never there: create it
        raise RuntimeError(f"feed item {item['id']}: lost 3 races with concurrent writers; will retry")

    async def _show_reposter(self, item_id: str, recipient_id: str, repost: RepostRef) -> None:
        """Show `repost` as the item's reposter unless it holds a newer one: one conditional patch."""
        at = feed_time(repost.at)  # of our own making (digits and separators): safe to inline
        with contextlib.suppress(
            exceptions.CosmosAccessConditionFailedError, exceptions.CosmosResourceNotFoundError
        ):
            await self._feed.patch_item(
                item_id,
                recipient_id,
                [
                    {"op": "set", "path": "/repostedBy", "value": repost.user_id},
                    {"op": "set", "path": "/repostedAt", "value": at},
                ],
                filter_predicate=(
                    f"FROM c WHERE NOT IS_DEFINED(c.repostedAt) OR IS_NULL(c.repostedAt) OR c.repostedAt < '{at}'"
                ),
            )

    async def _set_reposter(self, item_id: str, recipient_id: str, repost: RepostRef | None) -> None:
        """Show `repost` (None: nobody) as the item's reposter, whatever it showed: after an undo."""
        with contextlib.suppress(exceptions.CosmosResourceNotFoundError):
            await self._feed.patch_item(
                item_id,
                recipient_id,
                [
                    {"op": "set", "path": "/repostedBy", "value": repost.user_id if repost else None},
                    {"op": "set", "path": "/repostedAt", "value": repost.at if repost else None},
                ],
            )

    async def trim(self, recipient_id: str) -> int:
        """Delete the feed's items beyond the newest FEED_MAX_ITEMS, after raising the feed's floor to
        the newest of them: a read takes what is at or below the floor from PostgreSQL. Returns how
        many items were deleted."""
        keys = {
            (parse_time(item["createdAt"]), str(item["postId"])): str(item["id"])
            async for item in self._feed.query_items(
                "SELECT c.id, c.createdAt, c.postId FROM c WHERE c.recipientId = @r AND IS_DEFINED(c.postId)",
                parameters=[{"name": "@r", "value": recipient_id}],
                partition_key=recipient_id,
            )
            if item.get("createdAt")
        }
        beyond, floor = trim_split(list(keys), self._max_items)
        if floor is None:
            return 0
        await self._raise_floor(recipient_id, floor)
        return await bounded(
            [keys[key] for key in beyond],
            lambda item_id: self._delete(item_id, recipient_id),
            self._concurrency,
        )

    async def _raise_floor(self, recipient_id: str, floor: datetime) -> None:
        floor_id = f"{recipient_id}:floor"
        ttl = max(1, int(self._item_ttl.total_seconds()))
        for _ in range(3):
            try:
                current = await self._feed.read_item(floor_id, partition_key=recipient_id)
            except exceptions.CosmosResourceNotFoundError:
                current = None
            if current is not None and parse_time(current["floorAt"]) >= floor:
                return
            document = {
                "id": floor_id,
                "recipientId": recipient_id,
                "floorAt": cosmos_time(floor),
                "ttl": ttl,
            }
            try:
                if current is None:
                    await self._feed.create_item(document)
                else:
                    await self._feed.replace_item(
                        floor_id,
                        document,
                        etag=current["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return
            except (exceptions.CosmosResourceExistsError, exceptions.CosmosAccessConditionFailedError):
                continue  # another trim raised it meanwhile: look again
        raise RuntimeError(f"feed floor {floor_id}: lost 3 races with concurrent trims; will retry")

    async def _delete(self, item_id: str, recipient_id: str) -> None:
        with contextlib.suppress(exceptions.CosmosResourceNotFoundError):
            await self._feed.delete_item(item_id, partition_key=recipient_id)

    # --- follows, blocks, mutes -------------------------------------------------------------------

    async def backfill(self, recipient_id: str, author_id: str) -> int:
        """The author's recent visible posts into the recipient's feed (after a follow or unmute),
        unless the recipient has muted the author or either blocks the other; not the posts in the
        author's pull window (reads pull those), so following a big author costs no more writes.
        At most FEED_BACKFILL_POSTS: when the author has more, the feed's floor is raised to the oldest
        one copied, so a reader paging past it goes on from PostgreSQL, which has the rest (a follow
        costs a bounded number of writes, and the feed still misses none of the author's posts)."""
        async with system_connection(self._pool) as conn:
            rows = await fetch_all(
                conn,
                FeedPostRow,
                f"""SELECT {FEED_POST_COLUMNS}
                   FROM posts p JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
                   WHERE p.author_id = %(author)s AND p.deleted_at IS NULL AND p.status = 'visible'
                     AND EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = %(recipient)s
                                   AND f.followee_id = %(author)s AND f.deleted_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(recipient)s
                                       AND m.muted_id = %(author)s AND m.deleted_at IS NULL)
                     -- a pulled post reaches the feed through reads: not copied
                     AND NOT EXISTS (SELECT 1 FROM fanout_pull_windows w WHERE w.author_id = p.author_id
                                       AND p.created_at >= w.pulled_since
                                       AND (w.pulling OR p.created_at <= w.pulled_last))
                   ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s""",  # noqa: S608 (a constant)
                {"author": author_id, "recipient": recipient_id, "limit": self._backfill_posts},
            )
        posts = [feed_post_from_row(row) for row in rows]
        if rows and len(rows) == self._backfill_posts:  # maybe more: older ones come from PostgreSQL
            await self._raise_floor(recipient_id, rows[-1].created_at)
        written = await bounded(posts, lambda p: self.write_item(recipient_id, p), self._concurrency)
        return written + await self._backfill_reposts(recipient_id, author_id)

    async def _backfill_reposts(self, recipient_id: str, reposter_id: str) -> int:
        """The reposter's recent live reposts into the recipient's feed (after a follow or unmute), each
        at its repost's time and showing its reposter, as a repost's own fan-out would have put them."""
        async with system_connection(self._pool) as conn:
            rows = await fetch_all(
                conn,
                _RepostedPostRow,
                f"""SELECT {FEED_POST_COLUMNS}, r.created_at AS reposted_at
                   FROM reposts r JOIN posts p ON p.id = r.post_id
                   JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
                   WHERE r.user_id = %(reposter)s AND r.deleted_at IS NULL
                     AND p.deleted_at IS NULL AND p.status = 'visible' AND u.deleted_at IS NULL
                     AND EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = %(recipient)s
                                   AND f.followee_id = %(reposter)s AND f.deleted_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(recipient)s
                                       AND m.muted_id IN (%(reposter)s, p.author_id) AND m.deleted_at IS NULL)
                     AND {author_visible_sql("p.author_id", "%(recipient)s::uuid")}
                   ORDER BY r.created_at DESC LIMIT %(limit)s""",  # noqa: S608 (constants)
                {"reposter": reposter_id, "recipient": recipient_id, "limit": self._backfill_posts},
            )
        return await bounded(
            rows,
            lambda row: self.write_item(
                recipient_id, feed_post_from_row(row), RepostRef(reposter_id, feed_time(row.reposted_at))
            ),
            self._concurrency,
        )

    async def remove_author(self, recipient_id: str, author_id: str) -> int:
        """Every post of `author_id` out of `recipient_id`'s feed, and every repost of theirs (unfollow,
        block, mute). An item another followee's repost keeps (or, for a repost, the author) stays."""
        query = """SELECT c.id, c.postId, c.authorId, c.repostedBy FROM c
                   WHERE c.recipientId = @recipient AND (c.authorId = @author OR c.repostedBy = @author)"""
        parameters: list[dict[str, Any]] = [
            {"name": "@recipient", "value": recipient_id},
            {"name": "@author", "value": author_id},
        ]
        items = [
            item
            async for item in self._feed.query_items(query, parameters=parameters, partition_key=recipient_id)
        ]
        # An item no repost brought is the author's post alone: it goes. The others are decided again.
        plain = [i["id"] for i in items if i["authorId"] == author_id and not i.get("repostedBy")]
        reposted = [i["postId"] for i in items if i["id"] not in plain]
        removed = await bounded(plain, lambda item_id: self._delete(item_id, recipient_id), self._concurrency)
        for post_id in reposted:
            removed += await self.refresh_entries([recipient_id], post_id)
        return removed

    # --- reposts ----------------------------------------------------------------------------------

    async def _live_repost_time(self, post_id: str, user_id: str) -> datetime | None:
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT created_at FROM reposts WHERE post_id = %s AND user_id = %s AND deleted_at IS NULL",
                (post_id, user_id),
            )
            row = await cur.fetchone()
        return row[0] if row else None

    async def _visible_post(self, post_id: str) -> dict[str, Any] | None:
        """The post as posts_v2 would hold it, from PostgreSQL (a repost may be relayed before the post's
        own document is written); None unless it is live and visible."""
        async with system_connection(self._pool) as conn:
            rows = await fetch_all(
                conn,
                FeedPostRow,
                f"""SELECT {FEED_POST_COLUMNS}
                   FROM posts p JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
                   WHERE p.id = %s AND p.deleted_at IS NULL AND p.status = 'visible'
                     AND u.deleted_at IS NULL""",  # noqa: S608 (a constant)
                (post_id,),
            )
        return feed_post_from_row(rows[0]) if rows else None

    async def _who_may_receive(self, recipients: list[str], author_id: str) -> list[str]:
        """Those of `recipients` who may have `author_id`'s post in their feed: within reach of the
        author (services/author_access.py) and not muting them."""
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                f"""SELECT r.id::text FROM unnest(%(recipients)s::uuid[]) AS r(id)
                   WHERE {author_visible_sql("%(author)s::uuid", "r.id")}
                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = r.id
                                       AND m.muted_id = %(author)s AND m.deleted_at IS NULL)""",  # noqa: S608 (a constant condition)
                {"recipients": recipients, "author": author_id},
            )
            return [row[0] for row in await cur.fetchall()]

    async def fan_out_repost(self, post_id: str, reposter_id: str) -> int:
        """A repost: the original into the feeds of the reposter and their followers (once per feed).
        Read from PostgreSQL, so a late or replayed event does what the repost is now: nothing once it
        was undone (the undo's own event retracts) and the newest time if it was made again.

        An undo may commit while this runs, and its retraction may run before our writes land: so
        after each page of writes the repost is read again, and if it is no longer the live repost we
        started from (undone, or undone and made again) what we wrote is decided again
        (`refresh_entries`) and we stop. Whatever the interleaving, the last word on an item is a
        decision read after the undo committed: a late fan-out of an undone repost leaves nothing."""
        reposted_at = await self._live_repost_time(post_id, reposter_id)
        if reposted_at is None:
            return 0
        post = await self._visible_post(post_id)
        if post is None:
            return 0  # deleted or hidden meanwhile: its own event cleans the feeds
        return await self._write_for_reposter(
            post, RepostRef(reposter_id, feed_time(reposted_at)), live_since=reposted_at
        )

    async def _write_for_reposter(
        self, post: dict[str, Any], repost: RepostRef, live_since: datetime | None = None, record: bool = True
    ) -> int:
        """The post into the feeds `repost` brings it to. With `live_since` (the repost's time when the
        fan-out started), each page is checked against the repost as it is after the writes. `record`:
        widen the reposter's pull window to the repost (its own fan-out; not a later edit of the post,
        whose repost was placed when it was made)."""
        if await self.audience(repost.user_id, parse_time(repost.at), record=record):
            # Above FANOUT_MAX_FOLLOWERS a repost, like a post, is not written to every follower's feed:
            # the reposter's pull window now covers it and readers pull it from the reposter's
            # authorPosts partition (services/feed_reads.py); only the reposter's own feed gets an item.
            await self.write_item(repost.user_id, post, repost)
            await self._unless_undone([repost.user_id], post, repost, live_since)
            return 1
        total = 0
        async for page in self.recipients(repost.user_id, include_muters=False):
            allowed = await self._who_may_receive(page, str(post["authorId"]))
            total += await bounded(
                allowed, lambda recipient: self.write_item(recipient, post, repost), self._concurrency
            )
            if not await self._unless_undone(allowed, post, repost, live_since):
                break
        return total

    async def _unless_undone(
        self, written: list[str], post: dict[str, Any], repost: RepostRef, live_since: datetime | None
    ) -> bool:
        """After writing `written` for a repost that was live at `live_since`: True if it still is (go
        on); else those items are decided again (the undo's retraction may have run before our
        writes) and False (stop: the undo, or the repost made again, has its own event)."""
        if live_since is None:
            return True
        if await self._live_repost_time(str(post["postId"]), repost.user_id) == live_since:
            return True
        log.info(
            "repost of post %s by %s was undone or made again while it was fanned out: %d items "
            "decided again",
            post.get("postId"),
            repost.user_id,
            len(written),
        )
        await self.refresh_entries(written, str(post["postId"]))
        return False

    async def retract_repost(self, post_id: str, reposter_id: str) -> int:
        """An undone repost: out of the feeds of the reposter's followers where nothing else keeps it;
        where another followee's repost does, it shows that one. Nothing if it was reposted again."""
        if await self._live_repost_time(post_id, reposter_id) is not None:
            return 0
        total = 0
        async for page in self.recipients(reposter_id, include_muters=True):
            total += await self.refresh_entries(page, post_id)
        return total

    async def keepers(self, recipients: list[str], post_id: str) -> list[FeedEntryKeeper]:
        """For each recipient, what keeps `post_id` in their feed now: one query for the page."""
        async with system_connection(self._pool) as conn:
            return await fetch_all(
                conn,
                FeedEntryKeeper,
                f"""WITH post AS (
                        SELECT p.id, p.author_id FROM posts p JOIN users u ON u.id = p.author_id
                        WHERE p.id = %(post)s AND p.deleted_at IS NULL AND p.status = 'visible'
                          AND u.deleted_at IS NULL)
                    SELECT r.id::text AS recipient,
                           EXISTS (SELECT 1 FROM post WHERE {author_visible_sql("post.author_id", "r.id")}
                                     AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = r.id
                                                       AND m.muted_id = post.author_id AND m.deleted_at IS NULL))
                               AS may_see,
                           EXISTS (SELECT 1 FROM post WHERE post.author_id = r.id
                                     OR EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = r.id
                                                  AND f.followee_id = post.author_id AND f.deleted_at IS NULL))
                               AS follows_author,
                           newest.user_id::text AS reposted_by, newest.created_at AS reposted_at
                    FROM unnest(%(recipients)s::uuid[]) AS r(id)
                    LEFT JOIN LATERAL (
                        SELECT rp.user_id, rp.created_at FROM reposts rp
                        WHERE rp.post_id = %(post)s AND rp.deleted_at IS NULL
                          AND (rp.user_id = r.id
                               OR EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = r.id
                                            AND f.followee_id = rp.user_id AND f.deleted_at IS NULL))
                          AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = r.id
                                            AND m.muted_id = rp.user_id AND m.deleted_at IS NULL)
                        ORDER BY rp.created_at DESC LIMIT 1) newest ON true""",  # noqa: S608 (constant conditions)
                {"recipients": recipients, "post": post_id},
            )

    async def refresh_entries(self, recipients: list[str], post_id: str) -> int:
        """Decide `post_id`'s item in each recipient's feed again (after an undone repost, an unfollow):
        deleted where nothing keeps it, else showing its newest reposter. Returns how many went.

        A repost committed after the decision was read may have written its item before we delete it:
        so the deleted ones are decided once more, and written back if something keeps them now."""
        decisions = [(k.recipient, *k.decision()) for k in await self.keepers(recipients, post_id)]
        item = f"{{}}:{post_id}"
        gone = [recipient for recipient, action, _ in decisions if action == "delete"]
        kept = [(recipient, repost) for recipient, action, repost in decisions if action == "keep"]
        await bounded(gone, lambda r: self._delete(item.format(r), r), self._concurrency)
        await bounded(
            kept, lambda rk: self._set_reposter(item.format(rk[0]), rk[0], rk[1]), self._concurrency
        )
        if gone:
            again = [k for k in await self.keepers(gone, post_id) if k.decision()[0] == "keep"]
            post = await self._visible_post(post_id) if again else None
            if post is not None:
                await bounded(
                    again, lambda k: self.write_item(k.recipient, post, k.decision()[1]), self._concurrency
                )
                gone = [r for r in gone if r not in {k.recipient for k in again}]
        return len(gone)

    async def _fan_out_to_reposters_audiences(self, post: dict[str, Any], visible: bool) -> int:
        """The post's change (an edit, a deletion, a moderation decision) in the feeds its live reposts
        brought it to."""
        async with system_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT user_id::text, created_at FROM reposts WHERE post_id = %s AND deleted_at IS NULL",
                (str(post["postId"]),),
            )
            reposts = [RepostRef(user_id, feed_time(at)) for user_id, at in await cur.fetchall()]
        total = 0
        for repost in reposts:
            if visible:
                total += await self._write_for_reposter(post, repost, record=False)
                continue
            async for page in self.recipients(repost.user_id, include_muters=True):
                total += await bounded(
                    page,
                    lambda recipient: self._delete(f"{recipient}:{post['postId']}", recipient),
                    self._concurrency,
                )
        return total
