"""Pure pieces of mentions, replies, search and trending: the notifications the projections write for
mentions and replies, the prefix range of a name search, and the trending window's hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared_code.domain.discovery import (
    TRENDING_HOURS,
    hour_bucket,
    prefix_upper_bound,
    seen_through,
    trending_window_start,
)
from shared_code.domain.events import (
    AuthorSnapshot,
    CommentCreated,
    PostCounts,
    PostCreated,
    PostUpdated,
    UserCounts,
)
from shared_code.domain.stored_event import StoredEvent
from shared_code.projections.documents import project
from shared_code.projections.writes import NOTIFICATIONS, CreateOnce

ALICE, BOB, CAT = UUID(int=0xA1), UUID(int=0xB0B), UUID(int=0xCA7)
POST, COMMENT, PARENT = UUID(int=0x9057), UUID(int=0xC0), UUID(int=0xC1)
NOW = datetime(2026, 12, 3, 14, 37, 12, tzinfo=UTC)
COUNTS = PostCounts(
    post_id=POST,
    reactions={t: 0 for t in ("like", "love", "laugh", "wow", "sad", "angry")},
    comments=1,
    version=2,
)


def _stored(
    payload: PostCreated | PostUpdated | CommentCreated, aggregate_id: UUID, version: int
) -> StoredEvent:
    return StoredEvent(
        id=1,
        event_id=UUID(int=version),
        aggregate_type=payload.aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        event_type=payload.event_type,
        payload=payload.to_json(),
        metadata={"correlationId": "c"},
        created_at=NOW,
    )


def _notes(event: StoredEvent) -> list[dict[str, object]]:
    writes = project(event)
    assert all(isinstance(w, CreateOnce) for w in writes if w.container == NOTIFICATIONS)
    return sorted((w.document for w in writes if w.container == NOTIFICATIONS), key=lambda d: str(d["id"]))


def _post_created(notify: tuple[UUID, ...]) -> PostCreated:
    return PostCreated(
        post_id=POST,
        author=AuthorSnapshot(user_id=ALICE, username="alice", display_name="Alice", avatar_url=None),
        content="hi @bob @cat",
        media=(),
        status="visible",
        created_at=NOW,
        author_counts=UserCounts(user_id=ALICE, followers=0, following=0, posts=1, version=2),
        mentions=(BOB, CAT),
        notify_mentions=notify,
        hashtags=("intro",),
    )


def test_a_post_notifies_whom_its_event_names_with_ids_from_the_text_and_the_account() -> None:
    notes = _notes(_stored(_post_created((BOB,)), POST, 1))
    assert [(n["id"], n["recipientId"], n["type"], n["actorId"], n["subjectId"]) for n in notes] == [
        (f"mention:{POST}:{BOB}", str(BOB), "mention", str(ALICE), str(POST))
    ]


def test_an_edit_mentioning_someone_again_makes_the_same_notification_id() -> None:
    created = _notes(_stored(_post_created((BOB,)), POST, 1))
    edited = PostUpdated(
        post_id=POST,
        author=AuthorSnapshot(user_id=ALICE, username="alice", display_name="Alice", avatar_url=None),
        content="hi @bob",
        media=(),
        status="visible",
        created_at=NOW,
        edited_at=NOW + timedelta(minutes=1),
        mentions=(BOB,),
        notify_mentions=(BOB,),
    )
    assert [n["id"] for n in _notes(_stored(edited, POST, 3))] == [n["id"] for n in created]


def _comment(author: UUID, parent_author: UUID | None, notify: tuple[UUID, ...] = ()) -> CommentCreated:
    return CommentCreated(
        comment_id=COMMENT,
        post_id=POST,
        post_author_id=ALICE,
        author_id=author,
        parent_id=PARENT if parent_author else None,
        content="reply",
        created_at=NOW,
        post_counts=COUNTS,
        parent_author_id=parent_author,
        notify_mentions=notify,
    )


def test_a_reply_notifies_the_parents_author_and_the_posts_author() -> None:
    notes = _notes(_stored(_comment(BOB, CAT), COMMENT, 1))
    assert [(n["type"], n["recipientId"]) for n in notes] == [("comment", str(ALICE)), ("reply", str(CAT))]


def test_a_reply_to_the_posts_author_notifies_them_once_as_a_reply() -> None:
    notes = _notes(_stored(_comment(BOB, ALICE), COMMENT, 1))
    assert [(n["type"], n["recipientId"]) for n in notes] == [("reply", str(ALICE))]


def test_replying_to_oneself_notifies_only_the_post_author() -> None:
    notes = _notes(_stored(_comment(BOB, BOB), COMMENT, 1))
    assert [(n["type"], n["recipientId"]) for n in notes] == [("comment", str(ALICE))]


def test_a_comment_mention_is_keyed_by_the_comment() -> None:
    notes = _notes(_stored(_comment(BOB, None, notify=(CAT,)), COMMENT, 1))
    assert [n["id"] for n in notes] == [f"comment:{COMMENT}", f"mention:{COMMENT}:{CAT}"]


def _codepoints(text: str) -> list[int]:
    """A string as the "C" collation orders it on UTF-8: by code points."""
    return [ord(c) for c in text]


@given(st.text(min_size=1, max_size=8), st.text(max_size=8), st.text(max_size=8))
def test_the_prefix_range_holds_exactly_the_strings_with_that_prefix(
    prefix: str, rest: str, other: str
) -> None:
    bound = prefix_upper_bound(prefix)
    if bound is None:
        return
    assert _codepoints(prefix) <= _codepoints(prefix + rest) < _codepoints(bound)
    inside = _codepoints(prefix) <= _codepoints(other) < _codepoints(bound)
    assert inside == other.startswith(prefix)


def test_the_prefix_bound_skips_surrogates_and_carries() -> None:
    assert prefix_upper_bound("ab") == "ac"
    assert prefix_upper_bound("a\ud7ff") == "a\ue000"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\U0010ffff") is None


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (NOW, datetime(2026, 12, 2, 15, tzinfo=UTC)),
        (datetime(2026, 12, 3, 14, 0, tzinfo=UTC), datetime(2026, 12, 2, 15, tzinfo=UTC)),
        # Another zone's clock counts the same UTC hours.
        (
            datetime(2026, 12, 3, 20, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2026, 12, 2, 15, tzinfo=UTC),
        ),
    ],
)
def test_the_trending_window_is_the_current_utc_hour_and_the_23_before(
    now: datetime, start: datetime
) -> None:
    assert trending_window_start(now) == start
    assert hour_bucket(now) - trending_window_start(now) == timedelta(hours=TRENDING_HOURS - 1)


def test_a_user_search_round_has_seen_up_to_the_least_end_of_the_branches_that_filled_their_window() -> None:
    a, b = UUID(int=1), UUID(int=2)
    usernames = [("anna", a), ("anne", b)]
    display_names = [("ann", b), ("annz", a)]
    # Both full: the least last entry (entries after it in the other branch are not seen yet).
    assert seen_through([usernames, display_names], window=2) == ("anne", b)
    # One branch ran out of entries in the range: the other's end bounds what was seen.
    assert seen_through([usernames, display_names[:1]], window=2) == ("anne", b)
    assert seen_through([usernames[:1], display_names], window=2) == ("annz", a)
    # Neither full: everything in the range was seen.
    assert seen_through([usernames[:1], []], window=2) is None
