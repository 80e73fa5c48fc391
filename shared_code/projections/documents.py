"""Events → the projection documents they imply. Pure: no I/O, no clock.

Every document carries the version of the row it mirrors, so a replayed or
late event can never overwrite a newer state (see writes.VersionedUpsert).
Documents also carry the correlation id of the request that caused them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared_code.domain.feed_merge import cosmos_time, parse_time
from shared_code.domain.stored_event import ProjectableEvent
from shared_code.projections.writes import (
    AUTHOR_POSTS,
    AUTHOR_POSTS_TTL_SECONDS,
    COUNTERS,
    MESSAGES,
    NO_EXPIRY,
    NOTIFICATIONS,
    POSTS,
    PROFILES,
    REACTIONS,
    TOMBSTONE_TTL_SECONDS,
    CosmosWrite,
    CreateOnce,
    VersionedUpsert,
)


def user_counts_document(counts: dict[str, Any], correlation_id: str | None) -> dict[str, Any]:
    user_id = str(counts["userId"])
    return {
        "id": f"{user_id}:counts",
        "subjectId": user_id,
        "kind": "user",
        "followers": counts["followers"],
        "following": counts["following"],
        "posts": counts["posts"],
        "version": counts["version"],
        "correlationId": correlation_id,
    }


def post_counts_document(counts: dict[str, Any], correlation_id: str | None) -> dict[str, Any]:
    post_id = str(counts["postId"])
    return {
        "id": f"{post_id}:counts",
        "subjectId": post_id,
        "kind": "post",
        "reactions": counts["reactions"],
        "comments": counts["comments"],
        "reposts": counts.get("reposts", 0),
        "version": counts["version"],
        "correlationId": correlation_id,
    }


def profile_document(event: ProjectableEvent, deleted: bool = False) -> dict[str, Any]:
    p = event.payload
    return {
        "id": str(p["userId"]),
        "userId": str(p["userId"]),
        "username": p.get("username"),
        "displayName": p.get("displayName"),
        "bio": p.get("bio", ""),
        "avatarUrl": p.get("avatarUrl"),
        "deleted": deleted,
        "ttl": TOMBSTONE_TTL_SECONDS if deleted else NO_EXPIRY,
        "version": event.aggregate_version,
        "correlationId": event.correlation_id,
    }


def post_document(event: ProjectableEvent) -> dict[str, Any]:
    p = event.payload
    deleted = event.event_type == "post.deleted"
    author = p.get("author") or {"userId": p["authorId"]}
    return {
        "id": str(p["postId"]),
        "postId": str(p["postId"]),
        "authorId": str(author["userId"]),
        "author": author,
        # A deleted post keeps no content in the projections.
        "content": "" if deleted else p["content"],
        "media": [] if deleted else p.get("media", []),
        "status": p.get("status", "visible"),
        "createdAt": p.get("createdAt"),
        "editedAt": p.get("editedAt"),
        "quotePostId": None if deleted else p.get("quotePostId"),
        "deleted": deleted,
        "ttl": TOMBSTONE_TTL_SECONDS if deleted else NO_EXPIRY,
        "version": event.aggregate_version,
        "correlationId": event.correlation_id,
    }


def author_post_document(event: ProjectableEvent) -> dict[str, Any]:
    """The post in its author's partition of authorPosts, where feed reads pull big authors' posts
    from (one write per post event whatever the audience). Same fields as posts_v2; expires after
    AUTHOR_POSTS_TTL_SECONDS (a deletion, like every tombstone, after a day)."""
    document = post_document(event)
    if document["createdAt"]:  # pulled pages are ordered by it as a string (feed_merge.cosmos_time)
        document["createdAt"] = cosmos_time(parse_time(document["createdAt"]))
    if not document["deleted"]:
        document["ttl"] = AUTHOR_POSTS_TTL_SECONDS
    return document


def author_repost_document(event: ProjectableEvent) -> dict[str, Any]:
    """A repost in the reposter's partition of authorPosts (`authorId` is the partition: the reposter),
    where feed reads pull it when the reposter is above FANOUT_MAX_FOLLOWERS, positioned at the
    repost's time like the feed item a fan-out would have made. One document per (post, reposter),
    versioned by the repost row: a late or replayed `repost.created` cannot bring back an undone
    repost (its `repost.deleted` wrote a newer version, a tombstone). It names the post, not the
    post's author: readers resolve the author from PostgreSQL (an erased author leaves no trace here)."""
    p = event.payload
    deleted = event.event_type == "repost.deleted"
    reposter, post_id = str(p["userId"]), str(p["postId"])
    at = cosmos_time(parse_time(p["createdAt"])) if p.get("createdAt") else None
    return {
        "id": f"{post_id}:repost",
        "kind": "repost",
        "authorId": reposter,
        "postId": post_id,
        "repostedBy": reposter,
        "createdAt": at,
        "repostedAt": at,
        "deleted": deleted,
        "status": "visible",
        "ttl": TOMBSTONE_TTL_SECONDS if deleted else AUTHOR_POSTS_TTL_SECONDS,
        "version": event.aggregate_version,
        "correlationId": event.correlation_id,
    }


