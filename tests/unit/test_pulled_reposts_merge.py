"""Reposts pulled from big reposters, merged with the reader's own feed (domain/feed_merge.shadowed,
newer_reposter), as properties over generated feeds: paging through with any page size shows each
post that something keeps exactly once, with its newest reposter, and a post kept only by undone
reposts not at all. Pure: the sources are lists, the facts are what PostgreSQL and userFeed would say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.domain.feed_merge import (
    Key,
    PullWindow,
    RepostFacts,
    SourcePage,
    cosmos_time,
    entry_key,
    newer_reposter,
    newest_pulled_reposts,
    read_page,
    shadowed,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
EDGE = T0 - timedelta(days=1)
BIG = ("b1", "b2", "b3")  # big reposters the reader follows (pulled)


@dataclass(frozen=True)
class PostCase:
    post_id: str
    at: datetime
    in_feed: bool  # the reader's userFeed holds an item for it (at its own time)
    feed_label: tuple[str, datetime] | None  # the fanned-out reposter the item shows
    big_author: bool  # its author is pulled: an authorPosts entry at its own time
    reposts: tuple[tuple[str, datetime, bool], ...]  # (big reposter, time, still live)


@st.composite
def post_cases(draw: st.DrawFn) -> list[PostCase]:
    count = draw(st.integers(min_value=1, max_value=8))
    cases = []
    for i in range(count):
        at = T0 + timedelta(minutes=draw(st.integers(0, 50)))
        reposters = draw(st.lists(st.sampled_from(BIG), unique=True, max_size=3))
        reposts = tuple(
            (r, at + timedelta(minutes=draw(st.integers(1, 50))), draw(st.booleans())) for r in reposters
        )
        in_feed = draw(st.booleans())
        label = None
        if in_feed and draw(st.booleans()):
            label = ("small", at + timedelta(minutes=draw(st.integers(1, 50))))
        cases.append(PostCase(f"{i:04d}", at, in_feed, label, draw(st.booleans()), reposts))
    return cases


def _sources(cases: list[PostCase]) -> list[list[dict[str, Any]]]:
    feed, by_author = [], []
    pulled: dict[str, list[dict[str, Any]]] = {r: [] for r in BIG}
    for case in cases:
        if case.in_feed:
            item: dict[str, Any] = {
                "postId": case.post_id,
                "authorId": "a",
                "createdAt": cosmos_time(case.at),
            }
            if case.feed_label:
                item.update(repostedBy=case.feed_label[0], repostedAt=cosmos_time(case.feed_label[1]))
            feed.append(item)
        if case.big_author:
            by_author.append(
                {"postId": case.post_id, "authorId": "a", "createdAt": cosmos_time(case.at), "pulled": True}
            )
        for reposter, at, _ in case.reposts:  # an undone one may still be in authorPosts (tombstone lag)
            pulled[reposter].append(
                {
                    "postId": case.post_id,
                    "authorId": "a",
                    "createdAt": cosmos_time(at),
                    "repostedBy": reposter,
                    "repostedAt": cosmos_time(at),
                    "pulled": True,
                }
            )
    return [sorted(s, key=entry_key, reverse=True) for s in (feed, by_author, *pulled.values())]


def _facts(cases: list[PostCase]) -> RepostFacts:
    windows = [PullWindow(r, T0 - timedelta(days=1), T0, pulling=True) for r in BIG]
    live = [(c.post_id, r, at) for c in cases for r, at, alive in c.reposts if alive]
    return RepostFacts(
        newest_pulled=newest_pulled_reposts(live, windows, EDGE),
        in_feed=frozenset(c.post_id for c in cases if c.in_feed),
    )


def _expected(cases: list[PostCase]) -> dict[str, str | None]:
    """Each post something keeps, with the reposter it must show (the newest, or none)."""
    expected: dict[str, str | None] = {}
    for case in cases:
        live = [(at, r) for r, at, alive in case.reposts if alive]
        if not (case.in_feed or case.big_author or live):
            continue
        labels = live + ([(case.feed_label[1], case.feed_label[0])] if case.feed_label else [])
        expected[case.post_id] = max(labels)[1] if labels else None
    return expected


async def _page_through(cases: list[PostCase], limit: int) -> list[dict[str, Any]]:
    sources = _sources(cases)
    facts = _facts(cases)

    async def cosmos(position: Key | None, n: int) -> list[SourcePage]:
        pages = []
        for source in sources:
            after = [dict(e) for e in source if position is None or entry_key(e) < position]
            pages.append(SourcePage(after[:n], exhausted=len(after) <= n))
        return pages

    async def screen(entries: list[dict[str, Any]]) -> Any:
        for entry in entries:  # as services/pulled_reposts.repost_facts relabels
            newer = newer_reposter(entry, facts)
            if newer is not None:
                entry["repostedBy"], entry["repostedAt"] = newer.user_id, cosmos_time(newer.at)
        return lambda entry: shadowed(entry, facts)

    async def postgres(position: Key | None, n: int, edge: datetime) -> list[dict[str, Any]]:
        return []

    shown: list[dict[str, Any]] = []
    after: Key | None = None
    for _ in range(200):
        page = await read_page(limit, after, EDGE, cosmos, screen, postgres)
        shown += page.cosmos_entries
        if not page.more:
            return shown
        after = page.position
    raise AssertionError("paging did not end")


@settings(max_examples=150, deadline=None)
@given(post_cases(), st.integers(min_value=1, max_value=5))
async def test_each_kept_post_shows_once_with_its_newest_reposter_whatever_the_page_size(
    cases: list[PostCase], limit: int
) -> None:
    shown = await _page_through(cases, limit)
    ids = [entry["postId"] for entry in shown]
    assert len(ids) == len(set(ids)), ids  # never twice, across pages
    assert {e["postId"]: e.get("repostedBy") for e in shown} == _expected(cases)
    assert [entry_key(e) for e in shown] == sorted((entry_key(e) for e in shown), reverse=True)


def test_a_pulled_repost_outside_the_reposters_window_or_below_the_horizon_is_not_counted() -> None:
    window = PullWindow("b1", T0, T0 + timedelta(hours=1), pulling=False)
    reposts = [
        ("p", "b1", T0 + timedelta(minutes=30)),  # inside
        ("q", "b1", T0 + timedelta(hours=2)),  # after the window closed: fanned out
        ("r", "b1", T0 - timedelta(minutes=1)),  # before it opened
        ("s", "b2", T0 + timedelta(minutes=30)),  # not someone the reader pulls
    ]
    assert set(newest_pulled_reposts(reposts, [window], EDGE)) == {"p"}
    assert newest_pulled_reposts(reposts, [window], T0 + timedelta(hours=1)) == {}
