"""Domain events: what the outbox carries to projections and Event Hubs.

Each event type is a pydantic model (camelCase on the wire). An event belongs to
one aggregate (the row whose version it carries); events of one aggregate are
handled in version order. docs/events.md lists them with example payloads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared_code.domain.limits import ReactionType


class EventPayload(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    event_type: ClassVar[str]
    aggregate_type: ClassVar[str]
    # Payload fields for the projections only, never published to Event Hubs (`published_payload`).
    confidential: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class AuthorSnapshot(BaseModel):
    """The author as they were when the post was written or edited. Readers show the author's current
    profile instead (publicProfiles, or PostgreSQL): feeds hydrate it at read time
    (services/feed_hydration.py), so this snapshot is never refreshed in copies."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None


class MediaRef(BaseModel):
    """A ready media asset of a post. Readers turn the blob path into a URL when they serve it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    media_id: UUID
    content_type: str
    blob_path: str


class UserCounts(BaseModel):
    """A user's counts after the change, with the version of that row."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    user_id: UUID
    followers: int
    following: int
    posts: int
    version: int


class PostCounts(BaseModel):
    """A post's reaction counts (every type, zeros included) and comment count after the change."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    post_id: UUID
    reactions: dict[str, int]
    comments: int
    version: int
    # Older events (before reposts) carry none: their count was 0.
    reposts: int = 0


# --- users -----------------------------------------------------------------------------------


class UserCreated(EventPayload):
    event_type = "user.created"
    aggregate_type = "user"

    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    created_at: datetime


class ProfileUpdated(EventPayload):
    event_type = "profile.updated"
    aggregate_type = "user"

    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    changed: tuple[str, ...]


class UserDeleted(EventPayload):
    event_type = "user.deleted"
    aggregate_type = "user"

    user_id: UUID
    deleted_at: datetime


# --- social graph ----------------------------------------------------------------------------


class FollowCreated(EventPayload):
    event_type = "follow.created"
    aggregate_type = "follow"

    follow_id: UUID
    follower_id: UUID
    followee_id: UUID
    follower_counts: UserCounts
    followee_counts: UserCounts
    created_at: datetime


class FollowDeleted(EventPayload):
    event_type = "follow.deleted"
    aggregate_type = "follow"

    follow_id: UUID
    follower_id: UUID
    followee_id: UUID
    follower_counts: UserCounts
    followee_counts: UserCounts
    # "unfollow", "block" or "account_deleted": why the edge went away.
    cause: str


class BlockCreated(EventPayload):
    event_type = "block.created"
    aggregate_type = "block"

    block_id: UUID
    blocker_id: UUID
    blocked_id: UUID


class BlockDeleted(EventPayload):
    event_type = "block.deleted"
    aggregate_type = "block"

    block_id: UUID
    blocker_id: UUID
    blocked_id: UUID


class MuteCreated(EventPayload):
    event_type = "mute.created"
    aggregate_type = "mute"

    mute_id: UUID
    muter_id: UUID
    muted_id: UUID


class MuteDeleted(EventPayload):
    event_type = "mute.deleted"
    aggregate_type = "mute"

    mute_id: UUID
    muter_id: UUID
    muted_id: UUID


# --- private accounts ------------------------------------------------------------------------


class ProfileVisibilityChanged(EventPayload):
    """PATCH /users/me changed `visibility`; turning public also approves the pending follow
    requests: `pendingRequests` is how many were still pending when it committed (the relay approves
    them in batches when there are more than the request approved itself)."""

    event_type = "profile.visibility_changed"
    aggregate_type = "user"

    user_id: UUID
    visibility: str
    pending_requests: int = 0


class FollowRequestsApprovalProgressed(EventPayload):
    """The relay approved one more batch of a public account's pending follow requests and more
    remain (`pendingRequests`): the next batch follows this event."""

    event_type = "profile.follow_requests_approval_progressed"
    aggregate_type = "user"

    user_id: UUID
    approved: int
    pending_requests: int


class FollowRequested(EventPayload):
    event_type = "follow.requested"
    aggregate_type = "follow_request"

    request_id: UUID
    requester_id: UUID
    target_id: UUID
    created_at: datetime


class FollowRequestApproved(EventPayload):
    """Recorded with the follow.created of the same transaction; `by` is `target` (the account
    approved it) or `made_public` (the account turned public)."""

    event_type = "follow.request_approved"
    aggregate_type = "follow_request"

    request_id: UUID
    requester_id: UUID
    target_id: UUID
    by: str
    approved_at: datetime


class FollowRequestDeclined(EventPayload):
    event_type = "follow.request_declined"
    aggregate_type = "follow_request"

    request_id: UUID
    requester_id: UUID
    target_id: UUID


class FollowRequestCancelled(EventPayload):
    """`cause`: `requester` (DELETE .../follow) or `block` (a block either way ends it)."""

    event_type = "follow.request_cancelled"
    aggregate_type = "follow_request"

    request_id: UUID
    requester_id: UUID
    target_id: UUID
    cause: str


# --- posts -----------------------------------------------------------------------------------


class PostCreated(EventPayload):
    event_type = "post.created"
    aggregate_type = "post"

    post_id: UUID
    author: AuthorSnapshot
    content: str
    media: tuple[MediaRef, ...]
    status: str
    created_at: datetime
    author_counts: UserCounts
    # The post this one quotes (embeds), if any.
    quote_post_id: UUID | None = None
    # Mentions and hashtags of the text (services/text_entities.py): every account it mentions,
    # those of them to notify (not blocked either way, allowed to see the author), its tags.
    mentions: tuple[UUID, ...] = ()
    notify_mentions: tuple[UUID, ...] = ()
    hashtags: tuple[str, ...] = ()


class PostUpdated(EventPayload):
    event_type = "post.updated"
    aggregate_type = "post"

    post_id: UUID
    author: AuthorSnapshot
    content: str
    media: tuple[MediaRef, ...]
    status: str
    created_at: datetime
    edited_at: datetime
    quote_post_id: UUID | None = None
    # As in PostCreated; notify_mentions names only the accounts this edit mentions anew.
    mentions: tuple[UUID, ...] = ()
    notify_mentions: tuple[UUID, ...] = ()
    hashtags: tuple[str, ...] = ()


class PostDeleted(EventPayload):
    event_type = "post.deleted"
    aggregate_type = "post"

    post_id: UUID
    author_id: UUID
    deleted_at: datetime
    author_counts: UserCounts


# --- comments and reactions ------------------------------------------------------------------


class CommentCreated(EventPayload):
    event_type = "comment.created"
    aggregate_type = "comment"

    comment_id: UUID
    post_id: UUID
    post_author_id: UUID
    author_id: UUID
    parent_id: UUID | None
    content: str
    created_at: datetime
    post_counts: PostCounts
    # The replied-to comment's author (notified, unless it is the replier), when parent_id is set.
    parent_author_id: UUID | None = None
    mentions: tuple[UUID, ...] = ()
    notify_mentions: tuple[UUID, ...] = ()
    hashtags: tuple[str, ...] = ()


class CommentDeleted(EventPayload):
    event_type = "comment.deleted"
    aggregate_type = "comment"

    comment_id: UUID
    post_id: UUID
    author_id: UUID
    deleted_by: UUID
    post_counts: PostCounts


class ReactionSet(EventPayload):
    event_type = "reaction.set"
    aggregate_type = "reaction"

    reaction_id: UUID
    post_id: UUID
    post_author_id: UUID
    user_id: UUID
    type: ReactionType
    previous_type: ReactionType | None
    created_at: datetime
    post_counts: PostCounts


class ReactionRemoved(EventPayload):
    event_type = "reaction.removed"
    aggregate_type = "reaction"

    reaction_id: UUID
    post_id: UUID
    post_author_id: UUID
    user_id: UUID
    previous_type: ReactionType
    post_counts: PostCounts


# --- reposts and bookmarks ------------------------------------------------------------------


class RepostCreated(EventPayload):
    """The user passed the post on to their followers (the post enters their feeds, shown as reposted
    by the newest reposter); `postCounts` carries the repost count after the change."""

    event_type = "repost.created"
    aggregate_type = "repost"

    repost_id: UUID
    post_id: UUID
    post_author_id: UUID
    user_id: UUID
    created_at: datetime
    post_counts: PostCounts


class RepostDeleted(EventPayload):
    event_type = "repost.deleted"
    aggregate_type = "repost"

    repost_id: UUID
    post_id: UUID
    post_author_id: UUID
    user_id: UUID
    post_counts: PostCounts
    # "unrepost" or "account_deleted": why the repost went away.
    cause: str


class BookmarkCreated(EventPayload):
    """Private to the user: no projection, no notification (Event Hubs consumers may keep their own)."""

    event_type = "bookmark.created"
    aggregate_type = "bookmark"

    bookmark_id: UUID
    user_id: UUID
    post_id: UUID
    created_at: datetime


class BookmarkDeleted(EventPayload):
    event_type = "bookmark.deleted"
    aggregate_type = "bookmark"

    bookmark_id: UUID
    user_id: UUID
    post_id: UUID


# --- events and RSVPs (gatherings a user hosts; docs/api.md "Events and RSVPs") -------------------


class EventDetails(BaseModel):
    """An event's details as they are after the change."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    title: str
    description: str
    place: str
    category: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    visibility: str