def reaction_document(event: ProjectableEvent) -> dict[str, Any]:
    """One per user per post; it carries the post's counts so the reactions change feed can
    keep counters exact without counting."""
    p = event.payload
    removed = event.event_type == "reaction.removed"
    return {
        "id": f"{p['postId']}:{p['userId']}",
        "postId": str(p["postId"]),
        "userId": str(p["userId"]),
        "postAuthorId": str(p["postAuthorId"]),
        "type": p["previousType"] if removed else p["type"],
        "previousType": p["previousType"],
        "createdAt": p.get("createdAt"),
        "deleted": removed,
        "ttl": TOMBSTONE_TTL_SECONDS if removed else NO_EXPIRY,
        "postCounts": p["postCounts"],
        "version": event.aggregate_version,
        "correlationId": event.correlation_id,
    }


def notification_document(
    recipient_id: str,
    kind: str,
    actor_id: str,
    subject_id: str,
    cause_id: str,
    created_at: str | None,
    correlation_id: str | None,
) -> dict[str, Any]:
    """A notification whose id is its cause, so a replay cannot make a second one."""
    return {
        "id": f"{kind}:{cause_id}",
        "recipientId": recipient_id,
        "type": kind,
        "actorId": actor_id,
        "subjectId": subject_id,
        "createdAt": created_at,
        "read": False,
        "correlationId": correlation_id,
    }


def _user_profile(event: ProjectableEvent) -> list[CosmosWrite]:
    return [VersionedUpsert(PROFILES, profile_document(event))]


def _user_deleted(event: ProjectableEvent) -> list[CosmosWrite]:
    return [VersionedUpsert(PROFILES, profile_document(event, deleted=True))]


def _follow(event: ProjectableEvent) -> list[CosmosWrite]:
    p = event.payload
    writes: list[CosmosWrite] = [
        VersionedUpsert(COUNTERS, user_counts_document(p["followerCounts"], event.correlation_id)),
        VersionedUpsert(COUNTERS, user_counts_document(p["followeeCounts"], event.correlation_id)),
    ]
    if event.event_type == "follow.created":
        writes.append(
            CreateOnce(
                NOTIFICATIONS,
                notification_document(
                    recipient_id=str(p["followeeId"]),
                    kind="follow",
                    actor_id=str(p["followerId"]),
                    subject_id=str(p["followerId"]),
                    cause_id=f"{p['followerId']}:{p['followeeId']}",
                    created_at=p.get("createdAt"),
                    correlation_id=event.correlation_id,
                ),
            )
        )
    return writes


