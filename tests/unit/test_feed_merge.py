"""The home feed's merge (shared_code/domain/feed_merge.py), without I/O.

The property: whatever the follow graph, the threshold crossings (in any order of fan-out), the
deletes, mutes and blocks, the retention horizon and the page size, paging through the merged feed
(userFeed + pulled authors + PostgreSQL past the horizon) gives exactly the reference feed computed
from the canonical data: newest first, every post once, none missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared_code.domain.feed_merge import (
    Key,
    PullWindow,
    SourcePage,
    cosmos_time,
    entry_key,
    horizon,
    is_pulled,
    item_ttl_seconds,
    likely_page,
    merge_sources,
    newer_than,
    parse_time,
    read_page,
    trim_split,
    trims_after,
)

BASE = datetime(2026, 12, 1, tzinfo=UTC)
ME = 0


@dataclass(frozen=True)
class Post:
    id: str
    author: int
    at: datetime
    deleted: bool

    @property
    def key(self) -> Key:
        return self.at, self.id

    def entry(self, version: int = 1) -> dict[str, Any]:
        return {
            "postId": self.id,
            "authorId": str(self.author),
            "createdAt": cosmos_time(self.at),
            "postVersion": version,
        }


@dataclass
class World:
    """Canonical data (follows, hidden authors, posts) and the projections a fan-out made of it."""

    followees: set[int]
    hidden_authors: set[int]
    posts: list[Post]
    edge: datetime
    my_feed: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: dict[int, PullWindow] = field(default_factory=dict)
    full_pages_look_unfinished: bool = False
    # Sources are queried against this horizon (at most `edge`) and cut at `edge`, as the first round
    # of a page is, before the feed's trim floor is known.
    fetch_edge: datetime | None = None

    def fan_out(self, post: Post, pulled: bool, version: int) -> None:
        """What FeedService.fan_out_post does for a visible post, for the caller's feed and the windows."""
        if pulled:
            old = self.windows.get(post.author)
            since = min(old.since, post.at) if old else post.at
            last = max(old.last, post.at) if old else post.at
            self.windows[post.author] = PullWindow(str(post.author), since, last, pulling=True)
            recipients = {post.author}
        else:
            old = self.windows.get(post.author)
            if old is not None:
                self.windows[post.author] = PullWindow(str(post.author), old.since, old.last, pulling=False)
            recipients = {post.author} | ({ME} if post.author in self.followees else set())
        if ME in recipients:
            self.my_feed[post.id] = post.entry(version)

    def reference(self) -> list[str]:
        authors = ({ME} | self.followees) - self.hidden_authors
        seen = [p for p in self.posts if not p.deleted and p.author in authors]
        return [p.id for p in sorted(seen, key=lambda p: p.key, reverse=True)]

    # --- the sources, as the queries of services/feed_reads.py select them ------------------------

    def _page(self, entries: list[dict[str, Any]], position: Key | None, n: int) -> SourcePage:
        fetch_edge = self.edge if self.fetch_edge is None else self.fetch_edge
        selected = sorted(
            (
                e
                for e in entries
                if parse_time(e["createdAt"]) > fetch_edge and (position is None or entry_key(e) < position)
            ),
            key=entry_key,
            reverse=True,
        )
        exhausted = len(selected) < n or (len(selected) == n and not self.full_pages_look_unfinished)
        return newer_than(SourcePage(selected[:n], exhausted), self.edge)

    async def cosmos(self, position: Key | None, n: int) -> list[SourcePage]:
        pages = [self._page(list(self.my_feed.values()), position, n)]
        for author, window in self.windows.items():
            if author not in self.followees or author in self.hidden_authors:
                continue  # the reader's PostgreSQL query leaves these out
            if not window.overlaps(self.edge, position):
                continue
            pulled = [
                p.entry(2)
                for p in self.posts
                if p.author == author
                and not p.deleted
                and p.at >= window.since
                and (window.pulling or p.at <= window.last)
            ]
            pages.append(self._page(pulled, position, n))
        return pages

    async def screen(self, entries: list[dict[str, Any]]) -> Any:
        deleted = {p.id for p in self.posts if p.deleted}
        hidden = {str(a) for a in self.hidden_authors}
        return lambda e: e["postId"] in deleted or e["authorId"] in hidden

    async def postgres(self, position: Key | None, n: int, not_after: datetime) -> list[dict[str, Any]]:
        authors = ({ME} | self.followees) - self.hidden_authors
        rows = sorted(
            (
                p
                for p in self.posts
                if not p.deleted
                and p.author in authors
                and p.at <= not_after
                and (position is None or p.key < position)
            ),
            key=lambda p: p.key,
            reverse=True,
        )
        return [p.entry() for p in rows[:n]]