class EventCounts(BaseModel):
    """An event's RSVP counts after the change, with `events.counts_version`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    event_id: UUID
    going: int
    interested: int
    waitlisted: int
    version: int


class EventCreated(EventPayload):
    event_type = "event.created"
    aggregate_type = "event"

    event_id: UUID
    host_id: UUID
    details: EventDetails
    created_at: datetime


class EventUpdated(EventPayload):
    """The host changed the details; `notifyUserIds`: those who answered going, interested or wait,
    each notified (event_updated)."""

    event_type = "event.updated"
    aggregate_type = "event"

    event_id: UUID
    host_id: UUID
    details: EventDetails
    updated_at: datetime
    notify_user_ids: list[UUID]


class EventCancelled(EventPayload):
    """`cause`: "host" (DELETE /api/events/{id}) or "account_deleted" (the host's erasure)."""

    event_type = "event.cancelled"
    aggregate_type = "event"

    event_id: UUID
    host_id: UUID
    cancelled_at: datetime
    cause: str
    notify_user_ids: list[UUID]


class RsvpSet(EventPayload):
    """A user's answer is now `status` (`previousStatus` None: a first answer). `cause`: "rsvp" (their
    own PUT) or "promoted" (a seat freed and they were first on the waiting list)."""

    event_type = "rsvp.set"
    aggregate_type = "event_rsvp"

    rsvp_id: UUID
    event_id: UUID
    host_id: UUID
    user_id: UUID
    status: str
    previous_status: str | None
    cause: str
    event_counts: EventCounts
    updated_at: datetime


class RsvpRemoved(EventPayload):
    """A user's answer went: `cause` "withdrawn" (DELETE .../rsvp) or "account_deleted"."""

    event_type = "rsvp.removed"
    aggregate_type = "event_rsvp"

    rsvp_id: UUID
    event_id: UUID
    host_id: UUID
    user_id: UUID
    previous_status: str
    cause: str
    event_counts: EventCounts


# --- conversations and messages --------------------------------------------------------------
# What people write to each other (texts, ciphertexts, media, group titles) is `confidential`: the
# Cosmos projections get it, Event Hubs never does (`published_payload`), and erasure scrubs it.


class ConversationCreated(EventPayload):
    event_type = "conversation.created"
    aggregate_type = "conversation"
    confidential = ("title",)

    conversation_id: UUID
    kind: str
    title: str | None
    created_by: UUID
    created_at: datetime


class ConversationMemberChanged(EventPayload):
    """A member was added (or asked: a request), accepted or declined a request, left, was removed, or
    got another role. `state` and `role` are the member's after the change."""

    event_type = "conversation.member_changed"
    aggregate_type = "conversation_member"

    member_id: UUID
    conversation_id: UUID
    user_id: UUID
    role: str
    state: str
    change: str
    by_user_id: UUID


class ConversationRead(EventPayload):
    """A read receipt: the member has read up to `last_read_seq` (it never goes back)."""

    event_type = "conversation.read"
    aggregate_type = "conversation_member"

    member_id: UUID
    conversation_id: UUID
    user_id: UUID
    last_read_seq: int
    last_read_message_id: UUID


class MessageCiphertext(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    recipient_id: UUID
    device_id: str
    ciphertext: str


class MessageSent(EventPayload):
    event_type = "message.sent"
    aggregate_type = "message"
    confidential = ("text", "ciphertexts", "media")

    message_id: UUID
    conversation_id: UUID
    sender_id: UUID
    seq: int
    text: str | None
    encrypted: bool
    ciphertexts: tuple[MessageCiphertext, ...] = ()
    media: tuple[MediaRef, ...] = ()
    reply_to_id: UUID | None
    # The members it reaches (active, or asked in a request), the sender left out.
    recipient_ids: tuple[UUID, ...]
    created_at: datetime


class MessageEdited(EventPayload):
    """The whole (plain) message as it now is: the messages projection rewrites its document."""

    event_type = "message.edited"
    aggregate_type = "message"
    confidential = ("text", "media")

    message_id: UUID
    conversation_id: UUID
    sender_id: UUID
    seq: int
    text: str
    media: tuple[MediaRef, ...] = ()
    reply_to_id: UUID | None
    created_at: datetime
    edited_at: datetime


class MessageDeleted(EventPayload):
    event_type = "message.deleted"
    aggregate_type = "message"

    message_id: UUID
    conversation_id: UUID
    sender_id: UUID
    seq: int
    created_at: datetime
    deleted_at: datetime


# --- moderation ------------------------------------------------------------------------------


class FlagCreated(EventPayload):
    event_type = "flag.created"
    aggregate_type = "flag"

    flag_id: UUID
    post_id: UUID
    reporter_id: UUID
    reason: str
    severity: str
    created_at: datetime


class PostModerated(EventPayload):
    """A moderator's decision changed a post's status (hide, remove, restore — also by an overturned
    appeal). Carries the whole post, so projections re-render it as they do for post.updated."""

    event_type = "post.moderated"
    aggregate_type = "post"

    post_id: UUID
    author: AuthorSnapshot
    content: str
    media: tuple[MediaRef, ...]
    status: str
    created_at: datetime
    edited_at: datetime | None
    action: str
    reason: str
    moderator_id: UUID
    quote_post_id: UUID | None = None


class AppealCreated(EventPayload):
    event_type = "appeal.created"
    aggregate_type = "appeal"

    appeal_id: UUID
    post_id: UUID
    author_id: UUID
    statement: str
    created_at: datetime


class AppealDecided(EventPayload):
    event_type = "appeal.decided"
    aggregate_type = "appeal"

    appeal_id: UUID
    post_id: UUID
    author_id: UUID
    decision: str  # "upheld" (the moderation stands) or "overturned" (the post is restored)
    reason: str
    moderator_id: UUID


# --- account erasure and export (docs/privacy.md) --------------------------------------------
# Erasure is a chain of events of one aggregate (the account's erasure job, id = the user's id): each
# event the relay's erasure handler takes does one batch and records the next, until account.erased.


class AccountErasureRequested(EventPayload):
    event_type = "account.erasure_requested"
    aggregate_type = "account_erasure"

    user_id: UUID
    requested_at: datetime


class AccountErasureProgressed(EventPayload):
    event_type = "account.erasure_progressed"
    aggregate_type = "account_erasure"

    user_id: UUID
    step: str  # the kind of data the next batch erases
    rows_erased: int  # so far


class AccountErased(EventPayload):
    event_type = "account.erased"
    aggregate_type = "account_erasure"

    user_id: UUID
    rows_erased: int
    erased_at: datetime


class AccountExportRequested(EventPayload):
    """An export too large to answer inline: the relay's export handler writes it to a blob."""

    event_type = "account.export_requested"
    aggregate_type = "account_export"

    export_id: UUID
    user_id: UUID


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type: cls
    for cls in (
        UserCreated,
        ProfileUpdated,
        UserDeleted,
        FollowCreated,
        FollowDeleted,
        BlockCreated,
        BlockDeleted,
        MuteCreated,
        MuteDeleted,
        ProfileVisibilityChanged,
        FollowRequestsApprovalProgressed,
        FollowRequested,
        FollowRequestApproved,
        FollowRequestDeclined,
        FollowRequestCancelled,
        PostCreated,
        PostUpdated,
        PostDeleted,
        CommentCreated,
        CommentDeleted,
        ReactionSet,
        ReactionRemoved,
        RepostCreated,
        RepostDeleted,
        BookmarkCreated,
        BookmarkDeleted,
        EventCreated,
        EventUpdated,
        EventCancelled,
        RsvpSet,
        RsvpRemoved,
        ConversationCreated,
        ConversationMemberChanged,
        ConversationRead,
        MessageSent,
        MessageEdited,
        MessageDeleted,
        FlagCreated,
        PostModerated,
        AppealCreated,
        AppealDecided,
        AccountErasureRequested,
        AccountErasureProgressed,
        AccountErased,
        AccountExportRequested,
    )
}


def parse_event(event_type: str, payload: dict[str, Any]) -> EventPayload:
    """The typed payload of a stored event. KeyError for an unknown type."""
    return EVENT_TYPES[event_type].model_validate(payload)


def published_payload(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as Event Hubs gets it: without the event type's confidential fields (what people
    wrote to each other stays in PostgreSQL and the members' projections)."""
    model = EVENT_TYPES.get(event_type)
    hidden = model.confidential if model is not None else ()
    if not hidden:
        return payload
    wire = {to_camel(name) for name in hidden}
    return {key: value for key, value in payload.items() if key not in wire}