def _mention_notifications(
    event: ProjectableEvent, author_id: str, source_id: str, created_at: str | None
) -> list[CosmosWrite]:
    """One notification per account the text mentions anew (the writer left out blocked accounts and
    those who may not see the author). Its id is the (text, account) pair: an edit that mentions
    someone again, or a replayed event, cannot notify twice."""
    return [
        CreateOnce(
            NOTIFICATIONS,
            notification_document(
                recipient_id=str(user_id),
                kind="mention",
                actor_id=author_id,
                subject_id=str(event.payload["postId"]),
                cause_id=f"{source_id}:{user_id}",
                created_at=created_at,
                correlation_id=event.correlation_id,
            ),
        )
        for user_id in event.payload.get("notifyMentions", ())
        if str(user_id) != author_id
    ]


def _follow_request(event: ProjectableEvent) -> list[CosmosWrite]:
    """A request notifies the private account; an approval notifies the requester."""
    p = event.payload
    requested = event.event_type == "follow.requested"
    recipient, actor = (p["targetId"], p["requesterId"]) if requested else (p["requesterId"], p["targetId"])
    return [
        CreateOnce(
            NOTIFICATIONS,
            notification_document(
                recipient_id=str(recipient),
                kind="follow_request" if requested else "follow_approved",
                actor_id=str(actor),
                subject_id=str(actor),
                cause_id=f"{p['requestId']}:{event.aggregate_version}",
                created_at=p.get("createdAt") or p.get("approvedAt"),
                correlation_id=event.correlation_id,
            ),
        )
    ]


def _post(event: ProjectableEvent) -> list[CosmosWrite]:
    writes: list[CosmosWrite] = [
        VersionedUpsert(POSTS, post_document(event)),
        VersionedUpsert(AUTHOR_POSTS, author_post_document(event)),
    ]
    if "authorCounts" in event.payload:
        writes.append(
            VersionedUpsert(
                COUNTERS, user_counts_document(event.payload["authorCounts"], event.correlation_id)
            )
        )
    if event.event_type in ("post.created", "post.updated"):
        p = event.payload
        writes.extend(
            _mention_notifications(
                event, str(p["author"]["userId"]), str(p["postId"]), p.get("editedAt") or p.get("createdAt")
            )
        )
    return writes


def _comment(event: ProjectableEvent) -> list[CosmosWrite]:
    p = event.payload
    writes: list[CosmosWrite] = [
        VersionedUpsert(COUNTERS, post_counts_document(p["postCounts"], event.correlation_id))
    ]
    if event.event_type != "comment.created":
        return writes
    parent_author = p.get("parentAuthorId")
    replied_to = str(parent_author) if parent_author and parent_author != p["authorId"] else None
    if replied_to is not None:
        writes.append(
            CreateOnce(
                NOTIFICATIONS,
                notification_document(
                    recipient_id=replied_to,
                    kind="reply",
                    actor_id=str(p["authorId"]),
                    subject_id=str(p["postId"]),
                    cause_id=str(p["commentId"]),
                    created_at=p.get("createdAt"),
                    correlation_id=event.correlation_id,
                ),
            )
        )
    # The post's author hears of a comment, unless it is their own or a reply to them (one
    # notification, the reply, is enough).
    if p["authorId"] != p["postAuthorId"] and replied_to != str(p["postAuthorId"]):
        writes.append(
            CreateOnce(
                NOTIFICATIONS,
                notification_document(
                    recipient_id=str(p["postAuthorId"]),
                    kind="comment",
                    actor_id=str(p["authorId"]),
                    subject_id=str(p["postId"]),
                    cause_id=str(p["commentId"]),
                    created_at=p.get("createdAt"),
                    correlation_id=event.correlation_id,
                ),
            )
        )
    writes.extend(_mention_notifications(event, str(p["authorId"]), str(p["commentId"]), p.get("createdAt")))
    return writes