async def page_through(world: World, limit: int) -> list[str]:
    seen: list[str] = []
    after: Key | None = None
    for _ in range(4 * len(world.posts) + 10):
        page = await read_page(limit, after, world.edge, world.cosmos, world.screen, world.postgres)
        entries = page.cosmos_entries + page.postgres_entries
        assert len(entries) <= limit
        seen += [e["postId"] for e in entries]
        if not page.more:
            return seen
        assert page.position is not None and (after is None or page.position < after), "the cursor moves on"
        after = page.position
    raise AssertionError("paging did not end")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, int]:
    users = draw(st.integers(min_value=2, max_value=6))
    others = list(range(1, users))
    followees = set(draw(st.lists(st.sampled_from(others), max_size=len(others))))
    hidden = set(draw(st.lists(st.sampled_from(others), max_size=2)))
    ids = draw(st.lists(st.uuids(), max_size=30, unique=True))
    posts = [
        Post(
            id=str(post_id),
            author=draw(st.integers(min_value=0, max_value=users - 1)),
            # few distinct seconds: many posts share a createdAt, so the postId tiebreak matters
            at=BASE + timedelta(seconds=draw(st.integers(min_value=0, max_value=5))),
            deleted=draw(st.integers(min_value=0, max_value=5)) == 0,
        )
        for post_id in ids
    ]
    edge = BASE + timedelta(seconds=draw(st.integers(min_value=-1, max_value=6)))
    early = timedelta(seconds=draw(st.sampled_from([0, 0, 1, 3, 20])))
    world = World(
        followees,
        hidden,
        posts,
        edge,
        full_pages_look_unfinished=draw(st.booleans()),
        fetch_edge=edge - early,
    )
    # Fan-out in any order, each post at least once (edits fan out again), each time above or below
    # the threshold as the author's follower count then says.
    events = draw(st.permutations(list(range(len(posts)))))
    events += (
        draw(st.lists(st.integers(min_value=0, max_value=max(0, len(posts) - 1)), max_size=8))
        if posts
        else []
    )
    for version, index in enumerate(events, start=1):
        world.fan_out(posts[index], pulled=draw(st.booleans()), version=version)
    limit = draw(st.integers(min_value=1, max_value=7))
    return world, limit


@settings(max_examples=400, deadline=None)
@given(worlds())
async def test_paging_through_the_merged_feed_gives_the_reference_feed(case: tuple[World, int]) -> None:
    world, limit = case
    assert await page_through(world, limit) == world.reference()


async def test_a_threshold_crossing_both_ways_changes_nothing_a_follower_sees() -> None:
    posts = [
        Post(str(UUID(int=i + 1)), author=1, at=BASE + timedelta(seconds=i), deleted=False) for i in range(9)
    ]
    world = World({1}, set(), posts, edge=BASE - timedelta(days=1))
    # fanned out, then above the threshold (pulled), then below again: and fan-out late for some
    for post, pulled in zip(posts, [False, False, False, True, True, True, False, False, False], strict=True):
        world.fan_out(post, pulled, version=1)
    assert world.windows[1] == PullWindow("1", posts[3].at, posts[5].at, pulling=False)
    for limit in (1, 2, 4, 20):
        assert await page_through(world, limit) == world.reference()
    assert len(world.reference()) == 9


