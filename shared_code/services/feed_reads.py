"""The caller's home feed: the `userFeed` projection merged with the posts pulled from `authorPosts`
for the big authors the caller follows, then PostgreSQL past what Cosmos DB keeps; all from PostgreSQL
when Cosmos DB is away (the response is then marked degraded: header Chorus-Degraded). Per page, one
Cosmos query per source, a point read of the feed's floor and the hydration's batched reads
(docs/cost-model.md); PostgreSQL is asked who the caller is, whom
they pull and what they must not see, in short transactions of their own
(services/projection_queries.py). The merge itself is pure: shared_code/domain/feed_merge.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import CosmosUnavailable, RequestBudget
from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import BadCursor
from shared_code.domain.feed_merge import (
    Key,
    PullWindow,
    SourcePage,
    cosmos_time,
    entry_key,
    horizon,
    likely_page,
    newer_than,
    parse_time,
    read_page,
    shadowed,
)
from shared_code.metrics import record_degraded_read
from shared_code.projections.writes import AUTHOR_POSTS, FEED
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author
from shared_code.schemas.reads import FeedItem
from shared_code.services.audience import visible_authors
from shared_code.services.author_access import author_visible_sql
from shared_code.services.feed_hydration import ReadAhead, hydrate_feed_entries, media_of
from shared_code.services.feeds import FEED_POST_COLUMNS, FeedPostRow
from shared_code.services.projection_queries import page, read_or_none
from shared_code.services.pulled_reposts import pulled_entry, repost_facts
from shared_code.services.quotes import unavailable, with_quotes
from shared_code.services.reaction_counts import full_reaction_counts

log = logging.getLogger("chorus.reads")


@dataclass(frozen=True)
class _FeedPostWithCounts(FeedPostRow):
    reactions: dict[str, int] | None
    comments: int
    reposts: int
    # Its place in the feed (the post's time, or the repost's that brought it) and that reposter.
    position: datetime
    reposted_by: UUID | None


# --- the home feed ---------------------------------------------------------------------------------

DEFAULT_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class FeedRead:
    page: Page[FeedItem]
    # Served from PostgreSQL because Cosmos DB was away (not: a page past what Cosmos DB keeps).
    from_postgres: bool = False


@dataclass(frozen=True)
class _PullWindowRow:
    author_id: UUID
    pulled_since: datetime
    pulled_last: datetime
    pulling: bool


async def read_feed(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    limit: int,
    cursor: str | None,
    retention: timedelta = DEFAULT_RETENTION,
    now: datetime | None = None,
    subject: str | None = None,
    readers: RecentReaders | None = None,
) -> FeedRead:
    """The caller's home feed, newest first: their `userFeed` partition merged with the posts pulled
    from `authorPosts` of the big authors they follow, and, past what Cosmos DB keeps (the horizon:
    the retention, or the feed's trim floor), PostgreSQL. The cursor is the keyset (createdAt, postId)
    of the last entry looked at, whatever its source, so any page goes on from any source; when
    Cosmos DB is away the whole page comes from PostgreSQL (marked degraded) and the same cursor
    goes on from Cosmos DB once it is back. See docs/architecture.md "Home feeds at any audience size"."""
    now = now or datetime.now(UTC)
    # The feed's trim floor is read with the first round's queries (which use the retention's
    # horizon alone), and what they return at or below the floor is cut: no extra round trip.
    by_age = horizon(now, retention, None)
    # The caller and their pull windows as this worker last read them: the first round's Cosmos
    # queries start at once on that guess, while PostgreSQL says who the caller is and whom they pull
    # now; what the answer changed is queried again, so the page is the same as without the guess.
    guess = readers.get(subject) if readers is not None and subject else None
    early = _first_round_early(db, budget, cursors, guess, cursor, by_age, limit) if guess else None
    try:
        me, windows = await run(lambda uow: _reader(uow, now - retention))
        scope = f"feed:{me}"
        after = _keyset(cursors.decode(scope, cursor)) if cursor else None
    except BaseException:
        await _drop(early)
        raise
    if readers is not None and subject:
        readers.put(subject, Reader(me, tuple(windows)))

    async def postgres(position: Key | None, n: int, not_after: datetime | None) -> list[dict[str, Any]]:
        return await _postgres_entries(run, media_urls, me, n, position, not_after)

    try:
        first_round = after is None or after[0] > by_age
        if early is not None and guess is not None and guess.me == me:
            floor, guessed = await early
            first = (
                await _settled(db, budget, me, guessed, windows, by_age, after, limit)
                if first_round
                else None
            )
        else:
            await _drop(early)
            async with budget.guard():
                floor, first = await asyncio.gather(
                    read_or_none(db, FEED, f"{me}:floor", me),
                    _cosmos_pages(db, me, windows, by_age, after, limit) if first_round else _nothing(),
                )
        edge = horizon(now, retention, parse_time(floor["floorAt"]) if floor else None)

        async def cosmos(position: Key | None, n: int) -> list[SourcePage]:
            nonlocal first
            if first is not None and position == after and n == limit:
                pages, first = first, None
                return [newer_than(page, edge) for page in pages]
            async with budget.guard():
                return await _cosmos_pages(db, me, windows, edge, position, n)

        read_ahead = ReadAhead()

        async def screen(entries: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool]:
            # The page's likely entries are hydrated from Cosmos DB while PostgreSQL screens them.
            ahead = asyncio.create_task(read_ahead.fetch(db, likely_page(entries, limit), budget))
            try:
                # Reposts pulled from big reposters: each post once, with its newest reposter.
                facts = (
                    await repost_facts(db, run, budget, me, windows, edge, entries)
                    if windows and entries
                    else None
                )
                hidden = await _screen(run, me, entries)
            except BaseException:
                ahead.cancel()
                raise
            await ahead
            hidden_by = _hidden_by(hidden)
            if facts is None:
                return hidden_by
            return lambda entry: shadowed(entry, facts) or hidden_by(entry)

        feed_page = await read_page(limit, after, edge, cosmos, screen, postgres)
        # The current post, author and counts of each entry: feed items are references (feed_hydration).
        hydrated = await hydrate_feed_entries(
            db, run, feed_page.cosmos_entries, media_urls, budget, read_ahead
        )
    except CosmosUnavailable as exc:
        log.warning(
            "home feed served from PostgreSQL: Cosmos DB is not answering (%s). Feeds come from the "
            "canonical tables until it answers again; see docs/reliability.md",
            exc.reason,
        )
        record_degraded_read("feed")
        rows = await postgres(after, limit + 1, None)
        position = entry_key(rows[limit - 1]) if len(rows) > limit else None
        items = await with_quotes(run, UUID(me), [e["item"] for e in rows[:limit]])
        return FeedRead(
            Page[FeedItem](items=items, next_cursor=_cursor(cursors, scope, position, True)), True
        )
    items = await with_quotes(run, UUID(me), hydrated + [e["item"] for e in feed_page.postgres_entries])
    next_cursor = _cursor(cursors, scope, feed_page.position, feed_page.more)
    return FeedRead(Page[FeedItem](items=items, next_cursor=next_cursor))


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Reader:
    """Who a caller is and whom they pull, as a feed read found it."""

    me: str
    windows: tuple[PullWindow, ...]


class RecentReaders:
    """Per worker, the last `Reader` of each recent caller (by token subject), at most `size` of them,
    the least recently read dropped first. Only a guess to start a page's Cosmos queries early: every
    read still asks PostgreSQL and uses its answer, so a guess that is out of date (a new follow, a
    crossing, a mute) costs a few more queries, never a different page."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._readers: OrderedDict[str, Reader] = OrderedDict()

    def get(self, subject: str) -> Reader | None:
        reader = self._readers.get(subject)
        if reader is not None:
            self._readers.move_to_end(subject)
        return reader

    def put(self, subject: str, reader: Reader) -> None:
        self._readers[subject] = reader
        self._readers.move_to_end(subject)
        while len(self._readers) > self._size:
            self._readers.popitem(last=False)


# One per worker process: each holds the callers it served lately.
RECENT_READERS = RecentReaders()


@dataclass(frozen=True)
class _Guessed:
    """The first round's sources as queried on a guess: the userFeed page and one page per window."""

    feed: SourcePage
    pulled: dict[PullWindow, SourcePage]


def _first_round_early(
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    guess: Reader,
    cursor: str | None,
    by_age: datetime,
    limit: int,
) -> asyncio.Task[tuple[dict[str, Any] | None, _Guessed | None]] | None:
    try:
        after = _keyset(cursors.decode(f"feed:{guess.me}", cursor)) if cursor else None
    except BadCursor:
        return None  # the guess is someone else (PostgreSQL decides): no early queries
    first_round = after is None or after[0] > by_age

    async def queries() -> tuple[dict[str, Any] | None, _Guessed | None]:
        async with budget.guard():
            if not first_round:
                return await read_or_none(db, FEED, f"{guess.me}:floor", guess.me), None
            pulled = [w for w in guess.windows if w.overlaps(by_age, after)]
            floor, pages = await asyncio.gather(
                read_or_none(db, FEED, f"{guess.me}:floor", guess.me),
                _cosmos_pages(db, guess.me, pulled, by_age, after, limit),
            )
        return floor, _Guessed(pages[0], dict(zip(pulled, pages[1:], strict=True)))

    return asyncio.create_task(queries())


async def _settled(
    db: DatabaseProxy,
    budget: RequestBudget,
    me: str,
    guessed: _Guessed | None,
    windows: list[PullWindow],
    by_age: datetime,
    after: Key | None,
    limit: int,
) -> list[SourcePage]:
    """The first round's pages for the windows PostgreSQL gave: the guessed queries of the same
    windows, and the queries of windows the guess did not have (or had otherwise) now."""
    pulled = [w for w in windows if w.overlaps(by_age, after)]
    if guessed is None:  # cannot be (same caller, same cursor), but then: all of them now
        async with budget.guard():
            return await _cosmos_pages(db, me, pulled, by_age, after, limit)
    missing = [w for w in pulled if w not in guessed.pulled]
    if missing:
        async with budget.guard():
            extra = await _pulled_pages(db, me, missing, by_age, after, limit)
    else:
        extra = []
    found = {**guessed.pulled, **dict(zip(missing, extra, strict=True))}
    return [guessed.feed, *(found[w] for w in pulled)]


async def _drop(task: asyncio.Task[Any] | None) -> None:
    """An early round nobody will use: cancelled, and whatever it raised ignored."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _cursor(cursors: CursorCodec, scope: str, position: Key | None, more: bool) -> str | None:
    if not more or position is None:
        return None
    return cursors.encode(scope, {"t": cosmos_time(position[0]), "id": position[1]})


def _keyset(position: dict[str, Any]) -> Key:
    try:
        return parse_time(str(position["t"])), str(UUID(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise BadCursor("the cursor is not one this API issued") from None


async def _reader(uow: UnitOfWork, pulled_after: datetime) -> tuple[str, list[PullWindow]]:
    """The caller, and the pull windows of the authors they follow (less muted and blocked ones) that
    may hold posts newer than the retention: whom a page pulls from authorPosts."""
    me = uow.require_user()
    rows = await fetch_all(
        uow.conn,
        _PullWindowRow,
        """SELECT w.author_id, w.pulled_since, w.pulled_last, w.pulling
           FROM follows f JOIN fanout_pull_windows w ON w.author_id = f.followee_id
           WHERE f.follower_id = %(me)s AND f.deleted_at IS NULL
             AND (w.pulling OR w.pulled_last > %(after)s)
             AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(me)s
                               AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
             AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                               AND ((b.blocker_id = %(me)s AND b.blocked_id = f.followee_id)
                                    OR (b.blocker_id = f.followee_id AND b.blocked_id = %(me)s)))""",
        {"me": me, "after": pulled_after},
    )
    windows = [PullWindow(str(r.author_id), r.pulled_since, r.pulled_last, r.pulling) for r in rows]
    return str(me), windows


_KEYSET = "AND (c.createdAt < @t OR (c.createdAt = @t AND c.postId < @id))"
_ORDER = "ORDER BY c.createdAt DESC, c.postId DESC"


def _keyset_parameters(after: Key | None) -> tuple[str, list[dict[str, Any]]]:
    if after is None:
        return "", []
    return _KEYSET, [{"name": "@t", "value": cosmos_time(after[0])}, {"name": "@id", "value": after[1]}]


async def _source_page(
    container: Any,
    query: str,
    parameters: list[dict[str, Any]],
    partition: str,
    n: int,
    me: str,
    pulled: bool,
) -> SourcePage:
    entries, continuation = await page(container, query, parameters, partition, n, None)
    if pulled:
        entries = [pulled_entry(me, document) for document in entries]
    return SourcePage(entries, exhausted=continuation is None)


async def _cosmos_pages(
    db: DatabaseProxy, me: str, windows: list[PullWindow], edge: datetime, position: Key | None, n: int
) -> list[SourcePage]:
    """Up to `n` entries newer than the horizon and after the keyset from the caller's userFeed
    partition and from each pulled author's authorPosts partition: single-partition queries, all
    at once."""
    keyset, keyset_parameters = _keyset_parameters(position)
    edge_parameter = {"name": "@edge", "value": cosmos_time(edge)}
    feed = _source_page(
        db.get_container_client(FEED),
        f"SELECT * FROM c WHERE c.recipientId = @me AND c.createdAt > @edge {keyset} {_ORDER}",  # noqa: S608
        [{"name": "@me", "value": me}, edge_parameter, *keyset_parameters],
        me,
        n,
        me,
        pulled=False,
    )
    return list(await asyncio.gather(feed, *_pulled_fetches(db, me, windows, edge, position, n)))


async def _pulled_pages(
    db: DatabaseProxy, me: str, windows: list[PullWindow], edge: datetime, position: Key | None, n: int
) -> list[SourcePage]:
    """One page per window that overlaps the page (in the windows' order)."""
    return list(await asyncio.gather(*_pulled_fetches(db, me, windows, edge, position, n)))


def _pulled_fetches(
    db: DatabaseProxy, me: str, windows: list[PullWindow], edge: datetime, position: Key | None, n: int
) -> list[Awaitable[SourcePage]]:
    keyset, keyset_parameters = _keyset_parameters(position)
    edge_parameter = {"name": "@edge", "value": cosmos_time(edge)}
    author_posts = db.get_container_client(AUTHOR_POSTS)
    fetches: list[Awaitable[SourcePage]] = []
    for window in windows:
        if window.overlaps(edge, position):
            query, parameters = _pulled_query(window, edge_parameter, keyset, keyset_parameters)
            fetches.append(
                _source_page(author_posts, query, parameters, window.author_id, n, me, pulled=True)
            )
    return fetches


async def _postgres_entries(
    run: Transactions, media_urls: MediaUrls, me: str, n: int, after: Key | None, not_after: datetime | None
) -> list[dict[str, Any]]:
    """Up to `n` feed entries from the canonical tables after the keyset, created at or before
    `not_after` (when given), each with its FeedItem (the canonical rows are current: no hydration)."""
    keyset = (after[0], UUID(after[1])) if after is not None else None
    rows = await run(lambda uow: _feed_rows(uow, UUID(me), n, keyset, not_after))
    return [
        {
            "postId": str(row.post_id),
            "authorId": str(row.author_id),
            "createdAt": cosmos_time(row.position),
            "item": _feed_item_from_row(row, media_urls),
        }
        for row in rows
    ]


def _pulled_query(
    window: PullWindow, edge: dict[str, Any], keyset: str, keyset_parameters: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """The query of one pulled author's partition: visible posts and live reposts of the pull window,
    newer than the horizon, after the keyset (a repost document sits at its repost's time)."""
    parameters = [{"name": "@a", "value": window.author_id}, edge]
    parameters.append({"name": "@since", "value": cosmos_time(window.since)})
    upper = ""
    if not window.pulling:
        upper = "AND c.createdAt <= @last"
        parameters.append({"name": "@last", "value": cosmos_time(window.last)})
    query = (
        "SELECT c.postId, c.authorId, c.createdAt, c.version, c.repostedBy, c.repostedAt FROM c "  # noqa: S608
        "WHERE c.authorId = @a AND c.createdAt > @edge AND c.createdAt >= @since "
        f"{upper} AND c.deleted = false AND c.status = 'visible' {keyset} {_ORDER}"
    )
    return query, parameters + keyset_parameters


def _hidden_by(hidden: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Entries of muted or blocked authors, and of posts deleted or hidden since they were written."""
    return lambda entry: entry["postId"] in hidden or entry["authorId"] in hidden


async def _screen(run: Transactions, me: str, entries: list[dict[str, Any]]) -> set[str]:
    if not entries:
        return set()

    async def screen(uow: UnitOfWork) -> set[str]:
        return await _not_to_show(uow, me, entries)

    return await run(screen)


# The fallback feed must answer within the request's 3 s even for someone who follows thousands,
# and must not overload PostgreSQL while every feed read falls back to it.
FEED_FALLBACK_STATEMENT_TIMEOUT_MS = 1000


async def _feed_rows(
    uow: UnitOfWork,
    me: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None,
    not_after: datetime | None = None,
) -> list[_FeedPostWithCounts]:
    """The newest `limit` entries of the caller's feed: the posts of the authors the caller sees and
    the live reposts of the accounts they follow (and their own), each at its position (a post's
    time, a repost's time) and keyset on (position, post id) as in Cosmos DB. A post shows once, at
    its newest position for the caller (a repost shadows the post and older reposts of it), showing
    that reposter. Each author's posts and each account's reposts are read from their indexes and
    cut at `limit`, after the shadowing and the privacy rule, so the cut is exact; the cost grows with
    the accounts followed times the page size, not with how much they have written."""
    params: dict[str, Any] = {"me": me, "limit": limit}
    post_keyset = repost_keyset = ""
    if after is not None:
        params["after_time"], params["after_id"] = after
        post_keyset = "AND (p0.created_at, p0.id) < (%(after_time)s, %(after_id)s)"
        repost_keyset = "AND (r0.created_at, r0.post_id) < (%(after_time)s, %(after_id)s)"
    if not_after is not None:  # what Cosmos DB holds is newer: taken from there
        params["not_after"] = not_after
        post_keyset += " AND p0.created_at <= %(not_after)s"
        repost_keyset += " AND r0.created_at <= %(not_after)s"
    await uow.conn.execute(
        "SELECT set_config('statement_timeout', %s, true)", (str(FEED_FALLBACK_STATEMENT_TIMEOUT_MS),)
    )
    return await fetch_all(
        uow.conn,
        _FeedPostWithCounts,
        f"""WITH followed AS (
                SELECT f.followee_id AS id FROM follows f
                WHERE f.follower_id = %(me)s AND f.deleted_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(me)s
                                    AND m.muted_id = f.followee_id AND m.deleted_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.deleted_at IS NULL
                                    AND ((b.blocker_id = %(me)s AND b.blocked_id = f.followee_id)
                                         OR (b.blocker_id = f.followee_id AND b.blocked_id = %(me)s)))
                UNION SELECT %(me)s::uuid),
            entries AS (
                SELECT p1.id AS post_id, p1.created_at AS position, NULL::uuid AS reposted_by
                FROM followed a
                CROSS JOIN LATERAL (
                    SELECT p0.id, p0.created_at FROM posts p0
                    WHERE p0.author_id = a.id AND p0.deleted_at IS NULL AND p0.status = 'visible' {post_keyset}
                      -- reposted by someone followed: shown at that (newer) repost instead
                      AND NOT EXISTS (SELECT 1 FROM reposts rp WHERE rp.post_id = p0.id AND rp.deleted_at IS NULL
                                        AND rp.user_id IN (SELECT id FROM followed))
                    ORDER BY p0.created_at DESC, p0.id DESC LIMIT %(limit)s) p1
                UNION ALL
                SELECT r1.post_id, r1.created_at, r1.user_id
                FROM followed a
                CROSS JOIN LATERAL (
                    SELECT r0.post_id, r0.created_at, r0.user_id FROM reposts r0
                    JOIN posts p0 ON p0.id = r0.post_id AND p0.deleted_at IS NULL AND p0.status = 'visible'
                    JOIN users au ON au.id = p0.author_id AND au.deleted_at IS NULL
                    WHERE r0.user_id = a.id AND r0.deleted_at IS NULL {repost_keyset}
                      -- the newest repost of the post by someone followed (ties: the greater id)
                      AND NOT EXISTS (SELECT 1 FROM reposts rp WHERE rp.post_id = r0.post_id
                                        AND rp.deleted_at IS NULL AND rp.user_id IN (SELECT id FROM followed)
                                        AND (rp.created_at, rp.user_id) > (r0.created_at, r0.user_id))
                      AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = %(me)s
                                        AND m.muted_id = p0.author_id AND m.deleted_at IS NULL)
                      AND {author_visible_sql("p0.author_id", "%(me)s::uuid")}
                    ORDER BY r0.created_at DESC, r0.post_id DESC LIMIT %(limit)s) r1)
            SELECT {FEED_POST_COLUMNS}, pc.reactions, pc.comments, pc.reposts,
                   e.position, e.reposted_by
            FROM entries e
            JOIN posts p ON p.id = e.post_id
            JOIN users u ON u.id = p.author_id JOIN profiles pr ON pr.user_id = p.author_id
            JOIN post_counts pc ON pc.post_id = p.id
            ORDER BY e.position DESC, e.post_id DESC
            LIMIT %(limit)s""",  # noqa: S608 (constants and fixed keyset clauses; values are parameters)
        params,
    )


async def _not_to_show(uow: UnitOfWork, me: str, items: list[dict[str, Any]]) -> set[str]:
    """Authors the caller muted or is blocked with or may not see (the privacy rule), and posts deleted,
    hidden or removed since they were fanned out: two statements in one short transaction, so such posts
    never show even before the projections catch up."""
    if not items:
        return set()
    cur = await uow.conn.execute(
        """SELECT muted_id::text FROM mutes WHERE muter_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT blocked_id::text FROM blocks WHERE blocker_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT blocker_id::text FROM blocks WHERE blocked_id = %(me)s AND deleted_at IS NULL
           UNION ALL SELECT id::text FROM posts
                     WHERE id = ANY(%(posts)s) AND (deleted_at IS NOT NULL OR status <> 'visible')""",
        {"me": UUID(me), "posts": [UUID(item["postId"]) for item in items]},
    )
    hidden = {row[0] for row in await cur.fetchall()}
    # The privacy rule (services/audience.py): an author who turned private is gone from a non-follower's
    # feed at once (a feed may still hold, or pull, their posts until feed maintenance catches up).
    authors = {UUID(str(item["authorId"])) for item in items}
    return hidden | {str(a) for a in authors - await visible_authors(uow, authors)}


def _feed_item_from_row(row: _FeedPostWithCounts, media_urls: MediaUrls) -> FeedItem:
    """A FeedItem from the canonical tables, shaped as hydration shapes one from the projections."""
    return FeedItem(
        post_id=row.post_id,
        author_id=row.author_id,
        author=Author(
            user_id=row.author_id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        ),
        content=row.content,
        media=media_of(row.media, media_urls),
        created_at=row.created_at,
        edited_at=row.edited_at,
        counts=full_reaction_counts(row.reactions),
        comment_count=row.comments,
        repost_count=row.reposts,
        reposted_by=row.reposted_by,
        reposted_at=row.position if row.reposted_by else None,
        quoted=unavailable(row.quote_post_id) if row.quote_post_id else None,
    )