def _reaction(event: ProjectableEvent) -> list[CosmosWrite]:
    # Counters and the author's notification follow from the reactions change feed.
    return [VersionedUpsert(REACTIONS, reaction_document(event))]


def _repost(event: ProjectableEvent) -> list[CosmosWrite]:
    # The repost count, and the repost in the reposter's authorPosts partition (pulled by the feeds of
    # a big reposter's followers); the fanned-out feeds follow from the relay's feed maintenance
    # (services/feeds.py).
    return [
        VersionedUpsert(COUNTERS, post_counts_document(event.payload["postCounts"], event.correlation_id)),
        VersionedUpsert(AUTHOR_POSTS, author_repost_document(event)),
    ]


def _event_rsvp(event: ProjectableEvent) -> list[CosmosWrite]:
    """An answer notifies the host (not their own answer, not 'not_going'); a promotion from the
    waiting list notifies the promoted user. Counts are read from PostgreSQL (docs/read-costs.md)."""
    p = event.payload
    promoted = p["cause"] == "promoted"
    if promoted:
        recipient, kind = str(p["userId"]), "event_promoted"
    elif p["status"] != "not_going" and p["userId"] != p["hostId"]:
        recipient, kind = str(p["hostId"]), "event_rsvp"
    else:
        return []
    return [
        CreateOnce(
            NOTIFICATIONS,
            notification_document(
                recipient_id=recipient,
                kind=kind,
                actor_id=str(p["hostId"] if promoted else p["userId"]),
                subject_id=str(p["eventId"]),
                cause_id=f"{p['rsvpId']}:{event.aggregate_version}",
                created_at=p.get("updatedAt"),
                correlation_id=event.correlation_id,
            ),
        )
    ]


def _event_change(event: ProjectableEvent) -> list[CosmosWrite]:
    """A change or a cancellation notifies everyone who answered going, interested or wait (the writer
    listed them); one per (event version, user), so a replay cannot notify twice."""
    p = event.payload
    cancelled = event.event_type == "event.cancelled"
    return [
        CreateOnce(
            NOTIFICATIONS,
            notification_document(
                recipient_id=str(user_id),
                kind="event_cancelled" if cancelled else "event_updated",
                actor_id=str(p["hostId"]),
                subject_id=str(p["eventId"]),
                cause_id=f"{p['eventId']}:{event.aggregate_version}:{user_id}",
                created_at=p.get("cancelledAt") if cancelled else p.get("updatedAt"),
                correlation_id=event.correlation_id,
            ),
        )
        for user_id in p.get("notifyUserIds", ())
        if str(user_id) != str(p["hostId"])
    ]


def message_document(event: ProjectableEvent) -> dict[str, Any]:
    """A message in its conversation's partition of `messages`, with every recipient device's
    ciphertext (a reader gets only their own: services/message_reads.py). A deleted message keeps its
    place (`seq`) as a tombstone without content, expiring like every tombstone."""
    p = event.payload
    deleted = event.event_type == "message.deleted"
    return {
        "id": str(p["messageId"]),
        "messageId": str(p["messageId"]),
        "conversationId": str(p["conversationId"]),
        "senderId": str(p["senderId"]),
        "seq": p["seq"],
        "text": None if deleted else p.get("text"),
        "encrypted": bool(p.get("encrypted", False)),
        "ciphertexts": [] if deleted else p.get("ciphertexts", []),
        # Blob paths: readers sign a URL per read. An edit keeps the media it had (services/messaging.py).
        "media": [] if deleted else p.get("media", []),
        "replyToId": p.get("replyToId"),
        "createdAt": p["createdAt"],
        "editedAt": p.get("editedAt"),
        "deleted": deleted,
        "ttl": TOMBSTONE_TTL_SECONDS if deleted else NO_EXPIRY,
        "version": event.aggregate_version,
        "correlationId": event.correlation_id,
    }