async def test_past_the_horizon_the_same_cursor_goes_on_from_postgres() -> None:
    posts = [
        Post(str(UUID(int=i + 1)), author=1, at=BASE + timedelta(seconds=i), deleted=False) for i in range(6)
    ]
    world = World({1}, set(), posts, edge=BASE + timedelta(seconds=2, microseconds=500))
    for post in posts:
        world.fan_out(post, pulled=False, version=1)
    first = await read_page(2, None, world.edge, world.cosmos, world.screen, world.postgres)
    assert [e["postId"] for e in first.cosmos_entries] == [posts[5].id, posts[4].id]
    second = await read_page(2, first.position, world.edge, world.cosmos, world.screen, world.postgres)
    # one from Cosmos DB (the last newer than the horizon), then PostgreSQL on the same page
    assert [e["postId"] for e in second.cosmos_entries] == [posts[3].id]
    assert [e["postId"] for e in second.postgres_entries] == [posts[2].id]
    third = await read_page(2, second.position, world.edge, world.cosmos, world.screen, world.postgres)
    assert (third.cosmos_entries, [e["postId"] for e in third.postgres_entries]) == (
        [],
        [posts[1].id, posts[0].id],
    )
    assert not third.more


def test_a_post_in_two_sources_shows_once_in_its_newest_version() -> None:
    post = Post(str(UUID(int=7)), author=1, at=BASE, deleted=False)
    merged = merge_sources(
        [SourcePage([post.entry(1)], exhausted=True), SourcePage([post.entry(3)], exhausted=True)],
        limit=5,
        hidden=lambda e: False,
    )
    assert [(e["postId"], e["postVersion"]) for e in merged.entries] == [(post.id, 3)]
    assert merged.cosmos_done


def test_nothing_below_an_unfinished_source_is_taken_before_it() -> None:
    a = [Post(str(UUID(int=i)), 1, BASE + timedelta(seconds=10 - i), False) for i in (1, 2)]
    b = [Post(str(UUID(int=i)), 2, BASE + timedelta(seconds=10 - i), False) for i in (3, 4)]
    merged = merge_sources(
        [
            SourcePage([p.entry() for p in a], exhausted=False),
            SourcePage([p.entry() for p in b], exhausted=True),
        ],
        limit=10,
        hidden=lambda e: False,
    )
    # source a may hold more between a[1] and b[0]: b's entries wait for the next round
    assert [e["postId"] for e in merged.entries] == [a[0].id, a[1].id]
    assert merged.position == a[1].key and not merged.cosmos_done


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 40), max_size=8, unique=True), min_size=1, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.integers(1, 10),
)
def test_the_page_read_ahead_holds_the_merged_page_when_nothing_is_hidden(
    sources: list[list[int]], exhausted: list[bool], limit: int
) -> None:
    """The feed read hydrates `likely_page` while the screen runs: when the screen hides nothing, the
    merged page needs no other entry (a post may be in several sources)."""
    pages = []
    for ids, done in zip(sources, exhausted, strict=False):
        posts = [Post(str(UUID(int=n + 1)), 1, BASE + timedelta(seconds=n), False) for n in ids]
        entries = [p.entry() for p in sorted(posts, key=lambda p: p.key, reverse=True)]
        pages.append(SourcePage(entries, exhausted=done))
    merged = merge_sources(pages, limit, hidden=lambda e: False)
    likely = [e["postId"] for e in likely_page([e for p in pages for e in p.entries], limit)]
    assert [e["postId"] for e in merged.entries] == likely[: len(merged.entries)]


# --- the threshold and retention ---------------------------------------------------------------------


def test_the_threshold_is_more_followers_than_the_setting() -> None:
    assert (is_pulled(10_000, 10_000), is_pulled(10_001, 10_000)) == (False, True)


