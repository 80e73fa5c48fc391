"""Feed items are references: the pure parts of showing them (services/feed_hydration.py) and of
deciding when a new version of a post needs feed writes at all (services/feeds.py)."""

from __future__ import annotations

from typing import Any, cast
from uuid import uuid4

import pytest

from shared_code.adapters.media_signing import MediaUrls
from shared_code.domain.events import MediaRef
from shared_code.services.feed_hydration import Sources, _missing, hydrate
from shared_code.services.feeds import already_in_feeds, fanout_state_document, feed_item

ANN, BEN = str(uuid4()), str(uuid4())


class _Urls:
    def url(self, ref: MediaRef) -> str:
        return f"https://media.example/{ref.blob_path}"


URLS = cast(MediaUrls, _Urls())


def post(post_id: str, author: str = ANN, **changes: Any) -> dict[str, Any]:
    return {
        "id": post_id,
        "postId": post_id,
        "authorId": author,
        "author": {"userId": author, "username": "old", "displayName": "Old", "avatarUrl": None},
        "content": "current words",
        "media": [],
        "status": "visible",
        "createdAt": "2026-12-03T10:00:00+00:00",
        "editedAt": None,
        "deleted": False,
        "version": 1,
        **changes,
    }


def profile(user_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": user_id,
        "userId": user_id,
        "username": "ann",
        "displayName": "Ann Now",
        "avatarUrl": "https://example.org/now.png",
        "deleted": False,
        **changes,
    }


def test_an_item_shows_the_current_post_and_author_not_the_copies_an_old_item_carries() -> None:
    p = str(uuid4())
    # a feed item as fan-out wrote them before items became references
    old_shape = {
        **feed_item(BEN, post(p)),
        "author": {"userId": ANN, "username": "old", "displayName": "Old", "avatarUrl": None},
        "content": "stale copy",
        "media": [],
    }
    sources = Sources(
        posts={p: post(p, content="edited words", version=2, editedAt="2026-12-03T11:00:00+00:00")},
        profiles={ANN: profile(ANN)},
        counts={p: {"reactions": {"like": 2}, "comments": 1}},
    )
    [item] = hydrate([old_shape], sources, URLS)
    assert item.content == "edited words"
    assert (item.author.display_name, item.author.avatar_url) == ("Ann Now", "https://example.org/now.png")
    assert item.edited_at is not None
    assert (item.counts["like"], item.counts["love"], item.comment_count) == (2, 0, 1)


def test_a_thin_item_hydrates_with_media_urls_signed_at_read_time() -> None:
    p, media_id = str(uuid4()), str(uuid4())
    media = [{"mediaId": media_id, "contentType": "image/png", "blobPath": f"u/{media_id}"}]
    sources = Sources(posts={p: post(p, media=media)}, profiles={ANN: profile(ANN)}, counts={})
    [item] = hydrate([feed_item(BEN, post(p))], sources, URLS)
    assert [m.url for m in item.media] == [f"https://media.example/u/{media_id}"]
    assert item.comment_count == 0 and set(item.counts.values()) == {0}


@pytest.mark.parametrize(
    "changes",
    [{"deleted": True}, {"status": "hidden"}, {"status": "removed"}],
    ids=["deleted", "hidden", "removed"],
)
def test_a_post_no_longer_shown_is_dropped(changes: dict[str, Any]) -> None:
    kept, gone = str(uuid4()), str(uuid4())
    sources = Sources(
        posts={kept: post(kept), gone: post(gone, **changes)}, profiles={ANN: profile(ANN)}, counts={}
    )
    items = hydrate([feed_item(BEN, post(gone)), feed_item(BEN, post(kept))], sources, URLS)
    assert [str(i.post_id) for i in items] == [kept]


def test_a_post_found_nowhere_or_by_a_deleted_account_is_dropped_and_order_is_kept() -> None:
    a, b, c, d = (str(uuid4()) for _ in range(4))
    sources = Sources(
        posts={a: post(a), c: post(c, author=BEN), d: post(d)},
        profiles={ANN: profile(ANN), BEN: profile(BEN, deleted=True)},
        counts={},
    )
    entries = [feed_item(BEN, post(x, author=BEN if x == c else ANN)) for x in (d, a, b, c)]
    assert [str(i.post_id) for i in hydrate(entries, sources, URLS)] == [d, a]


def test_an_author_not_projected_yet_shows_as_the_post_snapshot_says() -> None:
    p = str(uuid4())
    sources = Sources(posts={p: post(p)}, profiles={}, counts={})
    [item] = hydrate([feed_item(BEN, post(p))], sources, URLS)
    assert (item.author.username, item.author.display_name) == ("old", "Old")


def test_what_the_projections_missed_is_asked_once_each() -> None:
    a, b = str(uuid4()), str(uuid4())
    entries = [feed_item(BEN, post(a)), feed_item(BEN, post(b, author=BEN)), feed_item(ANN, post(a))]
    found = Sources(posts={a: post(a)}, profiles={ANN: profile(ANN)}, counts={a: {}})
    assert _missing(entries, found) == ([b], [BEN], [b])


def test_a_feed_item_is_a_reference_of_fixed_small_shape() -> None:
    p = str(uuid4())
    item = feed_item(BEN, post(p, content="x" * 2000, version=3))
    assert set(item) == {
        "id",
        "recipientId",
        "postId",
        "authorId",
        "createdAt",
        "postVersion",
        "correlationId",
    }
    assert item["postVersion"] == 3


def test_an_edit_needs_no_feed_write_once_a_visible_fan_out_completed() -> None:
    p = str(uuid4())
    v1, v2 = post(p), post(p, version=2, content="edited")
    done = fanout_state_document(v1, visible=True, complete=True)
    assert already_in_feeds(done, v2)
    assert already_in_feeds(done, v1)  # the same version again (at-least-once delivery)


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (None, "no fan-out recorded (the first version, or the change feed coalesced versions)"),
        ({"visible": True, "complete": False, "version": 1}, "a fan-out that did not complete"),
        ({"visible": False, "complete": True, "version": 2}, "taken out of feeds since"),
        ({"visible": False, "complete": False, "version": 2}, "a removal half-way"),
        ({"visible": True, "complete": True, "version": 5}, "a state newer than this version"),
    ],
)
def test_a_visible_version_fans_out_in_full_unless_a_visible_fan_out_completed(
    state: dict[str, Any] | None, why: str
) -> None:
    assert not already_in_feeds(state, post(str(uuid4()), version=3)), why


def test_a_removal_is_never_skipped() -> None:
    p = str(uuid4())
    done = fanout_state_document(post(p), visible=True, complete=True)
    assert not already_in_feeds(done, post(p, version=2, status="hidden"))
    assert not already_in_feeds(done, post(p, version=2, deleted=True))


def test_the_fan_out_state_never_expires_and_lives_in_the_post_partition() -> None:
    p = str(uuid4())
    state = fanout_state_document(post(p, version=4), visible=True, complete=False)
    assert (state["id"], state["subjectId"], state["version"], state["ttl"]) == (f"{p}:fanout", p, 4, -1)