def _message(event: ProjectableEvent) -> list[CosmosWrite]:
    return [VersionedUpsert(MESSAGES, message_document(event))]


def _nothing(event: ProjectableEvent) -> list[CosmosWrite]:
    return []


_PROJECTIONS: dict[str, Callable[[ProjectableEvent], list[CosmosWrite]]] = {
    "user.created": _user_profile,
    "profile.updated": _user_profile,
    "user.deleted": _user_deleted,
    "follow.created": _follow,
    "follow.deleted": _follow,
    # Blocks and mutes change feeds (see feed maintenance), not documents.
    "block.created": _nothing,
    "block.deleted": _nothing,
    "mute.created": _nothing,
    "mute.deleted": _nothing,
    # Private accounts: a request and its approval notify; the rest is PostgreSQL's (the rule reads it).
    "profile.visibility_changed": _nothing,
    "profile.follow_requests_approval_progressed": _nothing,
    "follow.requested": _follow_request,
    "follow.request_approved": _follow_request,
    "follow.request_declined": _nothing,
    "follow.request_cancelled": _nothing,
    "post.created": _post,
    "post.updated": _post,
    "post.deleted": _post,
    "comment.created": _comment,
    "comment.deleted": _comment,
    "reaction.set": _reaction,
    "reaction.removed": _reaction,
    "repost.created": _repost,
    "repost.deleted": _repost,
    # Bookmarks are private and read from PostgreSQL (docs/read-costs.md): nothing to project.
    "bookmark.created": _nothing,
    "bookmark.deleted": _nothing,
    # Events and RSVPs are read from PostgreSQL (docs/read-costs.md); only their notifications are
    # projected.
    "event.created": _nothing,
    "event.updated": _event_change,
    "event.cancelled": _event_change,
    "rsvp.set": _event_rsvp,
    "rsvp.removed": _nothing,
    # Messages are read from their conversation's partition; conversations, memberships and read
    # positions from PostgreSQL (services/message_reads.py says why).
    "conversation.created": _nothing,
    "conversation.member_changed": _nothing,
    "conversation.read": _nothing,
    "message.sent": _message,
    "message.edited": _message,
    "message.deleted": _message,
    # A moderation decision re-renders the post (its status decides whether feeds show it); flags and
    # appeals are for moderators only (PostgreSQL), not projected.
    "post.moderated": _post,
    "flag.created": _nothing,
    "appeal.created": _nothing,
    "appeal.decided": _nothing,
    # Erasure is a job of its own handler (which deletes the account's Cosmos DB documents itself).
    "account.erasure_requested": _nothing,
    "account.erasure_progressed": _nothing,
    "account.erased": _nothing,
    "account.export_requested": _nothing,
}


def project(event: ProjectableEvent) -> list[CosmosWrite]:
    """The Cosmos writes an event implies. KeyError for an event type no projection knows:
    a new event type must be given a projection (even an empty one) on purpose."""
    return _PROJECTIONS[event.event_type](event)


def reaction_side_effects(reaction: dict[str, Any]) -> list[CosmosWrite]:
    """What the reactions change feed writes for one reaction document: the post's counters,
    and a notification to the post's author (not for reacting to one's own post, not for a removal)."""
    writes: list[CosmosWrite] = [
        VersionedUpsert(COUNTERS, post_counts_document(reaction["postCounts"], reaction.get("correlationId")))
    ]
    if not reaction.get("deleted") and reaction["userId"] != reaction["postAuthorId"]:
        writes.append(
            CreateOnce(
                NOTIFICATIONS,
                notification_document(
                    recipient_id=reaction["postAuthorId"],
                    kind="reaction",
                    actor_id=reaction["userId"],
                    subject_id=reaction["postId"],
                    cause_id=f"{reaction['postId']}:{reaction['userId']}",
                    created_at=reaction.get("createdAt"),
                    correlation_id=reaction.get("correlationId"),
                ),
            )
        )
    return writes
