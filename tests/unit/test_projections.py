"""The projection functions (shared_code/projections/documents.py): event → Cosmos writes, and the reactions
change feed's reaction → counters and notification. Pure functions: no I/O here.

Payloads are built with the real event models, so they have exactly the shape the outbox stores.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared_code.domain.events import (
    EVENT_TYPES,
    AccountErased,
    AccountErasureProgressed,
    AccountErasureRequested,
    AccountExportRequested,
    AppealCreated,
    AppealDecided,
    AuthorSnapshot,
    BlockCreated,
    BlockDeleted,
    BookmarkCreated,
    BookmarkDeleted,
    CommentCreated,
    CommentDeleted,
    ConversationCreated,
    ConversationMemberChanged,
    ConversationRead,
    EventPayload,
    FlagCreated,
    FollowCreated,
    FollowDeleted,
    FollowRequestApproved,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    FollowRequestsApprovalProgressed,
    MediaRef,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    MuteCreated,
    MuteDeleted,
    PostCounts,
    PostCreated,
    PostDeleted,
    PostModerated,
    PostUpdated,
    ProfileUpdated,
    ProfileVisibilityChanged,
    ReactionRemoved,
    ReactionSet,
    RepostCreated,
    RepostDeleted,
    UserCounts,
    UserCreated,
    UserDeleted,
    published_payload,
)
from shared_code.domain.feed_merge import cosmos_time
from shared_code.domain.stored_event import StoredEvent
from shared_code.projections.documents import project, reaction_side_effects
from shared_code.projections.writes import (
    AUTHOR_POSTS,
    AUTHOR_POSTS_TTL_SECONDS,
    COUNTERS,
    MESSAGES,
    NO_EXPIRY,
    NOTIFICATIONS,
    PARTITION_KEYS,
    POSTS,
    PROFILES,
    REACTIONS,
    TOMBSTONE_TTL_SECONDS,
    CosmosWrite,
    CreateOnce,
    VersionedUpsert,
)
from shared_code.services.feeds import FeedEntryKeeper, RepostRef, feed_item, feed_time, shows_in_feeds
from tests.unit.test_event_projections import calendar_event_samples

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE, BOB = UUID(int=0xA1), UUID(int=0xB0B)
POST, COMMENT, REACTION, FOLLOW = UUID(int=0x9057), UUID(int=0xC0), UUID(int=0x4EAC), UUID(int=0xF0)
APPEAL = UUID(int=0xA99)
REPOST, BOOKMARK = UUID(int=0x4E9057), UUID(int=0xB00C)
CORRELATION = "corr-123"


def stored(
    payload: EventPayload,
    aggregate_id: UUID,
    version: int,
    *,
    correlation_id: str | None = CORRELATION,
    outbox_id: int = 1,
) -> StoredEvent:
    """The event as the relay hands it to the projections, its payload as the outbox stores it (JSON)."""
    metadata: dict[str, Any] = {"actor": "someone"}
    if correlation_id:
        metadata["correlationId"] = correlation_id
    return StoredEvent(
        id=outbox_id,
        event_id=uuid4(),
        aggregate_type=payload.aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        event_type=payload.event_type,
        payload=payload.to_json(),
        metadata=metadata,
        created_at=NOW,
    )


def user_counts(
    user: UUID, version: int, followers: int = 0, following: int = 0, posts: int = 0
) -> UserCounts:
    return UserCounts(user_id=user, followers=followers, following=following, posts=posts, version=version)


def post_counts(version: int, comments: int = 0, **reactions: int) -> PostCounts:
    full = {t: 0 for t in ("like", "love", "laugh", "wow", "sad", "angry")} | reactions
    return PostCounts(post_id=POST, reactions=full, comments=comments, version=version)


AUTHOR = AuthorSnapshot(user_id=ALICE, username="alice", display_name="Alice", avatar_url=None)
MEDIA = MediaRef(media_id=UUID(int=0x3ED1A), content_type="image/png", blob_path="u/a/1.png")


def sample_events() -> dict[str, StoredEvent]:
    """One realistic event of every type."""
    follow: dict[str, Any] = {
        "follow_id": FOLLOW,
        "follower_id": BOB,
        "followee_id": ALICE,
        "follower_counts": user_counts(BOB, 3, following=1),
        "followee_counts": user_counts(ALICE, 7, followers=1),
    }
    events = [
        stored(
            UserCreated(
                user_id=ALICE,
                username="alice",
                display_name="Alice",
                bio="hi",
                avatar_url=None,
                created_at=NOW,
            ),
            ALICE,
            1,
        ),
        stored(
            ProfileUpdated(
                user_id=ALICE,
                username="alice",
                display_name="Alice A.",
                bio="hello",
                avatar_url="https://img.example/a.png",
                changed=("displayName", "bio"),
            ),
            ALICE,
            2,
        ),
        stored(UserDeleted(user_id=ALICE, deleted_at=NOW), ALICE, 3),
        stored(FollowCreated(**follow, created_at=NOW), FOLLOW, 1),
        stored(FollowDeleted(**follow, cause="unfollow"), FOLLOW, 2),
        stored(BlockCreated(block_id=uuid4(), blocker_id=ALICE, blocked_id=BOB), uuid4(), 1),
        stored(BlockDeleted(block_id=uuid4(), blocker_id=ALICE, blocked_id=BOB), uuid4(), 2),
        stored(MuteCreated(mute_id=uuid4(), muter_id=ALICE, muted_id=BOB), uuid4(), 1),
        stored(MuteDeleted(mute_id=uuid4(), muter_id=ALICE, muted_id=BOB), uuid4(), 2),
        stored(
            PostCreated(
                post_id=POST,
                author=AUTHOR,
                content="first!",
                media=(MEDIA,),
                status="visible",
                created_at=NOW,
                author_counts=user_counts(ALICE, 4, posts=1),
            ),
            POST,
            1,
        ),
        stored(
            PostUpdated(
                post_id=POST,
                author=AUTHOR,
                content="first, edited",
                media=(MEDIA,),
                status="visible",
                created_at=NOW,
                edited_at=NOW,
            ),
            POST,
            2,
        ),
        stored(
            PostDeleted(
                post_id=POST, author_id=ALICE, deleted_at=NOW, author_counts=user_counts(ALICE, 5, posts=0)
            ),
            POST,
            3,
        ),
        stored(
            CommentCreated(
                comment_id=COMMENT,
                post_id=POST,
                post_author_id=ALICE,
                author_id=BOB,
                parent_id=None,
                content="nice",
                created_at=NOW,
                post_counts=post_counts(2, comments=1),
            ),
            COMMENT,
            1,
        ),
        stored(
            CommentDeleted(
                comment_id=COMMENT,
                post_id=POST,
                author_id=BOB,
                deleted_by=BOB,
                post_counts=post_counts(3, comments=0),
            ),
            COMMENT,
            2,
        ),
        stored(
            ReactionSet(
                reaction_id=REACTION,
                post_id=POST,
                post_author_id=ALICE,
                user_id=BOB,
                type="love",
                previous_type="like",
                created_at=NOW,
                post_counts=post_counts(5, love=1),
            ),
            REACTION,
            2,
        ),
        stored(
            ReactionRemoved(
                reaction_id=REACTION,
                post_id=POST,
                post_author_id=ALICE,
                user_id=BOB,
                previous_type="love",
                post_counts=post_counts(6),
            ),
            REACTION,
            3,
        ),
        stored(
            RepostCreated(
                repost_id=REPOST,
                post_id=POST,
                post_author_id=ALICE,
                user_id=BOB,
                created_at=NOW,
                post_counts=post_counts(7).model_copy(update={"reposts": 1}),
            ),
            REPOST,
            1,
        ),
        stored(
            RepostDeleted(
                repost_id=REPOST,
                post_id=POST,
                post_author_id=ALICE,
                user_id=BOB,
                post_counts=post_counts(8),
                cause="unrepost",
            ),
            REPOST,
            2,
        ),
        stored(BookmarkCreated(bookmark_id=BOOKMARK, user_id=BOB, post_id=POST, created_at=NOW), BOOKMARK, 1),
        stored(BookmarkDeleted(bookmark_id=BOOKMARK, user_id=BOB, post_id=POST), BOOKMARK, 2),
        stored(
            FlagCreated(
                flag_id=uuid4(), post_id=POST, reporter_id=BOB, reason="spam", severity="low", created_at=NOW
            ),
            uuid4(),
            1,
        ),
        stored(
            PostModerated(
                post_id=POST,
                author=AUTHOR,
                content="first, edited",
                media=(),
                status="hidden",
                created_at=NOW,
                edited_at=NOW,
                action="hide",
                reason="spam",
                moderator_id=BOB,
            ),
            POST,
            3,
        ),
        stored(
            AppealCreated(
                appeal_id=APPEAL, post_id=POST, author_id=ALICE, statement="not spam", created_at=NOW
            ),
            APPEAL,
            1,
        ),
        stored(
            AppealDecided(
                appeal_id=APPEAL,
                post_id=POST,
                author_id=ALICE,
                decision="upheld",
                reason="spam",
                moderator_id=BOB,
            ),
            APPEAL,
            2,
        ),
        stored(AccountErasureRequested(user_id=ALICE, requested_at=NOW), ALICE, 1),
        stored(AccountErasureProgressed(user_id=ALICE, step="comments", rows_erased=3), ALICE, 2),
        stored(AccountErased(user_id=ALICE, rows_erased=40, erased_at=NOW), ALICE, 14),
        stored(AccountExportRequested(export_id=APPEAL, user_id=ALICE), APPEAL, 1),
        stored(ProfileVisibilityChanged(user_id=ALICE, visibility="private"), ALICE, 3),
        stored(FollowRequestsApprovalProgressed(user_id=ALICE, approved=100, pending_requests=5), ALICE, 4),
        stored(
            FollowRequested(request_id=APPEAL, requester_id=BOB, target_id=ALICE, created_at=NOW), APPEAL, 1
        ),
        stored(
            FollowRequestApproved(
                request_id=APPEAL, requester_id=BOB, target_id=ALICE, by="target", approved_at=NOW
            ),
            APPEAL,
            2,
        ),
        stored(FollowRequestDeclined(request_id=APPEAL, requester_id=BOB, target_id=ALICE), APPEAL, 3),
        stored(
            FollowRequestCancelled(request_id=APPEAL, requester_id=BOB, target_id=ALICE, cause="block"),
            APPEAL,
            4,
        ),
        *_messaging_samples(),
    ]
    return {event.event_type: event for event in events}


def _messaging_samples() -> list[StoredEvent]:
    conversation, member, message = uuid4(), uuid4(), uuid4()
    return [
        stored(
            ConversationCreated(
                conversation_id=conversation, kind="direct", title=None, created_by=ALICE, created_at=NOW
            ),
            conversation,
            1,
        ),
        stored(
            ConversationMemberChanged(
                member_id=member,
                conversation_id=conversation,
                user_id=BOB,
                role="member",
                state="requested",
                change="added",
                by_user_id=ALICE,
            ),
            member,
            1,
        ),
        stored(
            ConversationRead(
                member_id=member,
                conversation_id=conversation,
                user_id=BOB,
                last_read_seq=1,
                last_read_message_id=message,
            ),
            member,
            2,
        ),
        stored(
            MessageSent(
                message_id=message,
                conversation_id=conversation,
                sender_id=ALICE,
                seq=1,
                text="hi",
                encrypted=False,
                reply_to_id=None,
                recipient_ids=(BOB,),
                created_at=NOW,
            ),
            message,
            1,
        ),
        stored(
            MessageEdited(
                message_id=message,
                conversation_id=conversation,
                sender_id=ALICE,
                seq=1,
                text="hey",
                reply_to_id=None,
                created_at=NOW,
                edited_at=NOW,
            ),
            message,
            2,
        ),
        stored(
            MessageDeleted(
                message_id=message,
                conversation_id=conversation,
                sender_id=ALICE,
                seq=1,
                created_at=NOW,
                deleted_at=NOW,
            ),
            message,
            3,
        ),
    ]


EVENTS = {**sample_events(), **calendar_event_samples()}


def one(
    writes: list[CosmosWrite], container: str, kind: type[CosmosWrite] = VersionedUpsert
) -> dict[str, Any]:
    matching = [w for w in writes if w.container == container]
    assert len(matching) == 1, writes
    assert isinstance(matching[0], kind), matching[0]
    return matching[0].document


def containers(writes: list[CosmosWrite]) -> list[tuple[str, str]]:
    return sorted((w.container, type(w).__name__) for w in writes)


# --- coverage and purity --------------------------------------------------------------------------


def test_the_samples_cover_every_event_type() -> None:
    assert set(EVENTS) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_has_a_projection_writing_well_keyed_documents(event_type: str) -> None:
    event = EVENTS[event_type]
    before = copy.deepcopy(event.payload)
    writes = project(event)
    assert writes == project(event)  # deterministic: no clock, no randomness
    assert event.payload == before  # the event is not modified
    for write in writes:
        key_field = PARTITION_KEYS[write.container]
        assert write.partition_key == str(write.document[key_field]), write
        assert isinstance(write.document["id"], str) and write.document["id"]
        assert write.document["correlationId"] == CORRELATION
        if isinstance(write, VersionedUpsert):
            assert isinstance(write.document["version"], int)


def test_an_unknown_event_type_is_an_error_not_silence() -> None:
    event = EVENTS["user.created"]
    unknown = StoredEvent(**{**event.__dict__, "event_type": "user.renamed"})
    with pytest.raises(KeyError):
        project(unknown)


@pytest.mark.parametrize(
    "event_type",
    [
        "block.created",
        "block.deleted",
        "mute.created",
        "mute.deleted",
        "flag.created",
        "appeal.created",
        "appeal.decided",
        "account.erasure_requested",
        "account.erasure_progressed",
        "account.erased",
        "account.export_requested",
        "bookmark.created",
        "bookmark.deleted",
        # Conversations and read positions are read from PostgreSQL (services/message_reads.py).
        "conversation.created",
        "conversation.member_changed",
        "conversation.read",
    ],
)
def test_blocks_mutes_flags_and_appeals_write_no_documents(event_type: str) -> None:
    assert project(EVENTS[event_type]) == []


# --- users -------------------------------------------------------------------------------------


def test_user_created_writes_the_public_profile_at_version_1() -> None:
    writes = project(EVENTS["user.created"])
    assert containers(writes) == [(PROFILES, "VersionedUpsert")]
    doc = one(writes, PROFILES)
    assert doc == {
        "id": str(ALICE),
        "userId": str(ALICE),
        "username": "alice",
        "displayName": "Alice",
        "bio": "hi",
        "avatarUrl": None,
        "deleted": False,
        "ttl": NO_EXPIRY,
        "version": 1,
        "correlationId": CORRELATION,
    }


def test_profile_updated_rewrites_the_profile_with_the_users_version() -> None:
    doc = one(project(EVENTS["profile.updated"]), PROFILES)
    assert (doc["displayName"], doc["bio"], doc["avatarUrl"]) == (
        "Alice A.",
        "hello",
        "https://img.example/a.png",
    )
    assert doc["version"] == 2
    assert doc["deleted"] is False


def test_user_deleted_tombstones_the_profile() -> None:
    doc = one(project(EVENTS["user.deleted"]), PROFILES)
    assert doc["id"] == str(ALICE)
    assert doc["deleted"] is True
    assert doc["ttl"] == TOMBSTONE_TTL_SECONDS
    assert doc["version"] == 3


# --- follows -----------------------------------------------------------------------------------


def test_follow_created_writes_both_users_counts_and_notifies_the_followee() -> None:
    writes = project(EVENTS["follow.created"])
    assert containers(writes) == [
        (COUNTERS, "VersionedUpsert"),
        (COUNTERS, "VersionedUpsert"),
        (NOTIFICATIONS, "CreateOnce"),
    ]
    counters = {w.document["id"]: w.document for w in writes if w.container == COUNTERS}
    assert counters[f"{BOB}:counts"] == {
        "id": f"{BOB}:counts",
        "subjectId": str(BOB),
        "kind": "user",
        "followers": 0,
        "following": 1,
        "posts": 0,
        "version": 3,
        "correlationId": CORRELATION,
    }
    assert counters[f"{ALICE}:counts"]["followers"] == 1
    assert counters[f"{ALICE}:counts"]["version"] == 7  # the followee's own counts version, not the follow's
    note = one(writes, NOTIFICATIONS, CreateOnce)
    assert note == {
        "id": f"follow:{BOB}:{ALICE}",
        "recipientId": str(ALICE),
        "type": "follow",
        "actorId": str(BOB),
        "subjectId": str(BOB),
        "createdAt": NOW.isoformat().replace("+00:00", "Z"),
        "read": False,
        "correlationId": CORRELATION,
    }


def test_a_refollow_gets_the_same_notification_id_so_it_cannot_notify_twice() -> None:
    first = EVENTS["follow.created"]
    again = StoredEvent(**{**first.__dict__, "aggregate_version": 3, "event_id": uuid4(), "id": 99})
    ids = {one(project(e), NOTIFICATIONS, CreateOnce)["id"] for e in (first, again)}
    assert ids == {f"follow:{BOB}:{ALICE}"}


def test_follow_deleted_writes_counts_only() -> None:
    writes = project(EVENTS["follow.deleted"])
    assert containers(writes) == [(COUNTERS, "VersionedUpsert"), (COUNTERS, "VersionedUpsert")]


# --- posts -------------------------------------------------------------------------------------


def test_post_created_writes_the_post_and_the_authors_counts() -> None:
    writes = project(EVENTS["post.created"])
    assert containers(writes) == [
        (AUTHOR_POSTS, "VersionedUpsert"),
        (COUNTERS, "VersionedUpsert"),
        (POSTS, "VersionedUpsert"),
    ]
    doc = one(writes, POSTS)
    assert doc["id"] == doc["postId"] == str(POST)
    assert doc["authorId"] == str(ALICE)
    assert doc["author"]["username"] == "alice"
    assert doc["content"] == "first!"
    assert doc["media"] == [
        {"mediaId": str(MEDIA.media_id), "contentType": "image/png", "blobPath": "u/a/1.png"}
    ]
    assert (doc["status"], doc["deleted"], doc["ttl"], doc["version"]) == ("visible", False, NO_EXPIRY, 1)
    assert doc["editedAt"] is None
    assert shows_in_feeds(doc)
    assert one(writes, COUNTERS)["posts"] == 1


def test_post_updated_writes_the_edit_without_counts() -> None:
    writes = project(EVENTS["post.updated"])
    assert containers(writes) == [(AUTHOR_POSTS, "VersionedUpsert"), (POSTS, "VersionedUpsert")]
    doc = one(writes, POSTS)
    assert (doc["content"], doc["version"]) == ("first, edited", 2)
    assert doc["editedAt"] is not None


def test_post_deleted_keeps_no_content_and_expires() -> None:
    writes = project(EVENTS["post.deleted"])
    doc = one(writes, POSTS)
    assert (doc["content"], doc["media"], doc["deleted"]) == ("", [], True)
    assert doc["ttl"] == TOMBSTONE_TTL_SECONDS
    assert doc["version"] == 3
    assert doc["authorId"] == str(ALICE)
    assert not shows_in_feeds(doc)
    assert one(writes, COUNTERS)["posts"] == 0


def test_a_moderated_post_is_rerendered_with_its_status_and_leaves_feeds() -> None:
    writes = project(EVENTS["post.moderated"])
    assert containers(writes) == [(AUTHOR_POSTS, "VersionedUpsert"), (POSTS, "VersionedUpsert")]
    doc = one(writes, POSTS)
    assert (doc["status"], doc["version"], doc["deleted"]) == ("hidden", 3, False)
    assert doc["content"] == "first, edited"
    assert not shows_in_feeds(doc)


def test_every_post_event_keeps_the_authors_partition_of_author_posts_in_step() -> None:
    """One write per post event whatever the audience: what feed reads pull for big authors."""
    for event_type, status, deleted in (
        ("post.created", "visible", False),
        ("post.updated", "visible", False),
        ("post.moderated", "hidden", False),
        ("post.deleted", "visible", True),
    ):
        writes = project(EVENTS[event_type])
        doc, post = one(writes, AUTHOR_POSTS), one(writes, POSTS)
        assert [w.partition_key for w in writes if w.container == AUTHOR_POSTS] == [str(ALICE)]
        # The same fields; createdAt in the fixed-width form pulled pages are ordered by (a string).
        assert {k: v for k, v in doc.items() if k != "ttl"} == {
            **{k: v for k, v in post.items() if k != "ttl"},
            "createdAt": post["createdAt"] and feed_time(post["createdAt"]),
        }
        assert (doc["status"], doc["deleted"]) == (status, deleted), event_type
        assert doc["ttl"] == (TOMBSTONE_TTL_SECONDS if deleted else AUTHOR_POSTS_TTL_SECONDS)


def test_a_hidden_post_does_not_show_in_feeds() -> None:
    doc = one(project(EVENTS["post.created"]), POSTS)
    assert not shows_in_feeds({**doc, "status": "hidden"})


def test_feed_item_is_keyed_per_recipient_and_carries_the_post_version() -> None:
    doc = one(project(EVENTS["post.updated"]), POSTS)
    item = feed_item(str(BOB), doc)
    assert item["id"] == f"{BOB}:{POST}"
    assert item["recipientId"] == str(BOB)
    assert (item["postId"], item["authorId"]) == (str(POST), str(ALICE))
    assert item["createdAt"] == feed_time(doc["createdAt"])  # fixed width: Cosmos DB orders it as a string
    assert item["postVersion"] == 2
    # a reference: what it shows of the post and its author is read when a feed is read
    assert not {"content", "author", "media", "editedAt"} & item.keys()


def test_a_repost_event_writes_the_posts_counters_and_the_repost_in_the_reposters_partition() -> None:
    created = one(project(EVENTS["repost.created"]), COUNTERS)
    assert (created["id"], created["reposts"], created["version"]) == (f"{POST}:counts", 1, 7)
    undone = one(project(EVENTS["repost.deleted"]), COUNTERS)
    assert (undone["reposts"], undone["version"]) == (0, 8)
    assert sorted(containers(project(EVENTS["repost.created"]))) == [
        (AUTHOR_POSTS, "VersionedUpsert"),
        (COUNTERS, "VersionedUpsert"),
    ]
    # Pulled by the reposter's followers when the reposter is too big to fan out: in the reposter's
    # partition, at the repost's time, versioned by the repost row, naming the post but not its author.
    pulled = one(project(EVENTS["repost.created"]), AUTHOR_POSTS)
    assert pulled == {
        "id": f"{POST}:repost",
        "kind": "repost",
        "authorId": str(BOB),
        "postId": str(POST),
        "repostedBy": str(BOB),
        "createdAt": cosmos_time(NOW),
        "repostedAt": cosmos_time(NOW),
        "deleted": False,
        "status": "visible",
        "ttl": AUTHOR_POSTS_TTL_SECONDS,
        "version": 1,
        "correlationId": CORRELATION,
    }
    assert str(ALICE) not in str(pulled)
    tombstone = one(project(EVENTS["repost.deleted"]), AUTHOR_POSTS)
    assert (tombstone["id"], tombstone["authorId"], tombstone["deleted"], tombstone["version"]) == (
        f"{POST}:repost",
        str(BOB),
        True,
        2,
    )
    assert tombstone["ttl"] == TOMBSTONE_TTL_SECONDS


def test_an_item_a_repost_brings_sits_at_the_repost_time_and_keeps_the_posts_own() -> None:
    doc = one(project(EVENTS["post.updated"]), POSTS)
    repost = RepostRef(str(BOB), feed_time("2024-05-02T08:00:00+02:00"))
    item = feed_item(str(ALICE), doc, repost)
    assert item["id"] == f"{ALICE}:{POST}"  # the same item as the post's own: once per feed
    assert (item["createdAt"], item["repostedAt"]) == ("2024-05-02T06:00:00.000000Z",) * 2
    assert item["repostedBy"] == str(BOB)
    plain = feed_item(str(ALICE), doc)
    assert plain["createdAt"] == feed_time(doc["createdAt"]) and "repostedBy" not in plain


def test_repost_times_take_the_projections_form_so_they_order_among_posts_times() -> None:
    assert feed_time(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00.000000Z"
    assert feed_time("2024-05-01T14:00:00.5+02:00") == "2024-05-01T12:00:00.500000Z"
    earlier, later = feed_time("2024-05-01T11:59:59.9Z"), feed_time("2024-05-01T14:00:00.1+02:00")
    assert earlier < later


@pytest.mark.parametrize(
    ("may_see", "follows_author", "reposted_by", "expected"),
    [
        (True, True, None, ("keep", None)),
        (True, False, "R", ("keep", RepostRef("R", "2024-05-01T12:00:00.000000Z"))),
        (True, True, "R", ("keep", RepostRef("R", "2024-05-01T12:00:00.000000Z"))),
        (True, False, None, ("delete", None)),  # the last repost that brought it was undone
        (False, True, "R", ("delete", None)),  # a block, a mute or a hidden post: out whatever keeps it
    ],
)
def test_what_keeps_a_post_in_a_feed_after_a_repost_is_undone(
    may_see: bool, follows_author: bool, reposted_by: str | None, expected: tuple[str, RepostRef | None]
) -> None:
    keeper = FeedEntryKeeper("X", may_see, follows_author, reposted_by, NOW if reposted_by else None)
    assert keeper.decision() == expected


# --- comments ----------------------------------------------------------------------------------


def test_comment_created_writes_post_counts_and_notifies_the_post_author() -> None:
    writes = project(EVENTS["comment.created"])
    counts = one(writes, COUNTERS)
    assert counts == {
        "id": f"{POST}:counts",
        "subjectId": str(POST),
        "kind": "post",
        "reactions": {"like": 0, "love": 0, "laugh": 0, "wow": 0, "sad": 0, "angry": 0},
        "comments": 1,
        "reposts": 0,
        "version": 2,
        "correlationId": CORRELATION,
    }
    note = one(writes, NOTIFICATIONS, CreateOnce)
    assert note["id"] == f"comment:{COMMENT}"
    assert (note["recipientId"], note["actorId"], note["subjectId"]) == (str(ALICE), str(BOB), str(POST))


def test_commenting_on_ones_own_post_notifies_nobody() -> None:
    event = EVENTS["comment.created"]
    own = StoredEvent(**{**event.__dict__, "payload": {**event.payload, "authorId": str(ALICE)}})
    assert containers(project(own)) == [(COUNTERS, "VersionedUpsert")]


def test_comment_deleted_writes_counts_only() -> None:
    writes = project(EVENTS["comment.deleted"])
    assert containers(writes) == [(COUNTERS, "VersionedUpsert")]
    assert one(writes, COUNTERS)["comments"] == 0
    assert one(writes, COUNTERS)["version"] == 3


# --- reactions ---------------------------------------------------------------------------------


def test_reaction_set_writes_only_the_reaction_document_with_the_posts_counts() -> None:
    writes = project(EVENTS["reaction.set"])
    assert containers(writes) == [(REACTIONS, "VersionedUpsert")]  # counters come from the change feed
    doc = one(writes, REACTIONS)
    assert doc["id"] == f"{POST}:{BOB}"
    assert (doc["postId"], doc["userId"], doc["postAuthorId"]) == (str(POST), str(BOB), str(ALICE))
    assert (doc["type"], doc["previousType"]) == ("love", "like")
    assert (doc["deleted"], doc["ttl"]) == (False, NO_EXPIRY)
    assert doc["version"] == 2  # the reaction's version ...
    assert doc["postCounts"]["version"] == 5  # ... and the post counts' own
    assert doc["postCounts"]["reactions"]["love"] == 1


def test_reaction_removed_tombstones_the_reaction_keeping_its_type() -> None:
    doc = one(project(EVENTS["reaction.removed"]), REACTIONS)
    assert doc["id"] == f"{POST}:{BOB}"
    assert (doc["type"], doc["deleted"], doc["version"]) == ("love", True, 3)
    assert doc["ttl"] == TOMBSTONE_TTL_SECONDS
    assert doc["postCounts"]["version"] == 6


def reaction_doc(event_type: str, **changes: Any) -> dict[str, Any]:
    return {**one(project(EVENTS[event_type]), REACTIONS), **changes}


def test_a_reaction_writes_the_posts_counters_and_notifies_the_author() -> None:
    writes = reaction_side_effects(reaction_doc("reaction.set"))
    counts = one(writes, COUNTERS)
    assert (counts["id"], counts["subjectId"], counts["kind"]) == (f"{POST}:counts", str(POST), "post")
    assert (counts["reactions"]["love"], counts["version"]) == (1, 5)
    note = one(writes, NOTIFICATIONS, CreateOnce)
    assert note["id"] == f"reaction:{POST}:{BOB}"
    assert (note["recipientId"], note["type"], note["actorId"], note["subjectId"]) == (
        str(ALICE),
        "reaction",
        str(BOB),
        str(POST),
    )
    assert note["read"] is False


def test_reacting_to_ones_own_post_makes_no_notification() -> None:
    writes = reaction_side_effects(reaction_doc("reaction.set", userId=str(ALICE), id=f"{POST}:{ALICE}"))
    assert containers(writes) == [(COUNTERS, "VersionedUpsert")]


def test_a_removed_reaction_moves_counters_but_notifies_nobody() -> None:
    writes = reaction_side_effects(reaction_doc("reaction.removed"))
    assert containers(writes) == [(COUNTERS, "VersionedUpsert")]
    assert one(writes, COUNTERS)["version"] == 6


def test_every_version_of_a_users_reaction_has_one_notification_id() -> None:
    first = reaction_doc("reaction.set", type="like", version=1)
    changed = reaction_doc("reaction.set", type="angry", version=4)
    ids = {one(reaction_side_effects(doc), NOTIFICATIONS, CreateOnce)["id"] for doc in (first, changed)}
    assert ids == {f"reaction:{POST}:{BOB}"}


def test_reaction_side_effects_ignore_the_documents_cosmos_fields() -> None:
    doc = reaction_doc("reaction.set")
    from_feed = {**doc, "_rid": "x", "_etag": '"1"', "_ts": 1, "_lsn": 7}
    assert reaction_side_effects(from_feed) == reaction_side_effects(doc)


def test_a_follow_request_notifies_the_account_and_its_approval_the_requester() -> None:
    requested = one(project(EVENTS["follow.requested"]), NOTIFICATIONS, CreateOnce)
    assert (requested["recipientId"], requested["type"], requested["actorId"]) == (
        str(ALICE),
        "follow_request",
        str(BOB),
    )
    approved = one(project(EVENTS["follow.request_approved"]), NOTIFICATIONS, CreateOnce)
    assert (approved["recipientId"], approved["type"], approved["actorId"]) == (
        str(BOB),
        "follow_approved",
        str(ALICE),
    )
    assert approved["createdAt"] == EVENTS["follow.request_approved"].payload["approvedAt"]
    # A new request after a decline notifies again (its own cause: the request's next version).
    assert requested["id"] != approved["id"]
    for quiet in ("follow.request_declined", "follow.request_cancelled", "profile.visibility_changed"):
        assert project(EVENTS[quiet]) == []


def test_what_people_write_to_each_other_is_left_out_of_what_event_hubs_gets() -> None:
    sent = EVENTS["message.sent"]
    published = published_payload(sent.event_type, sent.payload)
    assert "text" in sent.payload and "text" not in published
    assert "ciphertexts" not in published and "media" not in published
    assert published["messageId"] == sent.payload["messageId"]
    assert "text" not in published_payload("message.edited", EVENTS["message.edited"].payload)
    assert "title" not in published_payload("conversation.created", EVENTS["conversation.created"].payload)
    # Other events are published whole.
    post = EVENTS["post.created"]
    assert published_payload(post.event_type, post.payload) == post.payload


def test_a_message_is_written_to_its_conversations_partition_and_a_deletion_keeps_no_content() -> None:
    sent = one(project(EVENTS["message.sent"]), MESSAGES)
    assert (sent["conversationId"], sent["seq"], sent["text"], sent["deleted"]) == (
        EVENTS["message.sent"].payload["conversationId"],
        1,
        "hi",
        False,
    )
    edited = one(project(EVENTS["message.edited"]), MESSAGES)
    assert (edited["text"], edited["version"], edited["editedAt"] is not None) == ("hey", 2, True)
    deleted = one(project(EVENTS["message.deleted"]), MESSAGES)
    assert (deleted["text"], deleted["ciphertexts"], deleted["deleted"], deleted["seq"]) == (
        None,
        [],
        True,
        1,
    )
    assert deleted["ttl"] > 0
