"""The feed read's guess of who the caller is and whom they pull (services/feed_reads.py): a bounded
per-worker memory, and a first round settled on PostgreSQL's answer, never on the guess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from shared_code.adapters.availability import RequestBudget
from shared_code.domain.feed_merge import PullWindow, SourcePage
from shared_code.services.feed_reads import Reader, RecentReaders, _Guessed, _settled

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_recent_readers_keep_the_most_recently_read_few() -> None:
    readers = RecentReaders(size=2)
    for subject in ("a", "b"):
        readers.put(subject, Reader(subject, ()))
    assert readers.get("a") == Reader("a", ())  # now the most recent
    readers.put("c", Reader("c", ()))
    assert readers.get("b") is None
    assert readers.get("a") == Reader("a", ()) and readers.get("c") == Reader("c", ())


async def test_a_first_round_guessed_on_the_same_windows_is_used_as_it_is() -> None:
    one = PullWindow("author-1", T0, T0, True)
    two = PullWindow("author-2", T0, T0 + timedelta(hours=1), False)
    feed, first, second = (SourcePage([{"postId": str(i)}], exhausted=True) for i in range(3))
    guessed = _Guessed(feed, {one: first, two: second})
    # No request may be made (no database): every window PostgreSQL gave was queried on the guess.
    pages = await _settled(
        cast(Any, None), cast(RequestBudget, None), "me", guessed, [two, one], T0 - timedelta(days=1), None, 5
    )
    assert pages == [feed, second, first]


async def test_a_window_the_guess_had_otherwise_is_queried_again() -> None:
    old = PullWindow("author-1", T0, T0, False)
    now = PullWindow("author-1", T0, T0 + timedelta(minutes=1), True)  # crossed again since
    asked: list[PullWindow] = []

    class Db:
        def get_container_client(self, name: str) -> Any:
            return Container()

    class Container:
        def query_items(self, query: str, parameters: list[dict[str, Any]], **kwargs: Any) -> Any:
            asked.append(now)
            return Pages()

    class Pages:
        def by_page(self, continuation: Any = None) -> Any:
            return self

        def __aiter__(self) -> Any:
            return self

        async def __anext__(self) -> Any:
            raise StopAsyncIteration

    class Budget:
        def guard(self) -> Any:
            from contextlib import asynccontextmanager

            @asynccontextmanager
            async def nothing() -> Any:
                yield

            return nothing()

    feed = SourcePage([], exhausted=True)
    guessed = _Guessed(feed, {old: SourcePage([{"postId": "stale"}], exhausted=True)})
    pages = await _settled(
        cast(Any, Db()), cast(RequestBudget, Budget()), "me", guessed, [now], T0 - timedelta(days=1), None, 5
    )
    assert asked == [now]
    assert pages[0] is feed and len(pages) == 2 and pages[1].entries == []