def test_a_window_overlaps_a_page_only_where_it_may_hold_entries() -> None:
    window = PullWindow("a", since=BASE, last=BASE + timedelta(hours=1), pulling=False)
    assert window.overlaps(BASE - timedelta(days=1), None)
    assert not window.overlaps(BASE + timedelta(hours=1), None)  # all at or before the horizon
    assert not window.overlaps(BASE - timedelta(days=1), (BASE - timedelta(seconds=1), "x"))
    assert PullWindow("a", BASE, BASE, pulling=True).overlaps(BASE + timedelta(days=9), None)


def test_items_expire_their_retention_after_the_post_and_old_posts_are_not_written() -> None:
    ttl = timedelta(days=30)
    assert item_ttl_seconds(BASE, BASE, ttl) == 30 * 86400
    assert item_ttl_seconds(BASE, BASE + timedelta(days=29), ttl) == 86400
    assert item_ttl_seconds(BASE, BASE + timedelta(days=30), ttl) is None


def test_the_horizon_is_the_retention_plus_a_margin_or_the_trim_floor() -> None:
    ttl = timedelta(days=30)
    now = BASE + timedelta(days=40)
    assert horizon(now, ttl, None) == now - ttl + timedelta(hours=1)
    floor = now - timedelta(days=2)
    assert horizon(now, ttl, floor) == floor
    assert horizon(now, timedelta(seconds=100), None) == now - timedelta(seconds=95)


def test_a_trim_keeps_the_newest_and_raises_the_floor_to_the_newest_deleted() -> None:
    keys = [(BASE + timedelta(seconds=s), str(UUID(int=s + 1))) for s in (5, 1, 4, 2, 3)]
    beyond, floor = trim_split(keys, 3)
    assert beyond == [
        (BASE + timedelta(seconds=2), str(UUID(int=3))),
        (BASE + timedelta(seconds=1), str(UUID(int=2))),
    ]
    assert floor == BASE + timedelta(seconds=2)
    assert trim_split(keys, 5) == ([], None)


def test_trims_come_about_once_in_a_tenth_of_the_cap_writes() -> None:
    trims = sum(trims_after("feed", str(UUID(int=i)), 1000) for i in range(20_000))
    assert 100 <= trims <= 300  # about 200
    assert all(trims_after("feed", str(UUID(int=i)), 5) for i in range(50))


class _Stamped(BaseModel):
    at: datetime


@pytest.mark.parametrize("microsecond", [0, 5, 123456])
def test_feed_times_read_back_as_the_times_the_projections_write(microsecond: int) -> None:
    at = datetime(2026, 12, 3, 14, 31, 23, microsecond, tzinfo=UTC)
    assert parse_time(cosmos_time(at)) == parse_time(_Stamped(at=at).model_dump(mode="json")["at"]) == at
    assert cosmos_time(at.astimezone(tz=None)) == cosmos_time(at)


@given(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=2, max_size=20))
def test_feed_times_sort_as_strings_the_way_they_sort_as_times(times: list[datetime]) -> None:
    """Cosmos DB orders and compares createdAt as strings; a whole second ('…:05Z' in pydantic's
    form) would sort after a later time in the same second ('…:05.000005Z')."""
    assert sorted(times, key=cosmos_time) == sorted(times)


async def test_a_page_ending_at_the_start_of_a_pull_window_still_pulls_the_rest_of_that_instant() -> None:
    pulled = [Post(str(UUID(int=i)), author=1, at=BASE, deleted=False) for i in (1, 2)]
    pushed = Post(str(UUID(int=3)), author=2, at=BASE, deleted=False)
    world = World({1, 2}, set(), [*pulled, pushed], edge=BASE - timedelta(days=1))
    for post in pulled:
        world.fan_out(post, pulled=True, version=1)
    world.fan_out(pushed, pulled=False, version=1)
    assert await page_through(world, 1) == [pushed.id, pulled[1].id, pulled[0].id]
